"""The board's metering key and pagination counters in its state dir: the I/O beside `evse.ocmf`.

    state_dir/metering/meter-key.pem   PKCS#8 PEM, mode 0600, made on first start, never replaced
    state_dir/metering/paging.json     {"key": <public key hex>, "T": n, "F": n}, atomic writes

The key is never regenerated over an existing file: the public key is printed on the housing
label, and a new one would orphan every record signed so far. `SigningMeter.record` persists the
next page numbers before it hands out a record, so a crash can leave a gap in the pages but never
reuses one (a reused page would look like a replay to every verifier).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from evse.errors import EvseError
from evse.ocmf import (
    MeterIdentity,
    OcmfMeter,
    Reading,
    SignedRecord,
    SoftwareMeterSigner,
    UserAssignment,
    public_key_hex,
)

__all__ = [
    "KEY_FILE",
    "PAGING_FILE",
    "MeterKeyError",
    "SigningMeter",
    "load_counters",
    "load_or_create_signer",
    "load_signer",
    "save_counters",
]

log = logging.getLogger(__name__)

KEY_FILE = Path("metering") / "meter-key.pem"
PAGING_FILE = Path("metering") / "paging.json"
_MAX_FILE = 64 * 1024


class MeterKeyError(EvseError):
    """The metering key or its counters cannot be used; the message says what to fix."""


def load_signer(state_dir: str | Path) -> SoftwareMeterSigner:
    """The board's existing key; `MeterKeyError` if there is none or it is unreadable."""
    path = Path(state_dir) / KEY_FILE
    try:
        mode = path.stat().st_mode
        if mode & 0o077:
            log.warning("%s: mode %o, restricting to 0600", path, stat.S_IMODE(mode))
            path.chmod(0o600)
        data = path.read_bytes()[:_MAX_FILE]
    except FileNotFoundError:
        raise MeterKeyError(
            f"{path}: no metering key (the board makes one on its first start with signing on)"
        ) from None
    except OSError as exc:
        raise MeterKeyError(f"{path}: cannot read the metering key: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise MeterKeyError(f"{path}: not a PEM private key (restore it from a backup)") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise MeterKeyError(f"{path}: the metering key must be an ECDSA secp256r1 key")
    return SoftwareMeterSigner(key)


def load_or_create_signer(state_dir: str | Path) -> tuple[SoftwareMeterSigner, bool]:
    """The board's key, generated (0600) if the state dir has none; True when just made."""
    path = Path(state_dir) / KEY_FILE
    if path.exists():
        return load_signer(state_dir), False
    signer = SoftwareMeterSigner.generate()
    pem = signer.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # made by someone else meanwhile: theirs wins
        return load_signer(state_dir), False
    except OSError as exc:
        raise MeterKeyError(f"{path}: cannot create the metering key: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(path.parent)
    log.info("%s: new metering key %s", path, public_key_hex(signer))
    return signer, True


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def load_counters(state_dir: str | Path, signer: SoftwareMeterSigner) -> dict[str, int]:
    """The next page per context; empty on first start."""
    path = Path(state_dir) / PAGING_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8")[:_MAX_FILE])
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise MeterKeyError(f"{path}: unreadable pagination counters: {exc}") from None
    if not isinstance(data, dict) or data.get("key") != public_key_hex(signer):
        raise MeterKeyError(f"{path}: pagination counters belong to another metering key")
    counters: dict[str, int] = {}
    for ctx in ("T", "F"):
        n = data.get(ctx, 1)
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise MeterKeyError(f"{path}: pagination counter {ctx} must be an integer >= 1")
        counters[ctx] = n
    return counters


def save_counters(
    state_dir: str | Path, signer: SoftwareMeterSigner, counters: dict[str, int]
) -> None:
    """Replace the counters file atomically (write, fsync, rename, fsync the dir)."""
    path = Path(state_dir) / PAGING_FILE
    tmp = path.with_suffix(".tmp")
    body = json.dumps({"key": public_key_hex(signer), **counters}, sort_keys=True)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise MeterKeyError(f"{path}: cannot save pagination counters: {exc.strerror}") from None
    _fsync_dir(path.parent)


class SigningMeter:
    """This board's OCMF meter: signs readings of its own register, pages persisted first."""

    def __init__(self, meter: OcmfMeter, signer: SoftwareMeterSigner, state_dir: Path) -> None:
        self.meter = meter
        self._signer = signer
        self._state_dir = state_dir

    @classmethod
    def open(cls, state_dir: str | Path, identity: MeterIdentity) -> SigningMeter:
        """Load (or on first start make) the key and counters in `state_dir`."""
        signer, _ = load_or_create_signer(state_dir)
        counters = load_counters(state_dir, signer)
        return cls(OcmfMeter(identity, signer, counters), signer, Path(state_dir))

    @property
    def public_key_hex(self) -> str:
        return public_key_hex(self._signer)

    def record(self, reading: Reading, user: UserAssignment | None) -> SignedRecord:
        """Sign `reading` (a transaction record with `user`, else fiscal); blocking file I/O."""
        if user is None:
            rec = self.meter.fiscal_record(reading)
        else:
            rec = self.meter.transaction_record(reading, user)
        save_counters(self._state_dir, self._signer, self.meter.counters)
        return rec
