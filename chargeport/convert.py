"""Wire <-> typed objects for the link: every proto conversion lives here, both directions.

Handlers on either side of the link only see `chargeport.port` dataclasses and typed commands
(one frozen dataclass per command, one per oneof field of CommandRequest); a malformed message
becomes `InvalidArgument` (the agent answers INVALID_ARGUMENT). gRPC status codes and port
errors map to each other here and nowhere else (`code_for_error`, `error_for_code`,
`error_for_rpc`): a failed command always carries its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, assert_never

import grpc

from chargeport import PROTOCOL_VERSION  # Hello refuses a mismatch
from chargeport.port import (
    CommandRefused,
    CpState,
    CpStateChanged,
    ErrorCode,
    InvalidArgument,
    LimitsChanged,
    MeterValue,
    PortDisabledChanged,
    PortError,
    PortErrorEvent,
    PortEvent,
    PortEventBody,
    PortNotFound,
    PortStatus,
    PortUnavailable,
    SessionEvent,
    SessionEventType,
    SessionState,
    StopReason,
    TransactionData,
)
from chargeport.v1 import link_pb2 as pb

__all__ = [
    "COMMANDS",
    "PROTOCOL_VERSION",
    "Authorize",
    "CancelReservation",
    "Command",
    "Disable",
    "Enable",
    "ForceUnlock",
    "GetStatus",
    "Pause",
    "Reserve",
    "Resume",
    "SetLimit",
    "StopTransaction",
    "WithdrawAuthorization",
    "code_for_error",
    "command_from_proto",
    "command_to_proto",
    "error_for_code",
    "error_for_rpc",
    "event_from_proto",
    "event_to_proto",
    "status_from_proto",
    "status_to_proto",
    "tx_from_proto",
    "tx_to_proto",
]


_NO_RESERVATION = -1

_CP_TO_PB = {
    CpState.A: pb.CP_STATE_A,
    CpState.B: pb.CP_STATE_B,
    CpState.C: pb.CP_STATE_C,
    CpState.D: pb.CP_STATE_D,
    CpState.E: pb.CP_STATE_E,
    CpState.F: pb.CP_STATE_F,
}
_CP_FROM_PB = {v: k for k, v in _CP_TO_PB.items()}

# One typed command per oneof field of CommandRequest; `name` is the field (and the log name).


@dataclass(frozen=True, slots=True)
class Enable:
    name: ClassVar[str] = "enable"


@dataclass(frozen=True, slots=True)
class Disable:
    name: ClassVar[str] = "disable"


@dataclass(frozen=True, slots=True)
class Authorize:
    id_tag: str
    reservation_id: int | None = None
    name: ClassVar[str] = "authorize"


@dataclass(frozen=True, slots=True)
class WithdrawAuthorization:
    name: ClassVar[str] = "withdraw_authorization"


@dataclass(frozen=True, slots=True)
class Pause:
    name: ClassVar[str] = "pause"


@dataclass(frozen=True, slots=True)
class Resume:
    name: ClassVar[str] = "resume"


@dataclass(frozen=True, slots=True)
class StopTransaction:
    reason: StopReason
    name: ClassVar[str] = "stop_transaction"


@dataclass(frozen=True, slots=True)
class SetLimit:
    amps: float
    phases: int
    valid_for_s: float = 0.0
    name: ClassVar[str] = "set_limit"


@dataclass(frozen=True, slots=True)
class ForceUnlock:
    name: ClassVar[str] = "force_unlock"


@dataclass(frozen=True, slots=True)
class Reserve:
    reservation_id: int
    id_tag: str
    expiry: float
    name: ClassVar[str] = "reserve"


@dataclass(frozen=True, slots=True)
class CancelReservation:
    reservation_id: int
    name: ClassVar[str] = "cancel_reservation"


@dataclass(frozen=True, slots=True)
class GetStatus:
    name: ClassVar[str] = "get_status"


Command = (
    Enable
    | Disable
    | Authorize
    | WithdrawAuthorization
    | Pause
    | Resume
    | StopTransaction
    | SetLimit
    | ForceUnlock
    | Reserve
    | CancelReservation
    | GetStatus
)
_NO_ARGS: dict[str, Command] = {
    c.name: c
    for c in (
        Enable(),
        Disable(),
        WithdrawAuthorization(),
        Pause(),
        Resume(),
        ForceUnlock(),
        GetStatus(),
    )
}
COMMANDS = (
    "enable",
    "disable",
    "authorize",
    "withdraw_authorization",
    "pause",
    "resume",
    "stop_transaction",
    "set_limit",
    "force_unlock",
    "reserve",
    "cancel_reservation",
    "get_status",
)


# ------------------------------------------------------------------ errors


_ERROR_CODES: tuple[tuple[type[PortError], grpc.StatusCode], ...] = (
    (CommandRefused, grpc.StatusCode.FAILED_PRECONDITION),
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (PortNotFound, grpc.StatusCode.NOT_FOUND),
    (PortUnavailable, grpc.StatusCode.UNAVAILABLE),
)


def code_for_error(exc: PortError) -> grpc.StatusCode:
    """The gRPC status code a port error travels as."""
    for cls, code in _ERROR_CODES:
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.INTERNAL


_CODE_NAMES = {c.value[0]: c.name for c in grpc.StatusCode}


def error_for_code(code: int | grpc.StatusCode, message: str) -> PortError:
    """The port error a non-OK gRPC status code stands for, never without a reason."""
    value = code.value[0] if isinstance(code, grpc.StatusCode) else code
    reason = message or f"{_CODE_NAMES.get(value, value)} without a reason"
    for cls, status in _ERROR_CODES:
        if status.value[0] == value:
            return cls(reason)
    return PortError(reason)


def error_for_rpc(peer: str, exc: grpc.aio.AioRpcError) -> PortError:
    """A failed call to `peer` as a port error: its code decides the class, the reason says
    what happened (UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED: the peer is unreachable)."""
    code = exc.code()
    reason = f"{peer}: {code.name}: {exc.details() or 'no details'}"
    if code in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
    ):
        return PortUnavailable(reason)
    return error_for_code(code, reason)


# ------------------------------------------------------------------ small pieces


def _enum(cls: Any, value: str, what: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        raise InvalidArgument(f"unknown {what} {value!r}") from None


def _meter_to_proto(m: MeterValue) -> pb.MeterValue:
    return pb.MeterValue(
        energy_wh=m.energy_wh,
        power_w=m.power_w,
        voltage_v=list(m.voltage_v),
        current_a=list(m.current_a),
        frequency_hz=m.frequency_hz,
        temperature_c=m.temperature_c,
        power_factor=m.power_factor,
    )


def _meter_from_proto(m: pb.MeterValue) -> MeterValue:
    return MeterValue(
        energy_wh=m.energy_wh,
        power_w=m.power_w,
        voltage_v=tuple(m.voltage_v),
        current_a=tuple(m.current_a),
        frequency_hz=m.frequency_hz,
        temperature_c=m.temperature_c,
        power_factor=m.power_factor,
    )


def tx_to_proto(t: TransactionData) -> pb.TransactionData:
    return pb.TransactionData(
        transaction_id=t.transaction_id,
        id_tag=t.id_tag,
        meter_wh=t.meter_wh,
        reservation_id=_NO_RESERVATION if t.reservation_id is None else t.reservation_id,
        stop_reason="" if t.stop_reason is None else t.stop_reason.value,
        signed_meter=t.signed_meter,
    )


def tx_from_proto(t: pb.TransactionData) -> TransactionData:
    return TransactionData(
        transaction_id=t.transaction_id,
        id_tag=t.id_tag,
        meter_wh=t.meter_wh,
        reservation_id=None if t.reservation_id < 0 else t.reservation_id,
        stop_reason=_enum(StopReason, t.stop_reason, "stop reason") if t.stop_reason else None,
        signed_meter=t.signed_meter,
    )


def _error_to_proto(e: PortErrorEvent) -> pb.PortError:
    return pb.PortError(code=e.code.value, message=e.message, active=e.active)


def _error_from_proto(e: pb.PortError) -> PortErrorEvent:
    return PortErrorEvent(
        code=_enum(ErrorCode, e.code, "error code"), message=e.message, active=e.active
    )


# ------------------------------------------------------------------ events


def event_to_proto(event: PortEvent) -> pb.Event:
    """A port event as it travels; `LinkChanged` is main-side only and never does."""
    out = pb.Event(seq=event.seq, timestamp=event.timestamp)
    body = event.body
    if isinstance(body, SessionEvent):
        out.session.type = body.type.value
        out.session.session_id = body.session_id
        if body.transaction is not None:
            out.session.transaction.CopyFrom(tx_to_proto(body.transaction))
    elif isinstance(body, CpStateChanged):
        out.cp_state = _CP_TO_PB[body.state]
    elif isinstance(body, MeterValue):
        out.meter.CopyFrom(_meter_to_proto(body))
    elif isinstance(body, LimitsChanged):
        out.limits.max_current_a = body.max_current_a
        out.limits.phases = body.phases
    elif isinstance(body, PortErrorEvent):
        out.error.CopyFrom(_error_to_proto(body))
    elif isinstance(body, PortDisabledChanged):
        out.enabled = body.enabled
    else:
        raise ValueError(f"{type(body).__name__} does not travel over the link")
    return out


def event_from_proto(event: pb.Event) -> PortEvent:
    """The typed event; raises `InvalidArgument` for an empty or unknown body."""
    kind = event.WhichOneof("body")
    body: PortEventBody
    if kind == "session":
        s = event.session
        body = SessionEvent(
            type=_enum(SessionEventType, s.type, "session event"),
            session_id=s.session_id,
            transaction=tx_from_proto(s.transaction) if s.HasField("transaction") else None,
        )
    elif kind == "cp_state":
        if event.cp_state not in _CP_FROM_PB:
            raise InvalidArgument(f"unknown CP state {event.cp_state}")
        body = CpStateChanged(_CP_FROM_PB[event.cp_state])
    elif kind == "meter":
        body = _meter_from_proto(event.meter)
    elif kind == "limits":
        body = LimitsChanged(max_current_a=event.limits.max_current_a, phases=event.limits.phases)
    elif kind == "error":
        body = _error_from_proto(event.error)
    elif kind == "enabled":
        body = PortDisabledChanged(enabled=event.enabled)
    else:
        raise InvalidArgument("event without a body")
    return PortEvent(seq=event.seq, timestamp=event.timestamp, body=body)


# ------------------------------------------------------------------ status


def status_to_proto(s: PortStatus) -> pb.PortStatus:
    out = pb.PortStatus(
        cp_state=_CP_TO_PB[s.cp_state],
        enabled=s.enabled,
        session_state=s.session_state.value,
        session_id=s.session_id or "",
        transaction_id=s.transaction_id or "",
        errors=[_error_to_proto(e) for e in s.errors],
        reservation_id=_NO_RESERVATION if s.reservation_id is None else s.reservation_id,
    )
    if s.meter is not None:
        out.meter.CopyFrom(_meter_to_proto(s.meter))
    if s.limits is not None:
        out.limits.max_current_a = s.limits.max_current_a
        out.limits.phases = s.limits.phases
    return out


def status_from_proto(s: pb.PortStatus) -> PortStatus:
    if s.cp_state not in _CP_FROM_PB:
        raise InvalidArgument(f"unknown CP state {s.cp_state}")
    return PortStatus(
        cp_state=_CP_FROM_PB[s.cp_state],
        enabled=s.enabled,
        session_state=_enum(SessionState, s.session_state, "session state"),
        session_id=s.session_id or None,
        transaction_id=s.transaction_id or None,
        meter=_meter_from_proto(s.meter) if s.HasField("meter") else None,
        limits=(
            LimitsChanged(max_current_a=s.limits.max_current_a, phases=s.limits.phases)
            if s.HasField("limits")
            else None
        ),
        errors=tuple(_error_from_proto(e) for e in s.errors),
        reservation_id=None if s.reservation_id < 0 else s.reservation_id,
    )


# ------------------------------------------------------------------ commands


def command_to_proto(
    cmd: Command, *, session_id: str, connector: int, correlation_id: int = 0
) -> pb.CommandRequest:
    """A typed command as a CommandRequest."""
    req = pb.CommandRequest(
        session_id=session_id, connector=connector, correlation_id=correlation_id
    )
    match cmd:
        case Authorize(id_tag, reservation_id):
            reservation = _NO_RESERVATION if reservation_id is None else reservation_id
            req.authorize.CopyFrom(pb.Authorize(id_tag=id_tag, reservation_id=reservation))
        case StopTransaction(reason):
            req.stop_transaction.reason = StopReason(reason).value
        case SetLimit(amps, phases, valid_for_s):
            req.set_limit.CopyFrom(pb.SetLimit(amps=amps, phases=phases, valid_for_s=valid_for_s))
        case Reserve(reservation_id, id_tag, expiry):
            req.reserve.CopyFrom(
                pb.Reserve(reservation_id=reservation_id, id_tag=id_tag, expiry=expiry)
            )
        case CancelReservation(reservation_id):
            req.cancel_reservation.reservation_id = reservation_id
        case Enable():
            req.enable.SetInParent()
        case Disable():
            req.disable.SetInParent()
        case WithdrawAuthorization():
            req.withdraw_authorization.SetInParent()
        case Pause():
            req.pause.SetInParent()
        case Resume():
            req.resume.SetInParent()
        case ForceUnlock():
            req.force_unlock.SetInParent()
        case GetStatus():
            req.get_status.SetInParent()
        case _:
            assert_never(cmd)
    return req


def command_from_proto(req: pb.CommandRequest) -> Command:
    """The typed command; `InvalidArgument` when no command is set or a value is malformed."""
    kind = req.WhichOneof("command")
    if kind is None or kind == "heartbeat":
        raise InvalidArgument("command request without a command")
    if kind == "authorize":
        r = req.authorize.reservation_id
        if not req.authorize.id_tag:
            raise InvalidArgument("authorize: id_tag must not be empty")
        return Authorize(req.authorize.id_tag, None if r < 0 else r)
    if kind == "stop_transaction":
        return StopTransaction(_enum(StopReason, req.stop_transaction.reason, "stop reason"))
    if kind == "set_limit":
        s = req.set_limit
        return SetLimit(s.amps, s.phases, s.valid_for_s)
    if kind == "reserve":
        r2 = req.reserve
        return Reserve(r2.reservation_id, r2.id_tag, r2.expiry)
    if kind == "cancel_reservation":
        return CancelReservation(req.cancel_reservation.reservation_id)
    return _NO_ARGS[kind]
