"""The ChargePort contract (chargeport/port.py), checked against every port implementation:
in-process ports and the same ports behind the gRPC link (see conftest.FACTORIES)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from contractkit import Harness

from chargeport.port import (
    CommandRefused,
    CpState,
    InvalidArgument,
    PortDisabledChanged,
    PortEvent,
    SessionEvent,
    SessionEventType,
    SessionState,
    StopReason,
)


async def next_event(sub: AsyncIterator[PortEvent], pred: Callable[[Any], bool]) -> PortEvent:
    async with asyncio.timeout(5.0):
        async for ev in sub:
            if pred(ev.body):
                return ev
    raise AssertionError("event stream ended")


def session(kind: SessionEventType) -> Callable[[Any], bool]:
    return lambda b: isinstance(b, SessionEvent) and b.type is kind


async def test_info_describes_the_port(harness: Harness) -> None:
    info = harness.port.info
    assert info.serial == "SAT-C" and info.phases in (1, 3) and info.max_current_a >= 6.0


async def test_idle_status(harness: Harness) -> None:
    s = await harness.port.status()
    assert (s.cp_state, s.enabled, s.session_state) == (CpState.A, True, SessionState.IDLE)
    assert s.transaction_id is None and s.reservation_id is None


async def test_disable_then_enable_is_reported_in_status_and_events(harness: Harness) -> None:
    sub = harness.port.events()
    await harness.port.disable()
    off = await next_event(sub, lambda b: isinstance(b, PortDisabledChanged))
    assert off.body == PortDisabledChanged(False)
    assert not (await harness.port.status()).enabled
    await harness.port.enable()
    on = await next_event(sub, lambda b: isinstance(b, PortDisabledChanged))
    assert on.body == PortDisabledChanged(True) and on.seq > off.seq
    assert (await harness.port.status()).enabled


INVALID: list[tuple[str, Callable[[Any], Awaitable[None]]]] = [
    ("set_limit negative amps", lambda p: p.set_limit(-1.0, 3)),
    ("set_limit 2 phases", lambda p: p.set_limit(16.0, 2)),
    ("set_limit negative validity", lambda p: p.set_limit(16.0, 3, -5.0)),
    ("authorize empty id tag", lambda p: p.authorize("")),
    ("authorize id tag over 20 chars (OCPP 1.6 IdToken)", lambda p: p.authorize("X" * 21)),
    ("reserve negative id", lambda p: p.reserve(-1, "TAG", 4e9)),
]


@pytest.mark.parametrize(("name", "call"), INVALID, ids=[n for n, _ in INVALID])
async def test_bad_arguments_raise_invalid_argument(
    harness: Harness, name: str, call: Callable[[Any], Awaitable[None]]
) -> None:
    with pytest.raises(InvalidArgument):
        await call(harness.port)
    assert (await harness.port.status()).enabled  # the port keeps serving


REFUSED_WHEN_IDLE: list[tuple[str, Callable[[Any], Awaitable[None]]]] = [
    ("stop_transaction", lambda p: p.stop_transaction(StopReason.REMOTE)),
    ("pause", lambda p: p.pause()),
    ("resume", lambda p: p.resume()),
    ("cancel unknown reservation (OCPP 1.6 5.1 Rejected)", lambda p: p.cancel_reservation(99)),
]


@pytest.mark.parametrize(("name", "call"), REFUSED_WHEN_IDLE, ids=[n for n, _ in REFUSED_WHEN_IDLE])
async def test_commands_that_make_no_sense_now_are_refused(
    harness: Harness, name: str, call: Callable[[Any], Awaitable[None]]
) -> None:
    with pytest.raises(CommandRefused):
        await call(harness.port)


async def test_set_limit_reaches_the_ev_iec61851_a8(harness: Harness) -> None:
    """The limit is what the car is offered (IEC 61851-1 A.8: the PWM duty encodes it)."""
    port = harness.port
    sub = port.events()
    await port.authorize("TAG1")
    harness.plug_in()
    harness.ev_ready()
    await next_event(sub, session(SessionEventType.CHARGING_STARTED))
    await port.set_limit(16.0, 3, 60.0)
    await harness.wait_offer(16.0)
    await port.set_limit(10.0, 3)
    await harness.wait_offer(10.0)
    await port.set_limit(0.0, 3)  # 0 A: no energy offered (IEC 61851-1 pause)
    await harness.wait_offer(0.0)


async def test_charging_session_events_in_order_then_remote_stop(harness: Harness) -> None:
    """EVerest session order: SessionStarted -> TransactionStarted -> ChargingStarted ->
    TransactionFinished (OCPP 1.6 StopTransaction reason Remote)."""
    port = harness.port
    sub = port.events()
    await port.authorize("TAG1")
    harness.plug_in()
    started = await next_event(sub, session(SessionEventType.SESSION_STARTED))
    tx = await next_event(sub, session(SessionEventType.TRANSACTION_STARTED))
    assert tx.body.transaction.id_tag == "TAG1" and tx.seq > started.seq
    harness.ev_ready()
    charging = await next_event(sub, session(SessionEventType.CHARGING_STARTED))
    assert charging.seq > tx.seq
    status = await port.status()
    assert status.session_state is SessionState.CHARGING
    assert status.transaction_id == tx.body.transaction.transaction_id
    await port.stop_transaction(StopReason.REMOTE)
    fin = await next_event(sub, session(SessionEventType.TRANSACTION_FINISHED))
    assert fin.body.transaction.transaction_id == status.transaction_id
    assert fin.body.transaction.stop_reason is StopReason.REMOTE
    assert (await port.status()).transaction_id is None


async def test_event_seq_strictly_increases(harness: Harness) -> None:
    sub = harness.port.events()
    await harness.port.disable()
    await harness.port.enable()
    await harness.port.authorize("TAG2")
    harness.plug_in()
    seqs: list[int] = []
    async with asyncio.timeout(5.0):
        async for ev in sub:
            seqs.append(ev.seq)
            if session(SessionEventType.TRANSACTION_STARTED)(ev.body):
                break
    assert len(seqs) >= 4 and all(a < b for a, b in itertools.pairwise(seqs))
