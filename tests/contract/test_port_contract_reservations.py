"""The ChargePort contract for reservations (OCPP 1.6 5.13 ReserveNow, 5.1 CancelReservation)
and current limits (set_limit -> LimitsChanged), against every factory in conftest.FACTORIES."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from contractkit import Harness

from chargeport.port import (
    CommandRefused,
    InvalidArgument,
    LimitsChanged,
    PortEvent,
    SessionEvent,
    SessionEventType,
    SessionState,
)

LATER = 3600.0  # a reservation that will not expire during the test


async def next_event(sub: AsyncIterator[PortEvent], pred: Callable[[Any], bool]) -> PortEvent:
    async with asyncio.timeout(5.0):
        async for ev in sub:
            if pred(ev.body):
                return ev
    raise AssertionError("event stream ended")


def session(kind: SessionEventType) -> Callable[[Any], bool]:
    return lambda b: isinstance(b, SessionEvent) and b.type is kind


def limits(b: object) -> bool:
    return isinstance(b, LimitsChanged)


async def test_reserve_then_cancel_ocpp16_5_13_and_5_1(harness: Harness) -> None:
    port = harness.port
    sub = port.events()
    await port.reserve(7, "TAG1", time.time() + LATER)
    start = await next_event(sub, session(SessionEventType.RESERVATION_START))
    s = await port.status()
    assert (s.reservation_id, s.session_state) == (7, SessionState.RESERVED)
    with pytest.raises(CommandRefused):  # one reservation per connector
        await port.reserve(8, "TAG2", time.time() + LATER)
    with pytest.raises(CommandRefused):  # not this reservation
        await port.cancel_reservation(8)
    await port.cancel_reservation(7)
    end = await next_event(sub, session(SessionEventType.RESERVATION_END))
    assert end.seq > start.seq
    s = await port.status()
    assert (s.reservation_id, s.session_state) == (None, SessionState.IDLE)


async def test_reservation_expires_with_reservation_end_ocpp16_5_13(harness: Harness) -> None:
    port = harness.port
    sub = port.events()
    await port.reserve(3, "TAG1", time.time() + 0.3)
    await next_event(sub, session(SessionEventType.RESERVATION_START))
    await next_event(sub, session(SessionEventType.RESERVATION_END))
    s = await port.status()
    assert (s.reservation_id, s.session_state) == (None, SessionState.IDLE)
    await port.reserve(4, "TAG1", time.time() + LATER)  # the connector is free again


async def test_reservation_in_the_past_is_refused(harness: Harness) -> None:
    with pytest.raises(CommandRefused):
        await harness.port.reserve(5, "TAG1", time.time() - 1.0)
    assert (await harness.port.status()).reservation_id is None


async def test_reservation_on_a_disabled_port_is_refused(harness: Harness) -> None:
    await harness.port.disable()
    with pytest.raises(CommandRefused):
        await harness.port.reserve(5, "TAG1", time.time() + LATER)


async def test_reserved_port_refuses_another_id_tag_ocpp16_5_13(harness: Harness) -> None:
    await harness.port.reserve(9, "OWNER", time.time() + LATER)
    with pytest.raises(CommandRefused):
        await harness.port.authorize("STRANGER")
    assert (await harness.port.status()).reservation_id == 9


async def test_the_reserved_id_tag_uses_the_reservation(harness: Harness) -> None:
    """OCPP 1.6 5.13: the transaction carries the reservation id (StartTransaction)."""
    port = harness.port
    sub = port.events()
    await port.reserve(11, "OWNER", time.time() + LATER)
    await port.authorize("OWNER")
    await next_event(sub, session(SessionEventType.RESERVATION_END))
    assert (await port.status()).reservation_id is None
    harness.plug_in()
    tx = await next_event(sub, session(SessionEventType.TRANSACTION_STARTED))
    assert tx.body.transaction.id_tag == "OWNER"
    assert tx.body.transaction.reservation_id == 11


LIMITS = [  # (set_limit args, the LimitsChanged it yields), each a change from the one before
    ((16.0, 3), LimitsChanged(16.0, 3)),
    ((10.0, 1), LimitsChanged(10.0, 1)),
    ((80.0, 3), LimitsChanged(32.0, 3)),  # above the rating offers the rating (IEC 61851-1 A.8)
    ((0.0, 3), LimitsChanged(0.0, 3)),  # 0 A: no energy offered
    ((12.0, 3), LimitsChanged(12.0, 3)),
    ((12.0, 3), None),  # the same offer again: LimitsChanged is for changes only
    ((20.0, 3), LimitsChanged(20.0, 3)),
]


async def test_set_limit_emits_limits_changed_and_shows_in_status(harness: Harness) -> None:
    port = harness.port
    sub = port.events()
    for args, want in LIMITS:
        await port.set_limit(*args)
        if want is not None:
            assert (await next_event(sub, limits)).body == want, args
            assert (await port.status()).limits == want, args
    # A repeated offer would have shown up as the next LimitsChanged above (events are ordered).


INVALID_LIMITS = [
    (-1.0, 3, 0.0),  # negative amps
    (float("nan"), 3, 0.0),
    (float("inf"), 3, 0.0),
    (16.0, 2, 0.0),  # phases are 1 or 3
    (16.0, 3, -1.0),  # negative validity
]


async def test_invalid_limit_raises_invalid_argument_and_changes_nothing(
    harness: Harness,
) -> None:
    port = harness.port
    sub = port.events()
    await port.set_limit(16.0, 3)
    assert (await next_event(sub, limits)).body == LimitsChanged(16.0, 3)
    for args in INVALID_LIMITS:
        with pytest.raises(InvalidArgument):
            await port.set_limit(*args)
    assert (await port.status()).limits == LimitsChanged(16.0, 3)
    await port.set_limit(20.0, 3)  # a marker: no LimitsChanged came before it
    assert (await next_event(sub, limits)).body == LimitsChanged(20.0, 3)
