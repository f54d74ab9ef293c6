"""Security profiles 1-3 and their configuration keys (OCA "Improved security for OCPP 1.6-J",
edition 3, §2 "Security profiles" and the `SecurityProfile` / `AuthorizationKey` keys).

Theory of operation (a pure core: no I/O, effects returned as data):

- The station holds *committed* credentials (the profile and key of the last connection that
  opened) and at most one *pending* change the CSMS made since. A connection attempt uses the
  pending credentials when there are any, else the committed ones.
- `SecurityProfile` only goes up: a lower value is Rejected, the same value changes nothing, a
  higher one is Accepted only when its prerequisites are installed (a password for 1 and 2, a
  CentralSystemRootCertificate for 2 and 3, a valid client certificate for 3); the station then
  disconnects and reconnects with it (`Reconnect`).
- A new `AuthorizationKey` (16..40 characters) is pending until the next connection uses it.
- The attempt with pending credentials opens: they become the committed ones. It fails for a
  reason of security (refused login or certificate, a TLS failure): the station falls back to
  the committed credentials and says so (`SecurityProfileFallback`). A CSMS that is merely
  unreachable says nothing about the new credentials: they are tried again.
- Each refusal (401 from the CSMS, an untrusted CSMS certificate, our client certificate refused)
  is a security event; the same refusal again is not repeated until a connection opened.
"""

from __future__ import annotations

import enum
import socket
import ssl
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from websockets.exceptions import InvalidMessage, InvalidStatus

__all__ = [
    "FAILED_TO_AUTHENTICATE",
    "FALLBACK",
    "INVALID_CP_CERTIFICATE",
    "INVALID_CSMS_CERTIFICATE",
    "INVALID_TLS_CIPHER",
    "INVALID_TLS_VERSION",
    "RECONFIGURATION",
    "Credentials",
    "Event",
    "Failure",
    "Persist",
    "Prerequisites",
    "ProfileCore",
    "Reconnect",
    "classify",
    "initial_profile",
    "url_for",
]

# Whitepaper 1.6 ed. 3, Appendix 1 "Security events" (and one of ours, CamelCase the same way).
FAILED_TO_AUTHENTICATE = "FailedToAuthenticateAtCentralSystem"
INVALID_CSMS_CERTIFICATE = "InvalidCentralSystemCertificate"
INVALID_CP_CERTIFICATE = "InvalidChargePointCertificate"
INVALID_TLS_VERSION = "InvalidTLSVersion"
INVALID_TLS_CIPHER = "InvalidTLSCipherSuite"
RECONFIGURATION = "ReconfigurationOfSecurityParameters"
FALLBACK = "SecurityProfileFallback"

KEY_MIN, KEY_MAX = 16, 40  # AuthorizationKey length (whitepaper 1.6 ed. 3, §2.2)

Status = Literal["Accepted", "Rejected"]


class Failure(enum.Enum):
    """Why a connection attempt failed, as far as security is concerned."""

    BAD_CREDENTIALS = FAILED_TO_AUTHENTICATE  # the CSMS refused our password or certificate
    UNTRUSTED_CSMS = INVALID_CSMS_CERTIFICATE  # the CSMS's certificate did not verify
    TLS_VERSION = INVALID_TLS_VERSION
    TLS_CIPHER = INVALID_TLS_CIPHER
    TLS = "tls"  # another TLS failure (a peer that does not speak TLS): no event of its own
    NETWORK = ""  # refused, unreachable, timed out: the CSMS is down, the credentials untried


@dataclass(frozen=True)
class Credentials:
    profile: int
    key: str  # the AuthorizationKey (Basic auth password), "" = none


@dataclass(frozen=True)
class Prerequisites:
    """What is installed, for the checks of a profile change."""

    csms_root: bool
    client_certificate: bool


@dataclass(frozen=True)
class Event:
    kind: str
    detail: str


@dataclass(frozen=True)
class Reconnect:
    """Close the connection once the answer is out; the next one uses the new profile."""


@dataclass(frozen=True)
class Persist:
    committed: Credentials
    pending: Credentials | None


Effect = Event | Reconnect | Persist


def initial_profile(url: str, password: str, client_certificate: bool) -> int:
    """The profile a station config describes: wss + certificate 3, wss + password 2, ws +
    password 1, otherwise 0 (no security profile)."""
    tls = url.startswith("wss://")
    if tls and client_certificate and not password:
        return 3
    if password:
        return 2 if tls else 1
    return 0


def url_for(profile: int, url: str) -> str:
    """Profiles 2 and 3 are TLS: a ws:// URL becomes wss:// (same host and path)."""
    parts = urlsplit(url)
    if profile >= 2 and parts.scheme == "ws":
        return urlunsplit(("wss", *parts[1:]))
    return url


# Nothing listens there, or the name does not resolve: nothing was learnt about the
# credentials. (A TLS attempt that times out may be a peer that never answers the handshake:
# after a change, that counts as a failed connection.)
_UNREACHABLE = (ConnectionRefusedError, socket.gaierror)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 8:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def classify(exc: BaseException, *, tls: bool, client_certificate: bool) -> tuple[Failure, str]:
    """The security meaning of a failed connection attempt, with a one-line detail."""
    chain = _chain(exc)
    for item in chain:
        if isinstance(item, InvalidStatus) and item.response.status_code in (401, 403):
            return Failure.BAD_CREDENTIALS, f"the CSMS answered HTTP {item.response.status_code}"
        if isinstance(item, ssl.SSLCertVerificationError):
            return Failure.UNTRUSTED_CSMS, str(getattr(item, "verify_message", None) or item)[:200]
        if isinstance(item, ssl.SSLError):
            reason = str(item.reason or item)
            if "PROTOCOL_VERSION" in reason or "UNSUPPORTED_PROTOCOL" in reason:
                return Failure.TLS_VERSION, reason
            if "NO_SHARED_CIPHER" in reason or "NO_CIPHERS" in reason:
                return Failure.TLS_CIPHER, reason
            if "ALERT" in reason and client_certificate:
                return Failure.BAD_CREDENTIALS, f"the CSMS refused the client certificate: {reason}"
            return Failure.TLS, reason
        if isinstance(item, InvalidMessage) and client_certificate:
            # TLS 1.3: the server checks the client certificate after our handshake is done;
            # its refusal arrives as a closed stream before any HTTP answer.
            return Failure.BAD_CREDENTIALS, (
                "the CSMS closed the TLS connection before answering: client certificate refused"
            )
    if tls and not any(isinstance(item, _UNREACHABLE) for item in chain):
        # The CSMS took the TCP connection and then dropped it in the handshake (a peer
        # that does not speak TLS resets it): not a CSMS that is down.
        return Failure.TLS, f"TLS handshake failed: {type(exc).__name__} {str(exc)[:120]}"
    return Failure.NETWORK, str(exc)[:200]


class ProfileCore:
    """Committed and pending credentials with the whitepaper's rules (see the module text)."""

    def __init__(self, committed: Credentials, pending: Credentials | None = None) -> None:
        self.committed = committed
        self.pending = pending
        self._last_failure: tuple[Failure, str] | None = None

    def in_use(self) -> Credentials:
        """The credentials of the next connection attempt."""
        return self.pending or self.committed

    def _persist(self) -> Persist:
        return Persist(self.committed, self.pending)

    def change_profile(self, value: str, have: Prerequisites) -> tuple[Status, list[Effect]]:
        """ChangeConfiguration SecurityProfile (whitepaper 1.6 ed. 3, §2: only upwards)."""
        text = value.strip()
        if not text.isdigit() or int(text) > 3:
            return "Rejected", []
        new = int(text)
        current = self.in_use()
        if new < current.profile:
            return "Rejected", []
        if new == current.profile:
            return "Accepted", []
        if new in (1, 2) and not current.key:
            return "Rejected", []  # Basic auth needs an AuthorizationKey first
        if new >= 2 and not have.csms_root:
            return "Rejected", []  # no CentralSystemRootCertificate to check the CSMS with
        if new == 3 and not have.client_certificate:
            return "Rejected", []  # no valid client certificate (SignCertificate first)
        self.pending = Credentials(new, current.key)
        detail = f"SecurityProfile {current.profile} -> {new}, used from the next connection"
        return "Accepted", [self._persist(), Event(RECONFIGURATION, detail), Reconnect()]

    def change_key(self, value: str) -> tuple[Status, list[Effect]]:
        """ChangeConfiguration AuthorizationKey: used from the next connection on."""
        if not KEY_MIN <= len(value) <= KEY_MAX or not value.isprintable():
            return "Rejected", []
        current = self.in_use()
        self.pending = Credentials(current.profile, value)
        return "Accepted", [self._persist(), Event(RECONFIGURATION, "AuthorizationKey changed")]

    def opened(self) -> list[Effect]:
        """The websocket connection opened with `in_use()` credentials."""
        self._last_failure = None
        if self.pending is None:
            return []
        self.committed, self.pending = self.pending, None
        return [self._persist()]

    def failed(self, failure: Failure, detail: str) -> list[Effect]:
        """A connection attempt with `in_use()` credentials failed."""
        effects: list[Effect] = []
        if failure is Failure.NETWORK:
            return effects
        if failure is not Failure.TLS and self._last_failure != (failure, detail):
            effects.append(Event(failure.value, detail))
        self._last_failure = (failure, detail)
        if self.pending is not None:
            tried = self.pending
            self.pending = None
            effects.append(self._persist())
            effects.append(
                Event(
                    FALLBACK,
                    f"connection with SecurityProfile {tried.profile} failed ({detail[:80]}); "
                    f"back to profile {self.committed.profile}",
                )
            )
        return effects
