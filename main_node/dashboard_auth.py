"""The dashboard's security core, no I/O: password hashes, the login limiter, headers, Origin.

- The operator password is stored as an scrypt hash (RFC 7914), `scrypt$N$r$p$salt$hash` with
  base64 salt and hash; it is checked with `hmac.compare_digest` (constant time). A plain
  `operator_password` in the config is hashed once at start-up, so both paths compare hashes.
- `LoginLimiter`: per client, at most `max_failures` wrong passwords in `window_s`; after that
  every attempt (even a right one) answers 429 until the oldest failure leaves the window.
  Time is passed in (`now`, monotonic seconds).
- `SessionStore`: a right password at the login form buys a random session token (a cookie,
  HttpOnly, SameSite=Strict, Secure over TLS); only its SHA-256 is kept, it expires after
  `ttl_s`, and at most `max_sessions` live at once (the oldest goes first). Logout revokes it.
- `security_headers`: CSP without inline script or style (the page's code is in static files),
  no sniffing, no framing, no referrer.
- `same_origin`: a browser's WebSocket or POST from another site carries its own Origin; only
  the dashboard's own origin (scheme://host[:port] as the browser reached it) is accepted.

`python -m main_node.dashboard_auth` reads a password from the terminal and prints its hash for
`[dashboard] operator_password_hash`.
"""

from __future__ import annotations

import base64
import binascii
import getpass
import hashlib
import hmac
import os
import secrets
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

from main_node.errors import MainNodeError

__all__ = [
    "LoginLimiter",
    "PasswordHashError",
    "SessionStore",
    "hash_password",
    "same_origin",
    "security_headers",
    "verify_password",
]

# RFC 7914 §2 parameters: N = 2^14, r = 8, p = 1 costs ~16 MiB and tens of ms per check.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 14, 8, 1
_MAXMEM = 64 * 1024 * 1024
_MAX_N = 1 << 20  # a hash naming more work than this is refused, not computed


class PasswordHashError(MainNodeError, ValueError):
    """The configured hash is not `scrypt$N$r$p$salt$hash`."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """`scrypt$N$r$p$salt$hash` for `password` (a fresh 16-byte salt unless given)."""
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=_MAXMEM, dklen=32
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes]:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise PasswordHashError("operator_password_hash: expected scrypt$N$r$p$salt$hash")
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        digest = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        raise PasswordHashError("operator_password_hash: N, r, p or base64 is malformed") from None
    if n < 2 or n & (n - 1) or n > _MAX_N or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise PasswordHashError("operator_password_hash: scrypt parameters out of range")
    if len(salt) < 8 or len(digest) < 16:
        raise PasswordHashError("operator_password_hash: salt or hash too short")
    return n, r, p, salt, digest


def check_hash(stored: str) -> None:
    """`PasswordHashError` (one line) unless `stored` is a usable hash."""
    _parse(stored)


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches `stored`; the final compare is constant-time."""
    n, r, p, salt, digest = _parse(stored)
    given = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=len(digest)
    )
    return hmac.compare_digest(given, digest)


class LoginLimiter:
    """At most `max_failures` wrong passwords per client in a sliding `window_s`."""

    def __init__(self, max_failures: int = 5, window_s: float = 60.0, max_clients: int = 10_000):
        self.max_failures = max_failures
        self.window_s = window_s
        self._max_clients = max_clients
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.get(client, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            self._failures.pop(client, None)
        return times

    def retry_after(self, client: str, now: float) -> float:
        """0 when `client` may try now; else the seconds until it may (HTTP Retry-After)."""
        times = self._recent(client, now)
        if len(times) < self.max_failures:
            return 0.0
        return max(times[0] + self.window_s - now, 0.001)

    def failed(self, client: str, now: float) -> None:
        """Record a wrong password."""
        times = self._recent(client, now)
        if client not in self._failures:
            if len(self._failures) >= self._max_clients:  # bounded memory under a spray
                oldest = min(self._failures, key=lambda c: self._failures[c][-1])
                del self._failures[oldest]
            self._failures[client] = times
        times.append(now)


SESSION_COOKIE = "chargeport_session"


class SessionStore:
    """Operator sessions by token; time (`now`, monotonic seconds) is passed in."""

    def __init__(
        self,
        ttl_s: float = 12 * 3600.0,
        max_sessions: int = 64,
        token: Callable[[], str] = lambda: secrets.token_urlsafe(32),
    ) -> None:
        self.ttl_s = ttl_s
        self._max = max_sessions
        self._token = token
        self._expires: dict[str, float] = {}  # sha256(token) -> expiry

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def create(self, now: float) -> str:
        """A fresh token valid until `now + ttl_s`."""
        self._expire(now)
        while len(self._expires) >= self._max:
            del self._expires[min(self._expires, key=self._expires.__getitem__)]
        token = self._token()
        self._expires[self._key(token)] = now + self.ttl_s
        return token

    def valid(self, token: str | None, now: float) -> bool:
        if not token:
            return False
        expiry = self._expires.get(self._key(token))
        return expiry is not None and now < expiry

    def revoke(self, token: str | None) -> None:
        if token:
            self._expires.pop(self._key(token), None)

    def _expire(self, now: float) -> None:
        for key in [k for k, t in self._expires.items() if t <= now]:
            del self._expires[key]

    def __len__(self) -> int:
        return len(self._expires)


def security_headers(host: str, tls: bool) -> dict[str, str]:
    """Headers for every dashboard response; `host` is the Host the browser used."""
    ws = f"{'wss' if tls else 'ws'}://{host}"
    headers = {
        "Content-Security-Policy": (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
            f"connect-src 'self' {ws}; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }
    if tls:
        headers["Strict-Transport-Security"] = "max-age=31536000"
    return headers


def same_origin(origin: str | None, host: str | None, tls: bool) -> bool:
    """True without an Origin (not a browser) or when it names this dashboard exactly."""
    if origin is None:
        return True
    if not host:
        return False
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return parts.scheme == ("https" if tls else "http") and parts.netloc.lower() == host.lower()


if __name__ == "__main__":  # pragma: no cover - an operator's tool
    first = getpass.getpass("operator password: ")
    if first != getpass.getpass("again: ") or not first:
        raise SystemExit("passwords differ or are empty")
    print(hash_password(first))
