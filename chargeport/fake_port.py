"""An in-memory ChargePort for tests above the port seam, with a scriptable simulated EV.

Commands follow the same rules the contract suite checks for every port (tests/contract):
argument ranges raise `InvalidArgument`, commands that make no sense now raise `CommandRefused`.
`plug_in`, `ev_ready`, `meter`, `unplug`, `fault` and `emit` script what the hardware would do.
A reservation ends by itself at its expiry (a timer on the clock seam; `aclose` awaits it).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import uuid
from collections.abc import AsyncIterator, Callable

from chargeport.clock import Clock, RealClock
from chargeport.fanout import Fanout
from chargeport.port import (
    CommandRefused,
    CpState,
    CpStateChanged,
    InvalidArgument,
    LimitsChanged,
    MeterValue,
    PortDisabledChanged,
    PortErrorEvent,
    PortEvent,
    PortEventBody,
    PortInfo,
    PortStatus,
    SessionEvent,
    SessionEventType,
    SessionState,
    StopReason,
    TransactionData,
)

__all__ = ["FakePort", "check_limit"]


def check_limit(amps: float, phases: int, valid_for_s: float) -> None:
    """Raise `InvalidArgument` when a set_limit request is malformed (0 A = no energy offered)."""
    if not math.isfinite(amps) or amps < 0:
        raise InvalidArgument(f"set_limit: amps must be >= 0, got {amps}")
    if phases not in (1, 3):
        raise InvalidArgument(f"set_limit: phases must be 1 or 3, got {phases}")
    if not math.isfinite(valid_for_s) or valid_for_s < 0:
        raise InvalidArgument(f"set_limit: valid_for_s must be >= 0, got {valid_for_s}")


class FakePort:
    """A ChargePort with no hardware: state lives in memory, events come from the script."""

    def __init__(
        self,
        info: PortInfo,
        *,
        clock: Clock | None = None,
        enabled: bool = True,
        id_factory: Callable[[], str] | None = None,
    ) -> None:
        self._info = info
        self._clock = clock or RealClock()
        self._ids = id_factory or (lambda: uuid.uuid4().hex)
        self._seq = itertools.count(1)
        self._fanout: Fanout[PortEvent] = Fanout()
        self.history: list[PortEvent] = []
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        self._enabled = enabled
        self._cp = CpState.A
        self._session: str | None = None
        self._auth: tuple[str, int | None] | None = None
        self._tx: TransactionData | None = None
        self._paused = False
        self._energy = 0.0
        self._meter: MeterValue | None = None
        self._limits = LimitsChanged(info.max_current_a, info.phases)
        self._reservation: tuple[int, str] | None = None  # (reservation id, id tag)
        self._expiry: asyncio.Task[None] | None = None
        self._errors: dict[str, PortErrorEvent] = {}

    # ------------------------------------------------------------ ChargePort

    @property
    def info(self) -> PortInfo:
        return self._info

    def events(self) -> AsyncIterator[PortEvent]:
        return self._fanout.subscribe()

    async def enable(self) -> None:
        self.calls.append(("enable", ()))
        if not self._enabled:
            self._enabled = True
            self.emit(PortDisabledChanged(True))

    async def disable(self) -> None:
        self.calls.append(("disable", ()))
        if self._enabled:
            self._enabled = False
            self.emit(PortDisabledChanged(False))

    async def authorize(self, id_tag: str, reservation_id: int | None = None) -> None:
        self.calls.append(("authorize", (id_tag, reservation_id)))
        if not id_tag or len(id_tag) > 20:
            raise InvalidArgument("authorize: id_tag must be 1 to 20 characters (OCPP 1.6)")
        if not self._enabled:
            raise CommandRefused("authorize: the port is disabled")
        if self._tx is not None:
            raise CommandRefused("authorize: a transaction is already running")
        if self._reservation is not None:
            # OCPP 1.6 5.13: a reserved connector charges only its reservation's id tag.
            rid, owner = self._reservation
            if (reservation_id is not None and reservation_id != rid) or (
                reservation_id is None and id_tag != owner
            ):
                raise CommandRefused(f"authorize: the port is reserved (reservation {rid})")
            reservation_id = rid
            self._end_reservation()
        self._auth = (id_tag, reservation_id)
        if self._session is not None:
            self._start_transaction()

    async def withdraw_authorization(self) -> None:
        self.calls.append(("withdraw_authorization", ()))
        if self._auth is None or self._tx is not None:
            raise CommandRefused("withdraw_authorization: no pending authorization")
        self._auth = None

    async def pause(self) -> None:
        self.calls.append(("pause", ()))
        if self._tx is None or self._paused:
            raise CommandRefused("pause: not charging")
        self._paused = True
        self._session_event(SessionEventType.CHARGING_PAUSED_EVSE)

    async def resume(self) -> None:
        self.calls.append(("resume", ()))
        if not self._paused:
            raise CommandRefused("resume: not paused by the EVSE")
        self._paused = False
        self._session_event(SessionEventType.CHARGING_RESUMED)

    async def stop_transaction(self, reason: StopReason) -> None:
        self.calls.append(("stop_transaction", (reason,)))
        if self._tx is None:
            raise CommandRefused("stop_transaction: no transaction is running")
        self._finish_transaction(reason)

    async def set_limit(self, amps: float, phases: int, valid_for_s: float = 0.0) -> None:
        self.calls.append(("set_limit", (amps, phases, valid_for_s)))
        check_limit(amps, phases, valid_for_s)
        # Above the port's rating the port offers its rating (IEC 61851-1 A.8 duty limits).
        limits = LimitsChanged(min(amps, self._info.max_current_a), phases)
        if limits != self._limits:  # like LocalPort: an event per change of the offer
            self._limits = limits
            self.emit(limits)

    async def force_unlock(self) -> None:
        self.calls.append(("force_unlock", ()))
        if self._tx is not None:
            self._finish_transaction(StopReason.UNLOCK_COMMAND)

    async def reserve(self, reservation_id: int, id_tag: str, expiry: float) -> None:
        self.calls.append(("reserve", (reservation_id, id_tag, expiry)))
        if reservation_id < 0 or not id_tag:
            raise InvalidArgument("reserve: needs a reservation id >= 0 and an id_tag")
        busy = self._session is not None or self._auth is not None
        if not self._enabled or busy or self._reservation is not None:
            raise CommandRefused("reserve: the port is not available")
        if expiry <= self._clock.time():
            raise CommandRefused("reserve: the expiry date is in the past")
        self._reservation = (reservation_id, id_tag)
        self._expiry = asyncio.get_running_loop().create_task(self._expire(expiry))
        self._session_event(SessionEventType.RESERVATION_START, session_id="")

    async def cancel_reservation(self, reservation_id: int) -> None:
        self.calls.append(("cancel_reservation", (reservation_id,)))
        if self._reservation is None or self._reservation[0] != reservation_id:
            raise CommandRefused(f"cancel_reservation: no reservation {reservation_id}")
        self._end_reservation()

    async def status(self) -> PortStatus:
        return PortStatus(
            cp_state=self._cp,
            enabled=self._enabled,
            session_state=self._session_state(),
            session_id=self._session,
            transaction_id=self._tx.transaction_id if self._tx else None,
            meter=self._meter,
            limits=self._limits,
            errors=tuple(e for e in self._errors.values() if e.active),
            reservation_id=self._reservation[0] if self._reservation else None,
        )

    # ------------------------------------------------------------ the script

    def emit(self, body: PortEventBody) -> PortEvent:
        """Publish one event as the port would (next seq, clock time)."""
        event = PortEvent(seq=next(self._seq), timestamp=self._clock.time(), body=body)
        self.history.append(event)
        self._fanout.publish(event)
        return event

    def plug_in(self) -> str:
        """The EV is plugged in (state B); returns the new session id."""
        self._set_cp(CpState.B)
        self._session = self._ids()
        self._session_event(SessionEventType.SESSION_STARTED)
        if self._auth is not None:
            self._start_transaction()
        else:
            self._session_event(SessionEventType.AUTH_REQUIRED)
        return self._session

    def ev_ready(self) -> None:
        """The EV requests energy (state C)."""
        self._set_cp(CpState.C)
        if self._tx is not None and not self._paused:
            self._session_event(SessionEventType.CHARGING_STARTED)

    def meter(self, energy_wh: float, power_w: float = 0.0) -> None:
        """A meter reading."""
        self._energy = energy_wh
        self._meter = MeterValue(energy_wh=energy_wh, power_w=power_w)
        self.emit(self._meter)

    def unplug(self) -> None:
        """The EV leaves: the transaction and session end (OCPP 1.6 reason EVDisconnected)."""
        if self._tx is not None:
            self._finish_transaction(StopReason.EV_DISCONNECTED)
        if self._session is not None:
            self._session_event(SessionEventType.SESSION_FINISHED)
            self._session = None
        self._auth = None
        self._set_cp(CpState.A)

    def fault(self, error: PortErrorEvent) -> None:
        """Raise or clear a fault."""
        self._errors[error.code.value] = error
        self.emit(error)

    def close(self) -> None:
        """End every event subscription (and a pending reservation expiry)."""
        self._cancel_expiry()
        self._fanout.close()

    async def aclose(self) -> None:
        """`close`, then wait for the expiry timer to finish."""
        task = self._expiry
        self.close()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ------------------------------------------------------------ internals

    def _session_state(self) -> SessionState:
        if not self._enabled:
            return SessionState.DISABLED
        if any(e.active for e in self._errors.values()):
            return SessionState.FAULTED
        if self._session is None:
            return SessionState.RESERVED if self._reservation is not None else SessionState.IDLE
        if self._tx is None:
            return SessionState.WAITING_FOR_AUTH if self._auth is None else SessionState.FINISHING
        if self._paused:
            return SessionState.PAUSED_EVSE
        return SessionState.CHARGING if self._cp is CpState.C else SessionState.PREPARING

    async def _expire(self, expiry: float) -> None:
        await self._clock.sleep(expiry - self._clock.time())
        self._expiry = None  # this task is ending: nothing to cancel any more
        if self._reservation is not None:  # OCPP 1.6 5.13: it ends at its expiry date
            self._end_reservation()

    def _cancel_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

    def _end_reservation(self) -> None:
        self._cancel_expiry()
        self._reservation = None
        self._session_event(SessionEventType.RESERVATION_END, session_id="")

    def _set_cp(self, state: CpState) -> None:
        if state is not self._cp:
            self._cp = state
            self.emit(CpStateChanged(state))

    def _session_event(
        self,
        kind: SessionEventType,
        tx: TransactionData | None = None,
        session_id: str | None = None,
    ) -> None:
        sid = self._session or "" if session_id is None else session_id
        self.emit(SessionEvent(type=kind, session_id=sid, transaction=tx))

    def _start_transaction(self) -> None:
        assert self._auth is not None
        id_tag, reservation = self._auth
        self._session_event(SessionEventType.AUTHORIZED)
        self._tx = TransactionData(
            transaction_id=self._ids(),
            id_tag=id_tag,
            meter_wh=self._energy,
            reservation_id=reservation,
        )
        self._session_event(SessionEventType.TRANSACTION_STARTED, self._tx)
        if self._cp is CpState.C:
            self._session_event(SessionEventType.CHARGING_STARTED)

    def _finish_transaction(self, reason: StopReason) -> None:
        assert self._tx is not None
        tx = self._tx
        done = TransactionData(
            transaction_id=tx.transaction_id,
            id_tag=tx.id_tag,
            meter_wh=self._energy,
            reservation_id=tx.reservation_id,
            stop_reason=reason,
        )
        self._tx = None
        self._paused = False
        self._session_event(SessionEventType.TRANSACTION_FINISHED, done)
