"""The session machine's vocabulary: its states, inputs and effects (data only, no logic).

The transitions that use them all live in `evse.session` (STYLE.md rule 2).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from chargeport.port import SessionEventType, StopReason, TransactionData

__all__ = [
    "COMMANDS",
    "Authorize",
    "Block",
    "CancelReservation",
    "Deauthorize",
    "Disable",
    "Drive",
    "Emit",
    "Enable",
    "EvReadyChanged",
    "Plugged",
    "Reservation",
    "Reserve",
    "SessionEffect",
    "SessionInput",
    "St",
    "Stop",
    "TagPresented",
    "Tick",
    "Unplugged",
]


class St(enum.Enum):
    """Session machine states."""

    DISABLED = "disabled"
    IDLE = "idle"
    RESERVED = "reserved"
    AUTHORIZED = "authorized"  # authorized, no EV yet (plug-in timeout running)
    WAITING_FOR_AUTH = "waiting_for_auth"
    PREPARING = "preparing"  # transaction running, EV has not asked for energy yet
    CHARGING = "charging"
    PAUSED_EV = "paused_ev"
    PAUSED_EVSE = "paused_evse"
    FINISHING = "finishing"  # transaction over, EV still plugged in


# ------------------------------------------------------------------ inputs


@dataclass(frozen=True, slots=True)
class Enable:
    pass


@dataclass(frozen=True, slots=True)
class Disable:
    pass


@dataclass(frozen=True, slots=True)
class Plugged:
    pass


@dataclass(frozen=True, slots=True)
class Unplugged:
    pass


@dataclass(frozen=True, slots=True)
class EvReadyChanged:
    ready: bool


@dataclass(frozen=True, slots=True)
class TagPresented:
    """A driver presented an id tag at this port (RFID)."""

    id_tag: str


@dataclass(frozen=True, slots=True)
class Authorize:
    id_tag: str
    reservation_id: int | None = None


@dataclass(frozen=True, slots=True)
class Deauthorize:
    pass


@dataclass(frozen=True, slots=True)
class Stop:
    reason: StopReason


@dataclass(frozen=True, slots=True)
class Block:
    """An EVSE-side reason to withhold energy starts (`on`) or ends."""

    reason: str  # "pause" (station), "limit" (< 6 A), "fault"
    on: bool


@dataclass(frozen=True, slots=True)
class Reserve:
    reservation_id: int
    id_tag: str
    expiry: float  # clock time


@dataclass(frozen=True, slots=True)
class CancelReservation:
    reservation_id: int


@dataclass(frozen=True, slots=True)
class Tick:
    pass


SessionInput = (
    Enable
    | Disable
    | Plugged
    | Unplugged
    | EvReadyChanged
    | TagPresented
    | Authorize
    | Deauthorize
    | Stop
    | Block
    | Reserve
    | CancelReservation
    | Tick
)
# Inputs a caller sends: with no table cell they are refused, not bugs.
COMMANDS = (Enable, Disable, Authorize, Deauthorize, Stop, Reserve, CancelReservation)


# ------------------------------------------------------------------ effects


@dataclass(frozen=True, slots=True)
class Emit:
    type: SessionEventType
    session_id: str
    transaction: TransactionData | None = None


@dataclass(frozen=True, slots=True)
class Drive:
    """What the hardware must do: PWM on, contactor closed, connector locked, port available."""

    pwm: bool
    contactor: bool
    lock: bool
    available: bool


SessionEffect = Emit | Drive


@dataclass(frozen=True, slots=True)
class Reservation:
    reservation_id: int
    id_tag: str
    expiry: float
