"""Charging session state machine, in EVerest evse_manager vocabulary. No I/O.

Theory of operation: a *session* runs from plug-in to plug-out; inside it at most one
*transaction* runs at a time (OCPP 1.6 4.8 / 5.x StartTransaction..StopTransaction). A
transaction starts when the port is authorized and an EV is plugged in, in either order
(OCPP 1.6 3.2 / 5.11 RemoteStartTransaction), or at plug-in with free vend. Inside a
transaction the energy sub-state follows the EV (IEC 61851-1 state C/D = requests energy, B =
paused by the EV) and the EVSE's own reasons to withhold energy (station pause, a limit below
6 A, an active fault): `_energy_state` resolves which one applies. The `INOPERATIVE` block (a
latched fault such as a welded contactor) also refuses new transactions: authorization is
refused and free vend waits, until the runtime lifts the block after an operator's check.

`TRANSITIONS[state][event type]` lists every legal transition; a cell is either the target
state or a guard that picks it. Commands with no cell are refused (`Refused`), inputs from the
hardware with no cell are bugs (`IllegalTransition`). The session events to publish are derived
from the transition (old state, new state, what changed), in `_effects`, and returned together
with a `Drive` effect telling the runtime what the pilot, contactor and lock must do. The
states, inputs and effects themselves are plain data in `evse.session_types`, re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable

from chargeport.port import SessionEventType, SessionState, StopReason, TransactionData
from evse.errors import IllegalTransition, Refused
from evse.session_types import (
    COMMANDS,
    Authorize,
    Block,
    CancelReservation,
    Deauthorize,
    Disable,
    Drive,
    Emit,
    Enable,
    EvReadyChanged,
    Plugged,
    Reservation,
    Reserve,
    SessionEffect,
    SessionInput,
    St,
    Stop,
    TagPresented,
    Tick,
    Unplugged,
)

__all__ = [
    "INOPERATIVE",
    "TRANSITIONS",
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
    "SessionMachine",
    "St",
    "Stop",
    "TagPresented",
    "Tick",
    "Unplugged",
]


_SESSION = {
    St.WAITING_FOR_AUTH,
    St.PREPARING,
    St.CHARGING,
    St.PAUSED_EV,
    St.PAUSED_EVSE,
    St.FINISHING,
}
_TRANSACTION = {St.PREPARING, St.CHARGING, St.PAUSED_EV, St.PAUSED_EVSE}

_REPORTED: dict[St, SessionState] = {
    St.DISABLED: SessionState.DISABLED,
    St.IDLE: SessionState.IDLE,
    St.RESERVED: SessionState.RESERVED,
    St.AUTHORIZED: SessionState.PREPARING,
    St.WAITING_FOR_AUTH: SessionState.WAITING_FOR_AUTH,
    St.PREPARING: SessionState.PREPARING,
    St.CHARGING: SessionState.CHARGING,
    St.PAUSED_EV: SessionState.PAUSED_EV,
    St.PAUSED_EVSE: SessionState.PAUSED_EVSE,
    St.FINISHING: SessionState.FINISHING,
}


# A `Block` reason that also refuses new transactions (a latched fault: a welded contactor).
INOPERATIVE = "inoperative"

# ------------------------------------------------------------------ the table

Guard = Callable[["SessionMachine", SessionInput], St]
Target = St | Guard


def SAME(m: SessionMachine, e: SessionInput) -> St:  # a table cell: stay where you are
    return m.state


def _energy(m: SessionMachine, e: SessionInput) -> St:
    return m._energy_state()


def _plug(m: SessionMachine, e: SessionInput) -> St:
    # Free vend starts a transaction at plug-in (OCPP 1.6 FreeVend-like behaviour).
    if m.free_vend and INOPERATIVE not in m.blocks:
        return m._energy_state()
    return St.WAITING_FOR_AUTH


def _after_session(m: SessionMachine, e: SessionInput) -> St:
    return St.RESERVED if m.reservation is not None else St.IDLE


def _authorize(m: SessionMachine, e: SessionInput) -> St:
    assert isinstance(e, Authorize)
    if INOPERATIVE in m.blocks:
        # OCPP 1.6 4.9: a Faulted connector takes no new transaction until it is repaired.
        raise Refused("port is faulted (latched protection fault): an operator check must clear it")
    m._take_authorization(e)
    return St.AUTHORIZED if m.state in (St.IDLE, St.RESERVED) else m._energy_state()


def _tick(m: SessionMachine, e: SessionInput) -> St:
    now = m.now
    if m.reservation is not None and now >= m.reservation.expiry:
        m.reservation = None  # OCPP 1.6 5.13: the reservation ends at its expiry date
    if m.state is St.AUTHORIZED and now - m._authorized_at >= m.plugin_timeout_s:
        m._timed_out = True
        return _after_session(m, e)
    if m.state is St.RESERVED and m.reservation is None:
        return St.IDLE
    return m.state


def _reserve(m: SessionMachine, e: SessionInput) -> St:
    assert isinstance(e, Reserve)
    if e.expiry <= m.now:
        raise Refused("reservation expiry is in the past")
    m.reservation = Reservation(e.reservation_id, e.id_tag, e.expiry)
    return St.RESERVED


def _cancel(m: SessionMachine, e: SessionInput) -> St:
    assert isinstance(e, CancelReservation)
    if m.reservation is None or m.reservation.reservation_id != e.reservation_id:
        raise Refused(f"no reservation {e.reservation_id} on this port")
    m.reservation = None
    return St.IDLE if m.state is St.RESERVED else m.state


def _stop(m: SessionMachine, e: SessionInput) -> St:
    assert isinstance(e, Stop)
    m._stop_reason = e.reason
    return St.FINISHING


def _deauthorize(m: SessionMachine, e: SessionInput) -> St:
    if m.state is St.AUTHORIZED:
        return _after_session(m, e)
    m._stop_reason = StopReason.DE_AUTHORIZED
    return St.FINISHING


def _unplug(m: SessionMachine, e: SessionInput) -> St:
    m._stop_reason = StopReason.EV_DISCONNECTED
    return _after_session(m, e)


def _disable(m: SessionMachine, e: SessionInput) -> St:
    m._stop_reason = StopReason.OTHER
    m.reservation = None
    return St.DISABLED


# Inputs that only update what the machine remembers, valid in every state.
_RECORD: dict[type, Target] = {EvReadyChanged: SAME, Block: SAME, Tick: _tick, Disable: _disable}
_IDLE_LIKE: dict[type, Target] = {
    **_RECORD,
    Enable: SAME,
    Plugged: _plug,
    Unplugged: SAME,  # a pilot that leaves E/F to A reports an unplug nobody saw plugging
    TagPresented: SAME,  # a swipe with no EV: the station may still call authorize()
    Authorize: _authorize,
}
_IN_TRANSACTION: dict[type, Target] = {
    **_RECORD,
    Enable: SAME,
    EvReadyChanged: _energy,
    Block: _energy,
    Unplugged: _unplug,
    TagPresented: SAME,
    Stop: _stop,
    Deauthorize: _deauthorize,
    CancelReservation: _cancel,
}

TRANSITIONS: dict[St, dict[type, Target]] = {
    St.DISABLED: {
        **_RECORD,
        Enable: St.IDLE,
        Plugged: SAME,
        Unplugged: SAME,
        TagPresented: SAME,
    },
    St.IDLE: {**_IDLE_LIKE, Reserve: _reserve},
    St.RESERVED: {**_IDLE_LIKE, CancelReservation: _cancel},
    St.AUTHORIZED: {
        **_IDLE_LIKE,
        Plugged: _energy,
        Deauthorize: _deauthorize,
        CancelReservation: _cancel,
    },
    St.WAITING_FOR_AUTH: {
        **_RECORD,
        Enable: SAME,
        Unplugged: _after_session,
        TagPresented: SAME,
        Authorize: _authorize,
        CancelReservation: _cancel,
    },
    St.PREPARING: _IN_TRANSACTION,
    St.CHARGING: _IN_TRANSACTION,
    St.PAUSED_EV: _IN_TRANSACTION,
    St.PAUSED_EVSE: _IN_TRANSACTION,
    St.FINISHING: {
        **_RECORD,
        Enable: SAME,
        Unplugged: _after_session,
        TagPresented: SAME,
        Authorize: _authorize,  # a new transaction in the same session
        CancelReservation: _cancel,
    },
}


# ------------------------------------------------------------------ the machine


class SessionMachine:
    """The session of one port. `handle(input, now, meter_wh)` -> effects."""

    def __init__(
        self,
        *,
        id_factory: Callable[[], str],
        free_vend: bool = False,
        plugin_timeout_s: float = 120.0,
        enabled: bool = True,
    ) -> None:
        self.free_vend = free_vend
        self.plugin_timeout_s = plugin_timeout_s
        self._ids = id_factory
        self.state: St = St.IDLE if enabled else St.DISABLED
        self.now = 0.0
        self.meter_wh = 0.0
        self.ev_ready = False
        self.blocks: set[str] = set()
        self.reservation: Reservation | None = None
        self.session_id: str | None = None
        self.transaction: TransactionData | None = None
        self._id_tag: str | None = None
        self._reservation_used: int | None = None
        self._authorized_at = 0.0
        self._charged = False
        self._stop_reason = StopReason.OTHER
        self._timed_out = False
        self._drive = self._wanted_drive()

    @property
    def reported_state(self) -> SessionState:
        return _REPORTED[self.state]

    @property
    def drive(self) -> Drive:
        return self._drive

    def handle(self, event: SessionInput, now: float, meter_wh: float = 0.0) -> list[SessionEffect]:
        """Feed one input; returns the effects to perform, in order."""
        self.now, self.meter_wh = now, meter_wh
        cell = TRANSITIONS[self.state].get(type(event))
        if cell is None:
            if isinstance(event, COMMANDS):
                raise Refused(f"{type(event).__name__} is not possible while {self.state.value}")
            raise IllegalTransition(f"{type(event).__name__} in state {self.state.value}")
        if isinstance(event, EvReadyChanged):
            self.ev_ready = event.ready
        elif isinstance(event, Unplugged):
            self.ev_ready = False
        elif isinstance(event, Block):
            (self.blocks.add if event.on else self.blocks.discard)(event.reason)
        old_state, old_reservation = self.state, self.reservation
        new = cell if isinstance(cell, St) else cell(self, event)
        effects = self._effects(old_state, new, old_reservation, event)
        self.state = new
        drive = self._wanted_drive()
        if drive != self._drive:
            self._drive = drive
            effects.append(drive)
        return effects

    # -- guards' helpers

    def _energy_state(self) -> St:
        if self.blocks:
            return St.PAUSED_EVSE
        if not self.ev_ready:
            return St.PAUSED_EV if self._charged else St.PREPARING
        return St.CHARGING

    def _take_authorization(self, e: Authorize) -> None:
        res = self.reservation
        if res is not None:
            if e.reservation_id is not None and e.reservation_id != res.reservation_id:
                raise Refused(f"port is reserved under reservation {res.reservation_id}")
            if e.reservation_id is None and e.id_tag != res.id_tag:
                raise Refused(
                    f"port is reserved for another id tag (reservation {res.reservation_id})"
                )
            self._reservation_used = res.reservation_id
            self.reservation = None
        else:
            self._reservation_used = None
        self._id_tag = e.id_tag
        self._authorized_at = self.now

    def _wanted_drive(self) -> Drive:
        s = self.state
        return Drive(
            pwm=s in _TRANSACTION and s is not St.PAUSED_EVSE,
            contactor=s is St.CHARGING,
            lock=s in _TRANSACTION,
            available=s is not St.DISABLED,
        )

    # -- effects

    def _emit(self, t: SessionEventType, tx: TransactionData | None = None) -> Emit:
        return Emit(t, self.session_id or "", tx)

    def _effects(
        self, old: St, new: St, old_res: Reservation | None, event: SessionInput
    ) -> list[SessionEffect]:
        out: list[SessionEffect] = []
        emit = out.append
        if old is St.DISABLED and new is not St.DISABLED:
            emit(self._emit(SessionEventType.ENABLED))
        if old_res is None and self.reservation is not None:
            emit(self._emit(SessionEventType.RESERVATION_START))
        if old not in _SESSION and new in _SESSION:
            self.session_id = self._ids()
            emit(self._emit(SessionEventType.SESSION_STARTED))
        if new is St.WAITING_FOR_AUTH and old is not St.WAITING_FOR_AUTH:
            emit(self._emit(SessionEventType.AUTH_REQUIRED))
        if isinstance(event, TagPresented) and new is not St.DISABLED:
            # A presented tag is always reported, in the event's transaction data, so the
            # station can authorize it (or, in a transaction, stop with it: OCPP 1.6 3.5).
            emit(self._emit(SessionEventType.AUTH_REQUIRED, self._tag_data(event.id_tag)))
        if old_res is not None and self.reservation is None:
            emit(self._emit(SessionEventType.RESERVATION_END))
        if isinstance(event, Authorize):
            emit(self._emit(SessionEventType.AUTHORIZED, self._tag_data(event.id_tag)))
        if old is St.AUTHORIZED and new in (St.IDLE, St.RESERVED, St.DISABLED):
            timeout = self._timed_out
            self._timed_out = False
            self._id_tag = None
            emit(
                self._emit(
                    SessionEventType.PLUGIN_TIMEOUT if timeout else SessionEventType.DEAUTHORIZED
                )
            )
        if old not in _TRANSACTION and new in _TRANSACTION:
            self._charged = False
            self.transaction = TransactionData(
                transaction_id=self._ids(),
                id_tag=self._id_tag or "",
                meter_wh=self.meter_wh,
                reservation_id=self._reservation_used,
            )
            emit(self._emit(SessionEventType.TRANSACTION_STARTED, self.transaction))
        if new in _TRANSACTION and new is not old:
            self._energy_events(old, new, emit)
        if old in _TRANSACTION and new not in _TRANSACTION:
            if old is St.CHARGING:
                emit(self._emit(SessionEventType.STOPPING_CHARGING))
            assert self.transaction is not None
            done = TransactionData(
                transaction_id=self.transaction.transaction_id,
                id_tag=self.transaction.id_tag,
                meter_wh=self.meter_wh,
                reservation_id=self.transaction.reservation_id,
                stop_reason=self._stop_reason,
            )
            self.transaction = None
            self._id_tag = None
            emit(self._emit(SessionEventType.TRANSACTION_FINISHED, done))
        if old in _SESSION and new not in _SESSION:
            emit(self._emit(SessionEventType.SESSION_FINISHED))
            self.session_id = None
        if new is St.DISABLED and old is not St.DISABLED:
            emit(self._emit(SessionEventType.DISABLED))
        return out

    def _energy_events(self, old: St, new: St, emit: Callable[[SessionEffect], None]) -> None:
        if new is St.CHARGING:
            started = self._charged
            self._charged = True
            emit(
                self._emit(
                    SessionEventType.CHARGING_RESUMED
                    if started
                    else SessionEventType.CHARGING_STARTED
                )
            )
        elif new is St.PAUSED_EVSE:
            emit(self._emit(SessionEventType.CHARGING_PAUSED_EVSE))
        elif new is St.PAUSED_EV or (new is St.PREPARING and old is St.PAUSED_EVSE):
            emit(self._emit(SessionEventType.CHARGING_PAUSED_EV))

    def _tag_data(self, id_tag: str) -> TransactionData:
        return TransactionData(transaction_id="", id_tag=id_tag, meter_wh=self.meter_wh)
