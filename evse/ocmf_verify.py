"""Verifying OCMF records: signature, key, and pagination (the other half of `evse.ocmf`).

A record is split into its three sections within size limits (it is untrusted input); the
signature is checked against the payload section's exact bytes with a key that must be on
secp256r1, the curve `SA` names (OCMF Table 21). `PagingGuard` then keeps the last page seen per
key and context, so a replayed or reordered record is caught: pages of a context only increase
(Table 2; "Signing and Verification Process": "no data records may have been removed or added").
"""

from __future__ import annotations

import base64
import binascii
import decimal
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from evse.errors import EvseError
from evse.ocmf import PAGE_PATTERN, SIGNATURE_ALGORITHM

__all__ = [
    "MAX_RECORD_CHARS",
    "InvalidRecord",
    "PagingGuard",
    "ParsedRecord",
    "key_id",
    "load_public_key",
    "parse_record",
    "verify_record",
]

MAX_RECORD_CHARS = 16_384  # a begin/end record is ~700 chars; anything far larger is refused
_MAX_READINGS = 64
_SIGNATURE_ENCODINGS = ("hex", "base64")  # Table 8, SE
_SIGNATURE_MIME = "application/x-der"  # Table 8, SM (the only value defined)


class InvalidRecord(EvseError):
    """A record or key that does not verify; the message is one line saying why."""


@dataclass(frozen=True, slots=True)
class ParsedRecord:
    """A record split into its sections, with the fields a verifier needs."""

    payload_text: str  # the exact bytes that were signed
    payload: dict[str, Any]
    signature: bytes  # DER
    context: str  # "T" or "F"
    page: int
    readings: tuple[dict[str, Any], ...]

    @property
    def page_label(self) -> str:
        return f"{self.context}{self.page}"


def _one_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text, parse_float=decimal.Decimal)  # keep RV's decimals as written
    except (ValueError, RecursionError) as exc:  # RecursionError: deeply nested input
        raise InvalidRecord(f"{what} is not valid JSON: {_one_line(exc)}") from None
    if not isinstance(value, dict):
        raise InvalidRecord(f"{what} must be a JSON object")
    return value


def parse_record(text: str) -> ParsedRecord:
    """Split and check the structure of a record (plain `OCMF|...` or hex of it)."""
    text = text.strip()
    if len(text) > 2 * MAX_RECORD_CHARS:
        raise InvalidRecord(f"record longer than {MAX_RECORD_CHARS} characters")
    if not text.startswith("OCMF|"):
        try:
            text = binascii.unhexlify(text).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise InvalidRecord(
                "not an OCMF record (must start with 'OCMF|' or be its hex)"
            ) from None
    if len(text) > MAX_RECORD_CHARS:
        raise InvalidRecord(f"record longer than {MAX_RECORD_CHARS} characters")
    parts = text.split("|")
    if len(parts) != 3 or parts[0] != "OCMF":
        raise InvalidRecord("not an OCMF record: expected OCMF|<payload>|<signature>")
    payload_text, sig_text = parts[1], parts[2]
    payload = _json_object(payload_text, "payload")
    sig = _json_object(sig_text, "signature section")

    sa = sig.get("SA", SIGNATURE_ALGORITHM)
    if sa != SIGNATURE_ALGORITHM:
        raise InvalidRecord(f"signature algorithm {sa!r} is not {SIGNATURE_ALGORITHM}")
    se = sig.get("SE", "hex")
    if se not in _SIGNATURE_ENCODINGS:
        raise InvalidRecord(f"signature encoding {se!r} is not hex or base64")
    if sig.get("SM", _SIGNATURE_MIME) != _SIGNATURE_MIME:
        raise InvalidRecord(f"signature mime type must be {_SIGNATURE_MIME}")
    sd = sig.get("SD")
    if not isinstance(sd, str) or not sd:
        raise InvalidRecord("signature data (SD) missing")
    try:
        signature = bytes.fromhex(sd) if se == "hex" else base64.b64decode(sd, validate=True)
    except (ValueError, binascii.Error):
        raise InvalidRecord(f"signature data (SD) is not valid {se}") from None

    pg = payload.get("PG")
    m = PAGE_PATTERN.match(pg) if isinstance(pg, str) else None
    if m is None:
        raise InvalidRecord(f"pagination (PG) must be T<n> or F<n>, got {pg!r}")
    if not isinstance(payload.get("MS"), str) and not isinstance(payload.get("GS"), str):
        raise InvalidRecord("neither meter serial (MS) nor gateway serial (GS) present")
    rd = payload.get("RD")
    if not isinstance(rd, list) or not rd or len(rd) > _MAX_READINGS:
        raise InvalidRecord(f"readings (RD) must be a list of 1 to {_MAX_READINGS} objects")
    if not all(isinstance(r, dict) for r in rd):
        raise InvalidRecord("every reading in RD must be a JSON object")
    return ParsedRecord(payload_text, payload, signature, m.group(1), int(m.group(2)), tuple(rd))


def load_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """A secp256r1 public key from hex or base64 DER SubjectPublicKeyInfo, or PEM."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
        else:
            try:
                der = bytes.fromhex(text)
            except ValueError:
                der = base64.b64decode(text, validate=True)
            key = serialization.load_der_public_key(der)
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise InvalidRecord("public key is not hex/base64 DER or PEM of a public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise InvalidRecord("public key is not an elliptic-curve key")
    if not isinstance(key.curve, ec.SECP256R1):
        raise InvalidRecord(f"public key is on {key.curve.name}, the records use secp256r1")
    return key


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """The key as `PagingGuard` names it: hex of its DER SubjectPublicKeyInfo."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ).hex()


def verify_record(text: str, public_key: ec.EllipticCurvePublicKey) -> ParsedRecord:
    """Parse a record and check its signature over the payload bytes with `public_key`."""
    record = parse_record(text)
    try:
        public_key.verify(
            record.signature, record.payload_text.encode("utf-8"), ec.ECDSA(hashes.SHA256())
        )
    except InvalidSignature:
        raise InvalidRecord(
            "signature does not match the payload and key (tampered, or another key)"
        ) from None
    return record


class PagingGuard:
    """Remembers the last page per key and context; a page that does not increase is refused.

    OCMF Table 2: pages of one context count up by one per record, so a record whose page is
    not above the last one accepted from the same key is a replay or out of order.
    """

    def __init__(self, last: Mapping[tuple[str, str], int] | None = None) -> None:
        self._last: dict[tuple[str, str], int] = dict(last or {})

    @property
    def last(self) -> dict[tuple[str, str], int]:
        return dict(self._last)

    def check(self, key_id: str, record: ParsedRecord) -> None:
        """Raise `InvalidRecord` if `record` would be a replay; does not remember it."""
        last = self._last.get((key_id, record.context))
        if last is not None and record.page <= last:
            raise InvalidRecord(
                f"pagination {record.page_label} is not after {record.context}{last} "
                "already seen from this key (replayed or out of order)"
            )

    def accept(self, key_id: str, record: ParsedRecord) -> None:
        """Check, then remember `record`'s page."""
        self.check(key_id, record)
        self._last[(key_id, record.context)] = record.page
