"""Wire <-> typed objects for the link: every proto conversion lives here, both directions.

Handlers on either side of the link only see `chargeport.port` dataclasses and `Command`s;
a malformed message becomes `InvalidArgument` (the agent answers INVALID_ARGUMENT).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
    "Command",
    "code_for_error",
    "command_from_proto",
    "command_to_proto",
    "error_for_code",
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

# ChargePort method name -> oneof field of CommandRequest.
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


@dataclass(frozen=True, slots=True)
class Command:
    """One ChargePort call: the method name (`get_status` for `status`) and its arguments."""

    name: str
    args: tuple[Any, ...] = ()


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


def error_for_code(code: int | grpc.StatusCode, message: str) -> PortError:
    """The port error a non-OK gRPC status code stands for."""
    value = code.value[0] if isinstance(code, grpc.StatusCode) else code
    for cls, status in _ERROR_CODES:
        if status.value[0] == value:
            return cls(message)
    return PortError(message or f"gRPC status {value}")


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
    )


def tx_from_proto(t: pb.TransactionData) -> TransactionData:
    return TransactionData(
        transaction_id=t.transaction_id,
        id_tag=t.id_tag,
        meter_wh=t.meter_wh,
        reservation_id=None if t.reservation_id < 0 else t.reservation_id,
        stop_reason=_enum(StopReason, t.stop_reason, "stop reason") if t.stop_reason else None,
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
    """A `Command` as a CommandRequest; argument order is the ChargePort method's."""
    req = pb.CommandRequest(
        session_id=session_id, connector=connector, correlation_id=correlation_id
    )
    a = cmd.args
    if cmd.name == "authorize":
        reservation = a[1] if len(a) > 1 and a[1] is not None else _NO_RESERVATION
        req.authorize.CopyFrom(pb.Authorize(id_tag=a[0], reservation_id=reservation))
    elif cmd.name == "stop_transaction":
        req.stop_transaction.reason = StopReason(a[0]).value
    elif cmd.name == "set_limit":
        req.set_limit.CopyFrom(
            pb.SetLimit(amps=a[0], phases=a[1], valid_for_s=a[2] if len(a) > 2 else 0.0)
        )
    elif cmd.name == "reserve":
        req.reserve.CopyFrom(pb.Reserve(reservation_id=a[0], id_tag=a[1], expiry=a[2]))
    elif cmd.name == "cancel_reservation":
        req.cancel_reservation.reservation_id = a[0]
    elif cmd.name in COMMANDS:
        getattr(req, cmd.name).SetInParent()
    else:
        raise ValueError(f"unknown command {cmd.name!r}")
    return req


def command_from_proto(req: pb.CommandRequest) -> Command:
    """The typed command; `InvalidArgument` when no command is set or a value is malformed."""
    kind = req.WhichOneof("command")
    if kind is None:
        raise InvalidArgument("command request without a command")
    if kind == "authorize":
        r = req.authorize.reservation_id
        if not req.authorize.id_tag:
            raise InvalidArgument("authorize: id_tag must not be empty")
        return Command(kind, (req.authorize.id_tag, None if r < 0 else r))
    if kind == "stop_transaction":
        return Command(kind, (_enum(StopReason, req.stop_transaction.reason, "stop reason"),))
    if kind == "set_limit":
        s = req.set_limit
        return Command(kind, (s.amps, s.phases, s.valid_for_s))
    if kind == "reserve":
        r2 = req.reserve
        return Command(kind, (r2.reservation_id, r2.id_tag, r2.expiry))
    if kind == "cancel_reservation":
        return Command(kind, (req.cancel_reservation.reservation_id,))
    return Command(kind)
