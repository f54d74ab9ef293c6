"""OCMF (Open Charge Metering Format, S.A.F.E. e.V.) records: build and sign them.

Theory of operation. A record is `OCMF|<payload JSON>|<signature JSON>` (OCMF "Sections"); the
signature is ECDSA secp256r1 over the SHA-256 of the payload section's exact bytes, DER-encoded,
hex in `SD` (Table 8, SA default `ECDSA-secp256r1-SHA256`). The payload is written here by hand in
one fixed key order, so the same inputs give the same bytes and the reading value keeps the exact
decimals it was written with (Table 7: "RV ... must not be transformed"). `OcmfMeter` numbers the
records: one pagination counter per context, `T` for readings tied to a transaction, `F` for
fiscal readings outside one (Table 2: "incremented after each use for a record"); the caller
persists `counters` before it releases a record, so a restart never reuses a page. Verification
is the other half, in `evse.ocmf_verify`.

No I/O here; time comes in as POSIX seconds in each `Reading`. The key lives behind the
`MeterSigner` seam (`evse.meter_key` keeps a software key in the board's state dir; a secure
element would implement the same two methods).
"""

from __future__ import annotations

import datetime
import enum
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = [
    "END_REASONS",
    "FORMAT_VERSION",
    "OBIS_ACTIVE_IMPORT",
    "PAGE_PATTERN",
    "SIGNATURE_ALGORITHM",
    "MeterIdentity",
    "MeterSigner",
    "MeterStatus",
    "OcmfMeter",
    "Reading",
    "ReadingReason",
    "SignedRecord",
    "SoftwareMeterSigner",
    "TimeStatus",
    "UserAssignment",
    "build_payload",
    "format_energy_kwh",
    "format_time",
    "public_key_hex",
    "sign_payload",
]

SIGNATURE_ALGORITHM = "ECDSA-secp256r1-SHA256"  # Table 21; also the default when SA is absent
FORMAT_VERSION = "1.0"
OBIS_ACTIVE_IMPORT = "1-b:1.8.0"  # active energy import, the register billed on
PAGE_PATTERN = re.compile(r"^([TF])(0|[1-9][0-9]{0,17})$")  # Table 2: letter, no leading zeros


class ReadingReason(enum.StrEnum):
    """Table 7, TX: why a reading was taken (absent for fiscal readings)."""

    BEGIN = "B"
    CHARGING = "C"
    EXCEPTION = "X"
    END = "E"
    END_LOCAL = "L"
    END_REMOTE = "R"
    END_ABORT = "A"
    END_POWER_FAILURE = "P"
    SUSPENDED = "S"
    TARIFF_CHANGE = "T"


END_REASONS = frozenset(
    {
        ReadingReason.END,
        ReadingReason.END_LOCAL,
        ReadingReason.END_REMOTE,
        ReadingReason.END_ABORT,
        ReadingReason.END_POWER_FAILURE,
    }
)


class TimeStatus(enum.StrEnum):
    """Table 19: the clock's synchronisation state, appended to TM after a space."""

    UNKNOWN = "U"
    INFORMATIVE = "I"
    SYNCHRONIZED = "S"
    RELATIVE = "R"


class MeterStatus(enum.StrEnum):
    """Table 10, ST: the meter's state at the time of the reading."""

    NOT_PRESENT = "N"
    OK = "G"
    TIMEOUT = "T"
    DISCONNECTED = "D"
    NOT_FOUND = "R"
    MANIPULATED = "M"
    EXCHANGED = "X"
    INCOMPATIBLE = "I"
    OUT_OF_RANGE = "O"
    SUBSTITUTE = "S"
    OTHER_ERROR = "E"
    READ_ERROR = "F"


def _no_pipe(name: str, value: str) -> None:
    # Sections are separated by '|', which therefore must not occur inside one ("Sections").
    if "|" in value:
        raise ValueError(f"{name} must not contain '|' (the OCMF section separator)")


@dataclass(frozen=True, slots=True)
class MeterIdentity:
    """Tables 1 and 3: the signing component (this board) and its meter."""

    gateway_id: str  # GI: manufacturer / model of the system that signs
    gateway_serial: str  # GS: the board's serial
    gateway_version: str  # GV: the board's firmware version
    meter_vendor: str  # MV
    meter_model: str  # MM
    meter_serial: str  # MS (1..1)
    meter_firmware: str = ""  # MF, left out when empty

    def __post_init__(self) -> None:
        for name in ("gateway_id", "gateway_serial", "gateway_version"):
            _no_pipe(name, getattr(self, name))
        for name in ("meter_vendor", "meter_model", "meter_serial", "meter_firmware"):
            _no_pipe(name, getattr(self, name))
        if not self.meter_serial:
            raise ValueError("meter_serial (MS) is mandatory (OCMF Table 3)")


@dataclass(frozen=True, slots=True)
class UserAssignment:
    """Table 4: present exactly when the reading refers to a transaction."""

    assigned: bool  # IS
    id_type: str = "NONE"  # IT, Table 17
    id_data: str = ""  # ID, left out when empty
    flags: tuple[str, ...] = ()  # IF, Tables 13-16 (0..4)
    level: str = ""  # IL, Table 11, left out when empty

    def __post_init__(self) -> None:
        if len(self.flags) > 4:
            raise ValueError("at most 4 identification flags (OCMF Table 4, IF 0..4)")
        for value in (self.id_type, self.id_data, self.level, *self.flags):
            _no_pipe("user assignment", value)

    @classmethod
    def from_id_tag(cls, id_tag: str) -> UserAssignment:
        """The user as OCPP authorized them: an idTag is central identification (Table 17)."""
        if not id_tag:
            return cls(assigned=False, flags=("OCPP_NONE",))
        return cls(assigned=True, id_type="CENTRAL", id_data=id_tag, flags=("OCPP_AUTH",))


@dataclass(frozen=True, slots=True)
class Reading:
    """One reading of the board's own energy register."""

    time: float  # POSIX seconds
    energy_wh: float  # the register, in Wh
    reason: ReadingReason | None = None  # TX; None: a fiscal reading
    time_status: TimeStatus = TimeStatus.SYNCHRONIZED
    status: MeterStatus = MeterStatus.OK
    error_flags: str = ""  # EF: "E" energy, "t" time no longer usable
    utc_offset_min: int = 0

    def __post_init__(self) -> None:
        if not math.isfinite(self.energy_wh) or self.energy_wh < 0:
            raise ValueError(f"energy register must be finite and >= 0 Wh, got {self.energy_wh}")
        if not math.isfinite(self.time):
            raise ValueError("reading time must be finite")
        if set(self.error_flags) - {"E", "t"}:
            raise ValueError(f"error flags are 'E' and 't' (OCMF Table 7), got {self.error_flags}")
        if not -24 * 60 < self.utc_offset_min < 24 * 60:
            raise ValueError(f"utc offset out of range: {self.utc_offset_min} min")


def format_time(t: float, status: TimeStatus, utc_offset_min: int = 0) -> str:
    """Table 7, TM: `YYYY-MM-DDThh:mm:ss,fff+zzzz S` (milliseconds, colon-free zone)."""
    ms = math.floor(t * 1000.0 + 1e-6)
    tz = datetime.timezone(datetime.timedelta(minutes=utc_offset_min))
    dt = datetime.datetime.fromtimestamp(ms // 1000, tz)
    sign = "-" if utc_offset_min < 0 else "+"
    hh, mm = divmod(abs(utc_offset_min), 60)
    return f"{dt:%Y-%m-%dT%H:%M:%S},{ms % 1000:03d}{sign}{hh:02d}{mm:02d} {status.value}"


def format_energy_kwh(energy_wh: float) -> str:
    """The register as a kWh JSON number with Wh resolution, never rounded up."""
    wh = math.floor(energy_wh + 1e-9)
    return f"{wh // 1000}.{wh % 1000:03d}"


def _reading_json(r: Reading) -> str:
    parts = [f'"TM":{json.dumps(format_time(r.time, r.time_status, r.utc_offset_min))}']
    if r.reason is not None:
        parts.append(f'"TX":"{r.reason.value}"')
    parts.append(f'"RV":{format_energy_kwh(r.energy_wh)}')  # a JSON number, exactly as written
    parts.append(f'"RI":"{OBIS_ACTIVE_IMPORT}","RU":"kWh","RT":"AC"')
    parts.append(f'"EF":{json.dumps(r.error_flags)},"ST":"{r.status.value}"')
    return "{" + ",".join(parts) + "}"


def build_payload(
    identity: MeterIdentity,
    page: str,
    readings: Sequence[Reading],
    user: UserAssignment | None,
    tariff_text: str = "",
) -> str:
    """The payload section (Tables 1-7) in a fixed key order, compact, with no '|' in it."""
    if not PAGE_PATTERN.match(page):
        raise ValueError(f"pagination must be T<n> or F<n> (OCMF Table 2), got {page!r}")
    if not readings:
        raise ValueError("a record holds one or more readings (OCMF Table 7)")
    fiscal = page[0] == "F"
    if fiscal != (user is None):
        raise ValueError("the user assignment is present exactly for transaction records (T)")
    if any((r.reason is None) != fiscal for r in readings):
        raise ValueError("TX is present exactly for transaction records (OCMF Table 7)")
    if len(tariff_text) > 250:
        raise ValueError("tariff text is at most 250 characters (OCMF Table 4)")
    _no_pipe("tariff text", tariff_text)

    def s(value: str) -> str:
        return json.dumps(value)

    out = [
        f'"FV":{s(FORMAT_VERSION)}',
        f'"GI":{s(identity.gateway_id)}',
        f'"GS":{s(identity.gateway_serial)}',
        f'"GV":{s(identity.gateway_version)}',
        f'"PG":{s(page)}',
        f'"MV":{s(identity.meter_vendor)}',
        f'"MM":{s(identity.meter_model)}',
        f'"MS":{s(identity.meter_serial)}',
    ]
    if identity.meter_firmware:
        out.append(f'"MF":{s(identity.meter_firmware)}')
    if user is not None:
        out.append(f'"IS":{"true" if user.assigned else "false"}')
        if user.level:
            out.append(f'"IL":{s(user.level)}')
        out.append(f'"IF":[{",".join(s(f) for f in user.flags)}]')
        out.append(f'"IT":{s(user.id_type)}')
        if user.id_data:
            out.append(f'"ID":{s(user.id_data)}')
        if tariff_text:
            out.append(f'"TT":{s(tariff_text)}')
    out.append(f'"RD":[{",".join(_reading_json(r) for r in readings)}]')
    return "{" + ",".join(out) + "}"


# ------------------------------------------------------------------ the signing seam


class MeterSigner(Protocol):
    """What signs a payload: a software key, a secure element, or a meter's own key."""

    def public_key_der(self) -> bytes:
        """The public key as DER SubjectPublicKeyInfo."""
        ...

    def sign(self, data: bytes) -> bytes:
        """ECDSA secp256r1 over SHA-256 of `data`, as a DER signature."""
        ...


class SoftwareMeterSigner:
    """A `MeterSigner` over a P-256 private key held in memory."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError(f"the metering key must be secp256r1, got {key.curve.name}")
        self._key = key
        self._public_der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @classmethod
    def generate(cls) -> SoftwareMeterSigner:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @property
    def private_key(self) -> ec.EllipticCurvePrivateKey:
        return self._key

    def public_key_der(self) -> bytes:
        return self._public_der

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))


def public_key_hex(signer: MeterSigner) -> str:
    """The public key as transparency software takes it: hex of the DER SubjectPublicKeyInfo."""
    return signer.public_key_der().hex()


def sign_payload(payload: str, signer: MeterSigner) -> str:
    """The whole record: header, payload, and the signature section over the payload bytes."""
    sd = signer.sign(payload.encode("utf-8")).hex()
    return f'OCMF|{payload}|{{"SA":"{SIGNATURE_ALGORITHM}","SD":"{sd}"}}'


@dataclass(frozen=True, slots=True)
class SignedRecord:
    """One signed record and what it says, for whoever carries it (OCPP SignedData)."""

    text: str
    page: str
    reading: Reading


class OcmfMeter:
    """Numbers and signs this board's records (no I/O; the caller persists `counters`)."""

    def __init__(
        self,
        identity: MeterIdentity,
        signer: MeterSigner,
        counters: Mapping[str, int] | None = None,
    ) -> None:
        self.identity = identity
        self.signer = signer
        self._next = {"T": 1, "F": 1}
        for ctx, n in (counters or {}).items():
            if ctx not in self._next or n < 1:
                raise ValueError(f"bad pagination counter {ctx}={n}")
            self._next[ctx] = n

    @property
    def counters(self) -> dict[str, int]:
        """The next page number per context (persist this before releasing a record)."""
        return dict(self._next)

    def transaction_record(
        self, reading: Reading, user: UserAssignment, tariff_text: str = ""
    ) -> SignedRecord:
        """A transaction reading (TX set; begin, end, or during charging): page T<n>."""
        if reading.reason is None:
            raise ValueError("a transaction reading needs a reason (TX)")
        return self._record("T", reading, user, tariff_text)

    def fiscal_record(self, reading: Reading) -> SignedRecord:
        """A reading outside any transaction: page F<n>, no TX, no user section."""
        if reading.reason is not None:
            raise ValueError("a fiscal reading has no transaction reason (TX)")
        return self._record("F", reading, None, "")

    def _record(
        self, ctx: str, reading: Reading, user: UserAssignment | None, tariff_text: str
    ) -> SignedRecord:
        page = f"{ctx}{self._next[ctx]}"
        text = sign_payload(
            build_payload(self.identity, page, [reading], user, tariff_text), self.signer
        )
        self._next[ctx] += 1
        return SignedRecord(text, page, reading)
