"""Protection faults through the evse runtime on the sim hal (ManualClock, 10 ms steps).

Every fault source must take the offer to 0 within the IEC 61851-1 limit (100 ms of the fault
event); a welded contactor (IEC 61851-1 6.3.1.4) latches: the connector reports Faulted with
OCPP 1.6 errorCode PowerSwitchFailure, takes no new session, and is cleared only by an operator
check (enable with the mirror open) or a reboot whose check passes. Over-current follows
IEC 61851-1 Annex A: time to follow, then a reduced offer, then the session is stopped.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from evse_rig import Rig, make_rig

from chargeport.config import PortConfig
from chargeport.port import (
    CommandRefused,
    ErrorCode,
    LimitsChanged,
    PortErrorEvent,
    SessionEvent,
    SessionState,
    StopReason,
)
from chargeport.port import SessionEventType as T
from evse import session as ss
from evse.errors import Refused
from evse.runtime import EvseRuntime
from hal.sim import SimBoard

IEC_61851_OFF_S = 0.1  # the offer must be gone within 100 ms of the fault
STEP = 0.01


@asynccontextmanager
async def running(rig: Rig) -> AsyncIterator[Rig]:
    sub = rig.rt.port.events()

    async def collect() -> None:
        async for e in sub:
            rig.events.append(e)

    task = asyncio.create_task(collect())
    await rig.rt.start()
    await rig.settle()
    try:
        yield rig
    finally:
        await rig.rt.stop()
        await task
        rig.sim.close()


def active_errors(rig: Rig, code: ErrorCode) -> list[PortErrorEvent]:
    return [
        b
        for b in rig.bodies(PortErrorEvent)
        if isinstance(b, PortErrorEvent) and b.code is code and b.active
    ]


async def step_until(rig: Rig, predicate: Callable[[], bool], limit_s: float) -> float:
    """Advance 10 ms at a time until `predicate`; returns the simulated time it held."""
    for _ in range(round(limit_s / STEP)):
        if predicate():
            return rig.clock.monotonic()
        await rig.run(STEP, STEP)
    raise AssertionError(f"not within {limit_s} s")


async def charging(rig: Rig, amps: float = 16.0, **draw: object) -> None:
    rig.sim.ev.plug_in()
    await rig.run(0.2)
    await rig.rt.port.authorize("T")
    rig.sim.ev.draw(amps, 3, **draw)  # type: ignore[arg-type]
    await rig.run(0.5)


async def inject(rig: Rig, fault: str) -> None:
    await charging(rig)
    rig.sim.inject(fault)


async def welded(rig: Rig) -> None:
    await charging(rig)
    rig.sim.inject("welded_contactor")
    rig.sim.ev.pause()  # C -> B: the contactor opens, the mirror stays closed


async def stuck_open(rig: Rig) -> None:
    rig.sim.inject("stuck_open_contactor")
    await charging(rig)


async def over_current(rig: Rig) -> None:
    await rig.rt.port.set_limit(10.0, 3)
    await charging(rig, 20.0, regulated=False)  # ignores the 10 A offer


FAULT_SOURCES: list[tuple[str, ErrorCode, Callable[[Rig], Awaitable[None]], bool]] = [
    ("rcd", ErrorCode.GROUND_FAILURE, lambda r: inject(r, "rcd_trip"), False),
    ("diode", ErrorCode.EV_COMMUNICATION_ERROR, lambda r: inject(r, "diode_fault"), False),
    ("cp_short", ErrorCode.EV_COMMUNICATION_ERROR, lambda r: inject(r, "cp_short"), False),
    ("thermal", ErrorCode.HIGH_TEMPERATURE, lambda r: inject(r, "over_temperature"), False),
    ("welded", ErrorCode.POWER_SWITCH_FAILURE, welded, False),
    ("stuck_open", ErrorCode.POWER_SWITCH_FAILURE, stuck_open, False),
    ("over_current", ErrorCode.OVER_CURRENT_FAILURE, over_current, False),
    ("meter", ErrorCode.POWER_METER_FAILURE, lambda r: inject(r, "meter_failure"), True),
]


@pytest.mark.parametrize(
    ("source", "code", "trigger", "power_meter"),
    FAULT_SOURCES,
    ids=[s[0] for s in FAULT_SOURCES],
)
async def test_every_fault_source_takes_the_offer_to_zero_iec61851(
    source: str,
    code: ErrorCode,
    trigger: Callable[[Rig], Awaitable[None]],
    power_meter: bool,
) -> None:
    async with running(await make_rig(power_meter=power_meter)) as rig:
        await trigger(rig)
        at_fault = await step_until(rig, lambda: bool(active_errors(rig, code)), 10.0)
        at_zero = await step_until(rig, lambda: rig.sim.ev.offered_a == 0.0, 1.0)
        assert at_zero - at_fault <= IEC_61851_OFF_S, source
        # ... and it stays 0, with the contactor commanded open, while the fault is active.
        for _ in range(100):
            await rig.run(STEP, STEP)
            assert rig.rt.errors and rig.sim.ev.offered_a == 0.0 and rig.rt.offered_a == 0.0
            assert not rig.sim.contactor_commanded, source
        status = await rig.rt.port.status()
        assert any(e.code is code for e in status.errors)


# ------------------------------------------------------------------ welded contactor


async def test_weld_latches_and_refuses_new_sessions_until_an_operator_check_passes() -> None:
    async with running(await make_rig()) as rig:
        await welded(rig)
        await step_until(rig, lambda: bool(rig.rt.errors), 2.0)
        rig.sim.ev.unplug()
        rig.sim.inject("welded_contactor", False)  # the contacts let go: the mirror opens
        await rig.run(1.0)
        assert rig.sim.contactor_closed is False
        status = await rig.rt.port.status()
        assert status.session_state is SessionState.FAULTED  # latched, mirror open or not
        assert status.errors[0].code is ErrorCode.POWER_SWITCH_FAILURE
        rig.sim.ev.plug_in()
        await rig.run(0.2)
        with pytest.raises(CommandRefused, match="faulted"):
            await rig.rt.port.authorize("T")
        await rig.rt.port.enable()  # the operator's action: the check passes
        await rig.settle()
        assert rig.bodies(PortErrorEvent)[-1] == PortErrorEvent(
            ErrorCode.POWER_SWITCH_FAILURE,
            active_errors(rig, ErrorCode.POWER_SWITCH_FAILURE)[0].message,
            False,
        )
        await rig.rt.port.authorize("T")
        rig.sim.ev.draw(16.0, 3)
        await rig.run(0.5)
        assert rig.sim.contactor_closed and rig.session_types()[-1] is T.CHARGING_STARTED


async def test_operator_enable_while_still_welded_stays_faulted() -> None:
    async with running(await make_rig()) as rig:
        await welded(rig)
        await step_until(rig, lambda: bool(rig.rt.errors), 2.0)
        rig.sim.ev.unplug()
        await rig.run(0.5)
        await rig.rt.port.enable()  # mirror still closed: the check fails
        await rig.settle()
        assert rig.rt.contactor.welded and (await rig.rt.port.status()).errors
        assert [b.active for b in rig.bodies(PortErrorEvent) if isinstance(b, PortErrorEvent)] == [
            True
        ]


async def test_reboot_check_finds_a_weld_and_a_passing_one_clears_it() -> None:
    """The latch lives in the running machine: a reboot re-checks the mirror before anything."""
    rig = await make_rig()
    rig.sim.contactor_commanded = rig.sim.contactor_closed = True
    rig.sim.inject("welded_contactor")  # welded shut while the board was off
    async with running(rig):
        await step_until(rig, lambda: bool(rig.rt.errors), 1.0)
        assert rig.rt.contactor.welded
        rig.sim.ev.plug_in()
        await rig.run(0.2)
        with pytest.raises(CommandRefused):
            await rig.rt.port.authorize("T")
    # Repaired while off: the next boot's check passes and the port takes sessions again.
    sim = SimBoard(clock=rig.clock, sample_rate_hz=2000, block_s=0.1)
    counter = itertools.count(1)
    rt = EvseRuntime(
        sim.board,
        PortConfig(sample_rate_hz=2000),
        connector_id=1,
        serial="SIM-1",
        firmware_version="1.0.0",
        clock=rig.clock,
        id_factory=lambda: f"id{next(counter)}",
        timing=rig.rt.timing,
    )
    async with running(Rig(rig.clock, sim, rt)) as again:
        await again.run(0.5)
        assert not again.rt.errors
        sim.ev.plug_in()
        await again.run(0.2)
        await rt.port.authorize("T")


@pytest.mark.parametrize(
    ("name", "free_vend", "inputs", "state"),
    [
        ("ocpp16_faulted_refuses_authorize", False, [ss.Plugged()], ss.St.WAITING_FOR_AUTH),
        ("free_vend_does_not_start_on_a_faulted_gun", True, [ss.Plugged()], ss.St.WAITING_FOR_AUTH),
    ],
)
def test_inoperative_block_refuses_new_transactions(
    name: str, free_vend: bool, inputs: list[ss.SessionInput], state: ss.St
) -> None:
    m = ss.SessionMachine(id_factory=lambda: "x", free_vend=free_vend)
    m.handle(ss.Block(ss.INOPERATIVE, True), 0.0)
    for i in inputs:
        m.handle(i, 1.0)
    assert m.state is state, name
    with pytest.raises(Refused, match="faulted"):
        m.handle(ss.Authorize("T"), 2.0)
    m.handle(ss.Block(ss.INOPERATIVE, False), 3.0)
    m.handle(ss.Authorize("T"), 4.0)
    assert m.transaction is not None


# ------------------------------------------------------------------ over-current (Annex A)


async def test_over_current_reduces_the_offer_for_an_ev_that_overshoots_annex_a() -> None:
    """An EV that draws 3 A above any offer keeps charging, at the current it was granted."""
    async with running(await make_rig()) as rig:
        await charging(rig, 32.0, overshoot_a=3.0)
        await rig.rt.port.set_limit(16.0, 3)
        await step_until(rig, lambda: rig.sim.ev.offered_a < 14.0, 5.0)
        assert rig.sim.ev.offered_a == pytest.approx(13.0, abs=0.2)
        await rig.run(5.0)
        assert rig.sim.currents() == pytest.approx((16.0, 16.0, 16.0), abs=0.2)
        assert not rig.rt.errors and rig.session_types()[-1] is T.CHARGING_STARTED
        assert rig.bodies(LimitsChanged)[-1] == LimitsChanged(16.0, 3)  # the grant is unchanged
        rig.sim.ev.unplug()  # the next EV starts without compensation
        await rig.run(0.5)
        assert rig.rt.over_current.compensation_a == 0.0


async def test_over_current_ev_ignoring_the_offer_is_stopped_after_its_time_annex_a() -> None:
    """Table A.8: the EV is given its time to follow; then, with no reduction that keeps 6 A
    (20 A drawn on a 10 A grant), the session is stopped: not a silent pause."""
    async with running(await make_rig()) as rig:
        await rig.rt.port.set_limit(10.0, 3)
        rig.sim.ev.plug_in()
        await rig.run(0.2)
        await rig.rt.port.authorize("T")
        rig.sim.ev.draw(20.0, 3, regulated=False)
        began = await step_until(rig, lambda: max(rig.sim.currents()) > 0, 2.0)
        at = await step_until(rig, lambda: bool(rig.rt.errors), 10.0)
        assert at - began >= rig.rt.timing.over_current_allowed_s
        await rig.run(0.5)
        finished = [
            b
            for b in rig.bodies(SessionEvent)
            if isinstance(b, SessionEvent) and b.type is T.TRANSACTION_FINISHED
        ]
        assert finished and finished[0].transaction is not None
        assert finished[0].transaction.stop_reason is StopReason.OTHER
        assert not rig.sim.contactor_closed


async def test_ev_stopping_c_to_b_opens_the_contactor_within_100ms_iec61851_a3() -> None:
    """IEC 61851-1 table A.6 / A.3: the EVSE opens the supply within 100 ms of C -> B."""
    async with running(await make_rig()) as rig:
        await charging(rig)
        assert rig.sim.contactor_closed
        rig.sim.ev.pause()
        began = rig.clock.monotonic()
        opened = await step_until(rig, lambda: not rig.sim.contactor_commanded, 1.0)
        assert opened - began <= IEC_61851_OFF_S
        assert rig.sim.currents() == (0.0, 0.0, 0.0)
