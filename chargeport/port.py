"""The ChargePort contract: what the station can ask of one port, and the events it yields.

`LocalPort` (evse runtime on this board) and `RemotePort` (the same calls over gRPC to a
satellite agent) both implement `ChargePort`; the main's OCPP and energy logic cannot tell them
apart. Session events use EVerest's evse_manager vocabulary.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from chargeport.errors import ChargeportError

__all__ = [
    "ChargePort",
    "CommandRefused",
    "CpState",
    "CpStateChanged",
    "ErrorCode",
    "InvalidArgument",
    "LimitsChanged",
    "LinkChanged",
    "MeterValue",
    "PortDisabledChanged",
    "PortError",
    "PortErrorEvent",
    "PortEvent",
    "PortEventBody",
    "PortInfo",
    "PortNotFound",
    "PortStatus",
    "PortUnavailable",
    "SessionEvent",
    "SessionEventType",
    "SessionState",
    "StopReason",
    "TransactionData",
]


class CpState(enum.Enum):
    """IEC 61851-1 control pilot states (Annex A, table A.3)."""

    A = "A"  # +12 V: no vehicle
    B = "B"  # +9 V: vehicle connected, not ready
    C = "C"  # +6 V: vehicle ready, charging
    D = "D"  # +3 V: ready, ventilation required
    E = "E"  # 0 V: short / no power
    F = "F"  # -12 V: EVSE not available / fault


class SessionEventType(enum.Enum):
    """EVerest evse_manager SessionEventEnum values we emit."""

    ENABLED = "Enabled"
    DISABLED = "Disabled"
    SESSION_STARTED = "SessionStarted"
    AUTH_REQUIRED = "AuthRequired"
    AUTHORIZED = "Authorized"
    DEAUTHORIZED = "Deauthorized"
    TRANSACTION_STARTED = "TransactionStarted"
    PREPARE_CHARGING = "PrepareCharging"
    CHARGING_STARTED = "ChargingStarted"
    CHARGING_PAUSED_EV = "ChargingPausedEV"
    CHARGING_PAUSED_EVSE = "ChargingPausedEVSE"
    WAITING_FOR_ENERGY = "WaitingForEnergy"
    CHARGING_RESUMED = "ChargingResumed"
    STOPPING_CHARGING = "StoppingCharging"
    CHARGING_FINISHED = "ChargingFinished"
    TRANSACTION_FINISHED = "TransactionFinished"
    SESSION_FINISHED = "SessionFinished"
    RESERVATION_START = "ReservationStart"
    RESERVATION_END = "ReservationEnd"
    PLUGIN_TIMEOUT = "PluginTimeout"


class SessionState(enum.Enum):
    """The port's session state as a whole (what a status snapshot reports)."""

    IDLE = "Idle"  # nothing plugged in
    RESERVED = "Reserved"
    WAITING_FOR_AUTH = "WaitingForAuthentication"
    PREPARING = "Preparing"  # authorized, waiting for the EV to request energy
    CHARGING = "Charging"
    PAUSED_EV = "ChargingPausedEV"
    PAUSED_EVSE = "ChargingPausedEVSE"
    FINISHING = "Finishing"  # transaction over, EV still plugged in
    FAULTED = "Faulted"
    DISABLED = "Disabled"


class StopReason(enum.Enum):
    """Why a transaction ended; values are OCPP 1.6 Reason values."""

    LOCAL = "Local"
    REMOTE = "Remote"
    EV_DISCONNECTED = "EVDisconnected"
    HARD_RESET = "HardReset"
    SOFT_RESET = "SoftReset"
    POWER_LOSS = "PowerLoss"
    REBOOT = "Reboot"
    EMERGENCY_STOP = "EmergencyStop"
    DE_AUTHORIZED = "DeAuthorized"
    UNLOCK_COMMAND = "UnlockCommand"
    OTHER = "Other"


class ErrorCode(enum.Enum):
    """Port faults; values are the OCPP 1.6 ChargePointErrorCode each maps to."""

    CONNECTOR_LOCK_FAILURE = "ConnectorLockFailure"
    EV_COMMUNICATION_ERROR = "EVCommunicationError"  # CP diode fault, CP short
    GROUND_FAILURE = "GroundFailure"  # RCD trip
    HIGH_TEMPERATURE = "HighTemperature"
    INTERNAL_ERROR = "InternalError"
    OVER_CURRENT_FAILURE = "OverCurrentFailure"
    OVER_VOLTAGE = "OverVoltage"
    UNDER_VOLTAGE = "UnderVoltage"
    POWER_METER_FAILURE = "PowerMeterFailure"
    POWER_SWITCH_FAILURE = "PowerSwitchFailure"  # welded / stuck contactor
    OTHER_ERROR = "OtherError"


# ------------------------------------------------------------------ errors


class PortError(ChargeportError):
    """Base of every error a ChargePort command raises."""


class CommandRefused(PortError):
    """The port cannot do that now (gRPC FAILED_PRECONDITION)."""


class InvalidArgument(PortError):
    """A command argument is out of range (gRPC INVALID_ARGUMENT)."""


class PortNotFound(PortError):
    """No such connector (gRPC NOT_FOUND)."""


class PortUnavailable(PortError):
    """The port cannot be reached: link down or board restarting (gRPC UNAVAILABLE)."""


# ------------------------------------------------------------------ data


@dataclass(frozen=True, slots=True)
class PortInfo:
    """What the station knows about a port without asking it anything."""

    connector_id: int  # the station-level connector number (1..N)
    serial: str
    firmware_version: str
    max_current_a: float
    phases: int
    connector_type: str = "Type2Socket"
    remote: bool = False


@dataclass(frozen=True, slots=True)
class TransactionData:
    transaction_id: str
    id_tag: str
    meter_wh: float
    reservation_id: int | None = None
    stop_reason: StopReason | None = None
    # The board's OCMF record of `meter_wh` (begin or end), signed with its own metering key;
    # "" when the board does not sign (port.meter_signing off).
    signed_meter: str = ""


@dataclass(frozen=True, slots=True)
class SessionEvent:
    type: SessionEventType
    session_id: str
    transaction: TransactionData | None = None


@dataclass(frozen=True, slots=True)
class CpStateChanged:
    state: CpState


@dataclass(frozen=True, slots=True)
class MeterValue:
    energy_wh: float
    power_w: float
    voltage_v: tuple[float, ...] = ()
    current_a: tuple[float, ...] = ()
    frequency_hz: float = 0.0
    temperature_c: float = 0.0
    power_factor: float = 0.0


@dataclass(frozen=True, slots=True)
class LimitsChanged:
    max_current_a: float
    phases: int


@dataclass(frozen=True, slots=True)
class PortErrorEvent:
    code: ErrorCode
    message: str
    active: bool  # False: the error cleared


@dataclass(frozen=True, slots=True)
class PortDisabledChanged:
    enabled: bool


@dataclass(frozen=True, slots=True)
class LinkChanged:
    """Only from a RemotePort: the link to the satellite went up (after Ready) or down."""

    connected: bool
    boot_id: str = ""
    firmware_version: str = ""


PortEventBody = (
    SessionEvent
    | CpStateChanged
    | MeterValue
    | LimitsChanged
    | PortErrorEvent
    | PortDisabledChanged
    | LinkChanged
)


@dataclass(frozen=True, slots=True)
class PortEvent:
    """One event from a port: a sequence number (per port boot), a timestamp, a body."""

    seq: int
    timestamp: float
    body: PortEventBody


@dataclass(frozen=True, slots=True)
class PortStatus:
    """A snapshot of a port's state."""

    cp_state: CpState
    enabled: bool
    session_state: SessionState
    session_id: str | None = None
    transaction_id: str | None = None
    meter: MeterValue | None = None
    limits: LimitsChanged | None = None
    errors: tuple[PortErrorEvent, ...] = field(default=())
    reservation_id: int | None = None


# ------------------------------------------------------------------ the contract


@runtime_checkable
class ChargePort(Protocol):
    """One charge port, local or remote. Commands raise `PortError` subclasses."""

    @property
    def info(self) -> PortInfo: ...

    async def enable(self) -> None: ...

    async def disable(self) -> None: ...

    async def authorize(self, id_tag: str, reservation_id: int | None = None) -> None: ...

    async def withdraw_authorization(self) -> None: ...

    async def pause(self) -> None: ...

    async def resume(self) -> None: ...

    async def stop_transaction(self, reason: StopReason) -> None: ...

    async def set_limit(self, amps: float, phases: int, valid_for_s: float = 0.0) -> None: ...

    async def force_unlock(self) -> None: ...

    async def reserve(self, reservation_id: int, id_tag: str, expiry: float) -> None: ...

    async def cancel_reservation(self, reservation_id: int) -> None: ...

    async def status(self) -> PortStatus: ...

    def events(self) -> AsyncIterator[PortEvent]:
        """Subscribe: every event from now on, in order, until the port closes."""
        ...
