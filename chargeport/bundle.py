"""Signed firmware bundles: an ed25519-signed manifest followed by the payload.

Layout (streamable: a board verifies while receiving, never holding the image)::

    MAGIC (8 bytes) | manifest length (u32 big-endian) | manifest JSON | signature (64 bytes)
    | payload (manifest.size bytes)

The signature covers the manifest bytes exactly as stored; the manifest carries the payload's
size and sha256, so the signature is checked as soon as the header has arrived and the payload
is checked against the manifest as it streams. `StreamingVerifier` is a pure, synchronous core:
bytes in, payload bytes out, errors raised; the caller does the I/O.

Anti-rollback (OCA "Improved security for OCPP 1.6-J", firmware management): a bundle older
than the installed firmware (semantic version precedence, semver.org 2.0.0 §11) is refused
unless its *signed* manifest carries `allow_downgrade: true` (`chargeport fw sign
--allow-downgrade`). The flag is inside the signed bytes, so only the key holder can permit it.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from chargeport.errors import ChargeportError
from chargeport.pki import write_secret

__all__ = [
    "MAGIC",
    "BundleError",
    "Corrupt",
    "Downgrade",
    "InvalidSignature",
    "Manifest",
    "StreamingVerifier",
    "WrongTarget",
    "check_downgrade",
    "compare_versions",
    "generate_keypair",
    "load_private_key",
    "load_public_key",
    "load_trusted_keys",
    "sign_bundle",
    "verify_file",
]

MAGIC = b"CPFWBND1"
SIGNATURE_SIZE = 64
MAX_MANIFEST = 16 * 1024  # a manifest is a few hundred bytes; anything bigger is garbage
_PREFIX = struct.Struct(">8sI")
_READ = 1024 * 1024


class BundleError(ChargeportError):
    """A firmware bundle was refused."""


class InvalidSignature(BundleError):
    """The manifest is not signed by a trusted key."""


class Corrupt(BundleError):
    """The bundle is malformed, truncated, or its payload does not match the manifest."""


class WrongTarget(BundleError):
    """The bundle is signed correctly but built for another kind of board."""


class Downgrade(BundleError):
    """The bundle is older than the installed firmware and not signed as a permitted downgrade."""


# semver.org 2.0.0 §2, §9, §10: MAJOR.MINOR.PATCH[-prerelease][+build]; a leading "v" tolerated.
_SEMVER = re.compile(
    r"v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)

_Key = tuple[tuple[int, int, int], tuple[tuple[int, int | str], ...] | None]


def _version_key(version: str) -> _Key:
    match = _SEMVER.fullmatch(version.strip())
    if match is None:
        raise ValueError(f"{version!r} is not a semantic version (MAJOR.MINOR.PATCH)")
    core = (int(match[1]), int(match[2]), int(match[3]))
    if match[4] is None:
        return core, None
    # §11.4: numeric identifiers compare numerically and sort before alphanumeric ones.
    pre = tuple((0, int(p)) if p.isdigit() else (1, p) for p in match[4].split("."))
    return core, pre


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as `a` precedes, equals or follows `b` (semver.org 2.0.0 §11); build
    metadata is ignored (§10). `ValueError` when either is not a semantic version."""
    (core_a, pre_a), (core_b, pre_b) = _version_key(a), _version_key(b)
    if core_a != core_b:
        return -1 if core_a < core_b else 1
    if pre_a == pre_b:
        return 0
    if pre_a is None or pre_b is None:  # §11.3: a pre-release precedes its release
        return 1 if pre_a is None else -1
    # §11.4: compare identifier by identifier; a longer list wins when all before are equal.
    for x, y in zip(pre_a, pre_b, strict=False):
        if x != y:
            return -1 if x < y else 1
    return -1 if len(pre_a) < len(pre_b) else 1


def check_downgrade(manifest: Manifest, installed: str) -> None:
    """Refuse (`Downgrade`) a bundle older than `installed` unless it is signed as a permitted
    downgrade; a version that cannot be compared is refused the same way (fail closed)."""
    if manifest.allow_downgrade:
        return
    try:
        older = compare_versions(manifest.version, installed) < 0
    except ValueError as exc:
        raise Downgrade(f"cannot compare firmware versions: {exc}") from None
    if older:
        raise Downgrade(
            f"firmware {manifest.version} is older than the installed {installed} "
            "(anti-rollback: sign it with --allow-downgrade to permit this)"
        )


@dataclass(frozen=True, slots=True)
class Manifest:
    version: str
    target: str
    size: int
    sha256: str
    created: float
    allow_downgrade: bool = False

    def to_bytes(self) -> bytes:
        """Canonical JSON (sorted keys, no spaces): the bytes that get signed. The downgrade
        flag is written only when set, so an ordinary bundle keeps its original form."""
        fields = asdict(self)
        if not self.allow_downgrade:
            del fields["allow_downgrade"]
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Parse a manifest; `Corrupt` when a field is missing or of the wrong type."""
        try:
            raw = json.loads(data)
            manifest = cls(
                version=str(raw["version"]),
                target=str(raw["target"]),
                size=int(raw["size"]),
                sha256=str(raw["sha256"]),
                created=float(raw["created"]),
                allow_downgrade=_flag(raw.get("allow_downgrade", False)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise Corrupt(f"bundle manifest is not valid: {exc}") from None
        if manifest.size < 0 or len(manifest.sha256) != 64:
            raise Corrupt("bundle manifest has an impossible size or digest")
        return manifest


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError("allow_downgrade must be true or false")
    return value


class StreamingVerifier:
    """Feed bundle bytes in order; get payload bytes back; `finish()` returns the manifest.

    Raises `InvalidSignature` as soon as the header is complete and unsigned by a trusted key,
    `WrongTarget` right after, then `Downgrade` when `installed` is given and the bundle is older,
    and `Corrupt` for bad framing, extra bytes, truncation or a payload digest mismatch (the last
    two only at `finish()`).
    """

    def __init__(
        self,
        trusted_keys: Sequence[Ed25519PublicKey],
        target: str | None,
        installed: str | None = None,
    ) -> None:
        if not trusted_keys:
            raise InvalidSignature("no trusted firmware keys are configured")
        self._keys = list(trusted_keys)
        self._target = target
        self._installed = installed
        self._header = bytearray()
        self._manifest: Manifest | None = None
        self._header_size = 0
        self._hash = hashlib.sha256()
        self._payload_seen = 0
        self.received = 0

    @property
    def manifest(self) -> Manifest | None:
        """The verified manifest once the header has arrived, else None."""
        return self._manifest

    @property
    def total_size(self) -> int | None:
        """The whole bundle's size once the header has arrived."""
        if self._manifest is None:
            return None
        return self._header_size + self._manifest.size

    def feed(self, chunk: bytes) -> bytes | memoryview:
        """Consume the next bytes; returns the payload bytes they contained (maybe empty)."""
        self.received += len(chunk)
        if self._manifest is None:
            self._header += chunk
            if not self._parse_header():
                return b""
            rest = bytes(self._header[self._header_size :])
            self._header = bytearray(self._header[: self._header_size])
            return self._payload(rest)
        return self._payload(chunk)

    def finish(self) -> Manifest:
        """Check the stream ended exactly at the end of the payload with the signed digest."""
        if self._manifest is None:
            raise Corrupt(f"bundle truncated: header incomplete after {self.received} bytes")
        if self._payload_seen != self._manifest.size:
            raise Corrupt(
                f"bundle truncated: payload has {self._payload_seen} of {self._manifest.size} bytes"
            )
        if self._hash.hexdigest() != self._manifest.sha256:
            raise Corrupt("bundle payload does not match its signed sha256 (corrupted)")
        return self._manifest

    def _payload(self, data: bytes | memoryview) -> bytes | memoryview:
        assert self._manifest is not None
        if self._payload_seen + len(data) > self._manifest.size:
            raise Corrupt("bundle is longer than its manifest says")
        self._payload_seen += len(data)
        self._hash.update(data)
        return data

    def _parse_header(self) -> bool:
        if len(self._header) < _PREFIX.size:
            if not MAGIC.startswith(bytes(self._header[: len(MAGIC)])):
                raise Corrupt("not a chargeport firmware bundle (bad magic)")
            return False
        magic, length = _PREFIX.unpack_from(self._header)
        if magic != MAGIC:
            raise Corrupt("not a chargeport firmware bundle (bad magic)")
        if length > MAX_MANIFEST:
            raise Corrupt(f"bundle manifest length {length} is too large")
        self._header_size = _PREFIX.size + length + SIGNATURE_SIZE
        if len(self._header) < self._header_size:
            return False
        body = bytes(self._header[_PREFIX.size : _PREFIX.size + length])
        signature = bytes(self._header[_PREFIX.size + length : self._header_size])
        if not any(_verifies(key, signature, body) for key in self._keys):
            raise InvalidSignature("bundle is not signed by a trusted key")
        manifest = Manifest.from_bytes(body)
        if self._target is not None and manifest.target != self._target:
            raise WrongTarget(
                f"bundle is for target {manifest.target!r}, this station is {self._target!r}"
            )
        if self._installed is not None:
            check_downgrade(manifest, self._installed)
        self._manifest = manifest
        return True


def _verifies(key: Ed25519PublicKey, signature: bytes, body: bytes) -> bool:
    try:
        key.verify(signature, body)
    except _CryptoInvalidSignature:
        return False
    return True


def _chunks(path: Path) -> Iterable[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(_READ):
            yield chunk


def sign_bundle(
    payload_path: str | Path,
    key: Ed25519PrivateKey,
    version: str,
    target: str,
    out_path: str | Path,
    created: float | None = None,
    *,
    allow_downgrade: bool = False,
) -> Manifest:
    """Write a signed bundle for `payload_path` to `out_path`, streaming (two passes).

    `allow_downgrade` signs the bundle as installable over a newer version (anti-rollback
    exception); `version` must be a semantic version so boards can compare it."""
    try:
        _version_key(version)  # now, rather than a bundle that every board refuses
    except ValueError as exc:
        raise BundleError(f"cannot sign: version {exc}") from None
    payload_path = Path(payload_path)
    digest = hashlib.sha256()
    size = 0
    for chunk in _chunks(payload_path):
        digest.update(chunk)
        size += len(chunk)
    manifest = Manifest(
        version=version,
        target=target,
        size=size,
        sha256=digest.hexdigest(),
        created=time.time() if created is None else created,
        allow_downgrade=allow_downgrade,
    )
    body = manifest.to_bytes()
    with Path(out_path).open("wb") as out:
        out.write(_PREFIX.pack(MAGIC, len(body)) + body + key.sign(body))
        for chunk in _chunks(payload_path):
            out.write(chunk)
    return manifest


def verify_file(
    path: str | Path,
    trusted_keys: Sequence[Ed25519PublicKey],
    target: str | None,
    installed: str | None = None,
) -> Manifest:
    """Verify a bundle on disk in bounded memory (and refuse a downgrade below `installed`);
    raises a `BundleError`."""
    verifier = StreamingVerifier(trusted_keys, target, installed)
    try:
        for chunk in _chunks(Path(path)):
            verifier.feed(chunk)
    except OSError as exc:
        raise Corrupt(f"cannot read bundle {path}: {exc.strerror or exc}") from None
    return verifier.finish()


def generate_keypair(out: str | Path) -> Path:
    """Write a new ed25519 private key to `out` and its public key to `out`.pub (PEM)."""
    out = Path(out)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_secret(out, pem)  # 0600 from the first byte
    pub = out.with_name(out.name + ".pub")
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pub


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """Read an ed25519 private key (PEM); `BundleError` with one line when it is not one."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise BundleError(f"{path}: not a readable ed25519 private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"{path}: not an ed25519 private key")
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """Read an ed25519 public key (PEM)."""
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path}: not a readable ed25519 public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"{path}: not an ed25519 public key")
    return key


def load_trusted_keys(
    keys: Iterable[str | Path | Ed25519PublicKey],
) -> list[Ed25519PublicKey]:
    """Public keys given as objects or PEM file paths (FirmwareConfig.trusted_keys)."""
    return [k if isinstance(k, Ed25519PublicKey) else load_public_key(k) for k in keys]
