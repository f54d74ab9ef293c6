"""`LocalPort`: the `chargeport.port.ChargePort` contract over this board's evse runtime.

Commands validate their arguments (`InvalidArgument`), then feed the runtime's machines under
its lock; a machine's `Refused` becomes `CommandRefused`. Events fan out to every subscriber
through an `EventBus`, each subscriber getting every event from its subscription on, in order.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

import hal.base
from chargeport.clock import Clock
from chargeport.config import PortConfig
from chargeport.port import (
    CommandRefused,
    InvalidArgument,
    LimitsChanged,
    MeterValue,
    PortErrorEvent,
    PortEvent,
    PortEventBody,
    PortInfo,
    PortStatus,
    SessionState,
    StopReason,
    TransactionData,
)
from evse import cp as cpm
from evse import session as ss
from evse.errors import Refused
from evse.signing import BoardSigning

__all__ = ["EventBus", "LocalPort", "PortRuntime"]


class PortRuntime(Protocol):
    """What `LocalPort` needs of the runtime that drives the port (`evse.runtime.EvseRuntime`).

    A seam instead of an import: the runtime builds its LocalPort, so the port must not import
    the runtime back (that was an import cycle)."""

    board: hal.base.Board
    config: PortConfig
    signing: BoardSigning | None
    session: ss.SessionMachine
    cp: cpm.CpMachine
    bus: EventBus
    errors: dict[str, PortErrorEvent]
    meter: MeterValue | None
    limits: LimitsChanged

    async def dispatch(self, event: ss.SessionInput) -> None: ...

    async def run_locked(self, fn: Callable[[], Awaitable[None]]) -> None: ...

    async def set_enabled(self, enabled: bool) -> None: ...

    async def set_limit(self, amps: float, phases: int, valid_for_s: float) -> None: ...

    async def close_interrupted(
        self, begin: TransactionData, last_wh: float | None = None
    ) -> TransactionData: ...


class _Subscription:
    """One subscriber's ordered view of the bus; ends when the bus closes."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[PortEvent | None] = asyncio.Queue()
        bus._subs.add(self)

    def __aiter__(self) -> _Subscription:
        return self

    async def __anext__(self) -> PortEvent:
        item = await self._queue.get()
        if item is None:
            self._bus._subs.discard(self)
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        """Unsubscribe."""
        self._bus._subs.discard(self)


class EventBus:
    """Numbers events (per runtime) and fans them out to subscribers."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._subs: set[_Subscription] = set()
        self._seq = 0
        self._closed = False

    def publish(self, body: PortEventBody) -> PortEvent:
        self._seq += 1
        event = PortEvent(self._seq, self._clock.time(), body)
        for sub in list(self._subs):
            sub._queue.put_nowait(event)
        return event

    def subscribe(self) -> _Subscription:
        sub = _Subscription(self)
        if self._closed:
            sub._queue.put_nowait(None)
        return sub

    def close(self) -> None:
        self._closed = True
        for sub in list(self._subs):
            sub._queue.put_nowait(None)


class LocalPort:
    """The ChargePort of this board."""

    def __init__(
        self, runtime: PortRuntime, connector_id: int, serial: str, firmware_version: str
    ) -> None:
        self._rt = runtime
        cfg = runtime.config
        self._info = PortInfo(
            connector_id=connector_id,
            serial=serial,
            firmware_version=firmware_version,
            max_current_a=cfg.max_current_a,
            phases=cfg.phases,
            connector_type=cfg.connector_type,
        )

    @property
    def info(self) -> PortInfo:
        return self._info

    async def close_interrupted(
        self, begin: TransactionData, last_wh: float | None = None
    ) -> TransactionData:
        """End a transaction the previous process left open, at this board's register."""
        return await self._rt.close_interrupted(begin, last_wh)

    @property
    def meter_public_key(self) -> str:
        """This board's OCMF metering public key (hex), "" when it does not sign."""
        signing = self._rt.signing
        return signing.public_key_hex if signing is not None else ""

    async def _run(self, fn: Callable[[], Awaitable[None]]) -> None:
        try:
            await self._rt.run_locked(fn)
        except Refused as exc:
            raise CommandRefused(str(exc)) from None

    def _in_transaction(self) -> bool:
        return self._rt.session.transaction is not None

    async def enable(self) -> None:
        await self._run(lambda: self._rt.set_enabled(True))

    async def disable(self) -> None:
        await self._run(lambda: self._rt.set_enabled(False))

    async def authorize(self, id_tag: str, reservation_id: int | None = None) -> None:
        if not id_tag or len(id_tag) > 20:
            raise InvalidArgument("id_tag must be 1 to 20 characters (OCPP 1.6 IdToken)")
        await self._run(lambda: self._rt.dispatch(ss.Authorize(id_tag, reservation_id)))

    async def withdraw_authorization(self) -> None:
        await self._run(lambda: self._rt.dispatch(ss.Deauthorize()))

    async def pause(self) -> None:
        await self._pause(True)

    async def resume(self) -> None:
        await self._pause(False)

    async def _pause(self, on: bool) -> None:
        async def go() -> None:
            if not self._in_transaction():
                raise Refused("no transaction to pause or resume")
            await self._rt.dispatch(ss.Block("pause", on))

        await self._run(go)

    async def stop_transaction(self, reason: StopReason) -> None:
        if not isinstance(reason, StopReason):
            raise InvalidArgument(f"reason must be a StopReason, got {reason!r}")
        await self._run(lambda: self._rt.dispatch(ss.Stop(reason)))

    async def set_limit(self, amps: float, phases: int, valid_for_s: float = 0.0) -> None:
        if not math.isfinite(amps) or amps < 0:
            raise InvalidArgument(f"amps must be >= 0, got {amps}")
        if phases not in (1, 3):
            raise InvalidArgument(f"phases must be 1 or 3, got {phases}")
        if not math.isfinite(valid_for_s) or valid_for_s < 0:
            raise InvalidArgument(f"valid_for_s must be >= 0, got {valid_for_s}")

        await self._run(lambda: self._rt.set_limit(amps, phases, valid_for_s))

    async def force_unlock(self) -> None:
        async def go() -> None:
            if self._in_transaction():
                # OCPP 1.6 5.17: unlocking during a transaction stops it first.
                await self._rt.dispatch(ss.Stop(StopReason.UNLOCK_COMMAND))
            await self._rt.board.lock.lock(False)

        await self._run(go)

    async def reserve(self, reservation_id: int, id_tag: str, expiry: float) -> None:
        if reservation_id < 0:
            raise InvalidArgument(f"reservation_id must be >= 0, got {reservation_id}")
        if not id_tag:
            raise InvalidArgument("id_tag must not be empty")
        await self._run(lambda: self._rt.dispatch(ss.Reserve(reservation_id, id_tag, expiry)))

    async def cancel_reservation(self, reservation_id: int) -> None:
        await self._run(lambda: self._rt.dispatch(ss.CancelReservation(reservation_id)))

    async def status(self) -> PortStatus:
        rt = self._rt
        s = rt.session
        state = s.reported_state
        if rt.errors and state in (SessionState.IDLE, SessionState.WAITING_FOR_AUTH):
            state = SessionState.FAULTED
        tx = s.transaction
        return PortStatus(
            cp_state=rt.cp.state,
            enabled=s.state is not ss.St.DISABLED,
            session_state=state,
            session_id=s.session_id,
            transaction_id=tx.transaction_id if tx else None,
            meter=rt.meter,
            limits=rt.limits,
            errors=tuple(rt.errors.values()),
            reservation_id=s.reservation.reservation_id if s.reservation else None,
        )

    def events(self) -> AsyncIterator[PortEvent]:
        """Subscribe now: every event from this call on, in order, until the runtime stops."""
        return self._rt.bus.subscribe()
