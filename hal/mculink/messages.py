"""The MCU link message set: typed messages and their fixed binary layout (little endian).

Commands from the host carry a `seq` the MCU echoes in an `Ack` once it has applied them;
reports from the MCU are pushed on every change and repeated periodically.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from hal.base import HalError

__all__ = [
    "Ack",
    "ContactorFeedback",
    "CpLevel",
    "Currents",
    "Fault",
    "LockFeedback",
    "Message",
    "MessageError",
    "Ping",
    "Pong",
    "RcdStatus",
    "ResetRcd",
    "SetContactor",
    "SetCpDuty",
    "SetLinkKey",
    "SetLock",
    "Temperature",
    "decode_message",
    "encode_message",
]


class MessageError(HalError, ValueError):
    """A decrypted payload is not a valid message (unknown type or wrong length)."""


@dataclass(frozen=True, slots=True)
class Ping:
    seq: int


@dataclass(frozen=True, slots=True)
class Pong:
    seq: int


@dataclass(frozen=True, slots=True)
class SetCpDuty:
    """IEC 61851-1 PWM duty in percent; 100 = steady +12 V, 0 = steady -12 V (state F)."""

    seq: int
    percent: float


@dataclass(frozen=True, slots=True)
class SetContactor:
    seq: int
    closed: bool


@dataclass(frozen=True, slots=True)
class SetLock:
    seq: int
    locked: bool


@dataclass(frozen=True, slots=True)
class ResetRcd:
    seq: int


@dataclass(frozen=True, slots=True)
class SetLinkKey:
    """Replace the long-term link key (docs/mcu-link.md, "Key provisioning").

    Sent only inside an established session; the MCU stores the key, acknowledges under the
    current session, and uses the new key from its next handshake. Never in a repr or a log."""

    seq: int
    key: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Ack:
    """The MCU applied (ok) or refused the command `seq`."""

    seq: int
    ok: bool


@dataclass(frozen=True, slots=True)
class CpLevel:
    """Positive CP plateau in volts and whether the negative plateau shows the EV diode."""

    volts: float
    diode_ok: bool


@dataclass(frozen=True, slots=True)
class ContactorFeedback:
    closed: bool  # the mirror contact


@dataclass(frozen=True, slots=True)
class LockFeedback:
    locked: bool


@dataclass(frozen=True, slots=True)
class Temperature:
    celsius: float


@dataclass(frozen=True, slots=True)
class RcdStatus:
    tripped: bool


@dataclass(frozen=True, slots=True)
class Currents:
    """Per-phase RMS currents the MCU measures, in amps."""

    l1: float
    l2: float
    l3: float


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault the MCU detected (`code` is MCU-defined) became active or cleared."""

    code: int
    active: bool
    text: str = ""


Message = (
    Ping
    | Pong
    | SetCpDuty
    | SetContactor
    | SetLock
    | ResetRcd
    | SetLinkKey
    | Ack
    | CpLevel
    | ContactorFeedback
    | LockFeedback
    | Temperature
    | RcdStatus
    | Currents
    | Fault
)

# type id -> (class, struct layout of the fixed fields). Fault's text is the remainder.
_LAYOUT: dict[int, tuple[type[Message], struct.Struct]] = {
    0x01: (Ping, struct.Struct("<I")),
    0x02: (Pong, struct.Struct("<I")),
    0x10: (SetCpDuty, struct.Struct("<Hf")),
    0x11: (SetContactor, struct.Struct("<H?")),
    0x12: (SetLock, struct.Struct("<H?")),
    0x13: (ResetRcd, struct.Struct("<H")),
    0x14: (SetLinkKey, struct.Struct("<H32s")),
    0x1F: (Ack, struct.Struct("<H?")),
    0x20: (CpLevel, struct.Struct("<f?")),
    0x21: (ContactorFeedback, struct.Struct("<?")),
    0x22: (LockFeedback, struct.Struct("<?")),
    0x23: (Temperature, struct.Struct("<f")),
    0x24: (RcdStatus, struct.Struct("<?")),
    0x25: (Currents, struct.Struct("<fff")),
    0x30: (Fault, struct.Struct("<H?")),
}
_TYPE_ID = {cls: tid for tid, (cls, _) in _LAYOUT.items()}
_MAX_TEXT = 200


def encode_message(msg: Message) -> bytes:
    """The payload bytes of `msg`: type id then its fields."""
    tid = _TYPE_ID[type(msg)]
    layout = _LAYOUT[tid][1]
    if isinstance(msg, Fault):
        text = msg.text.encode("utf-8")[:_MAX_TEXT]
        return bytes([tid]) + layout.pack(msg.code, msg.active) + text
    if isinstance(msg, SetLinkKey) and len(msg.key) != 32:
        raise ValueError("SetLinkKey: the link key must be 32 bytes")
    fields = [getattr(msg, name) for name in msg.__slots__]
    return bytes([tid]) + layout.pack(*fields)


def decode_message(payload: bytes) -> Message:
    """Parse a payload; raise `MessageError` when it is not one of ours."""
    if not payload or payload[0] not in _LAYOUT:
        raise MessageError(f"unknown message type {payload[:1].hex() or '(empty)'}")
    cls, layout = _LAYOUT[payload[0]]
    body = payload[1:]
    if cls is Fault:
        if len(body) < layout.size:
            raise MessageError("short Fault message")
        code, active = layout.unpack_from(body)
        text = body[layout.size :].decode("utf-8", errors="replace")
        return Fault(code, active, text)
    if len(body) != layout.size:
        raise MessageError(f"{cls.__name__}: {len(body)} bytes, expected {layout.size}")
    return cls(*layout.unpack(body))
