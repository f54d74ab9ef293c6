"""1 <-> 3 phase switching: the pure sequence (pause, switch with the contactor open, wait,
resume) and the runtime driving a sim board whose relay counts any switch under load."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from evse_rig import RATE, Rig

from chargeport.clock import ManualClock
from chargeport.config import PortConfig
from chargeport.port import SessionEvent
from chargeport.port import SessionEventType as T
from evse.phase_switch import HoldEnergy, PhaseSwitchMachine, PhaseSwitchState, SwitchPhases
from evse.runtime import EvseRuntime, RuntimeTiming
from hal.sim import SimBoard

Tick = tuple[str, float, bool, int]  # ("request" | "tick", now, contactor open, phases)


@pytest.mark.parametrize(
    ("name", "steps", "effects", "end"),
    [
        (
            "iec61851_a3_pause_then_switch_when_the_contactor_is_open",
            [("request", 0.0, False, 1), ("tick", 0.1, False, 0), ("tick", 0.3, True, 0)],
            [[HoldEnergy(True)], [], [SwitchPhases(1)]],
            PhaseSwitchState.WAITING,
        ),
        (
            "resume_only_after_the_wait",
            [("request", 0.0, True, 1), ("tick", 9.9, True, 0), ("tick", 10.0, True, 0)],
            [[HoldEnergy(True), SwitchPhases(1)], [], [HoldEnergy(False)]],
            PhaseSwitchState.IDLE,
        ),
        (
            "a_welded_contactor_never_sees_the_relay_switch",
            [("request", 0.0, False, 1), ("tick", 60.0, False, 0)],
            [[HoldEnergy(True)], []],
            PhaseSwitchState.PAUSING,
        ),
        (
            "same_phases_is_nothing",
            [("request", 0.0, True, 3)],
            [[]],
            PhaseSwitchState.IDLE,
        ),
        (
            "asked_back_while_waiting_switches_again_and_restarts_the_wait",
            [
                ("request", 0.0, True, 1),
                ("request", 5.0, True, 3),
                ("tick", 5.1, True, 0),
                ("tick", 14.0, True, 0),
                ("tick", 15.1, True, 0),
            ],
            [[HoldEnergy(True), SwitchPhases(1)], [], [SwitchPhases(3)], [], [HoldEnergy(False)]],
            PhaseSwitchState.IDLE,
        ),
    ],
)
def test_phase_switch_sequence(
    name: str, steps: list[Tick], effects: list[list[object]], end: PhaseSwitchState
) -> None:
    m = PhaseSwitchMachine(phases=3, wait_s=10.0)
    got = [
        m.request(phases, now, opened) if kind == "request" else m.tick(now, opened)
        for kind, now, opened, phases in steps
    ]
    assert got == effects, name
    assert m.state is end


async def test_runtime_switches_phases_vehicle_safe_and_the_ev_follows() -> None:
    clock = ManualClock()
    sim = SimBoard(clock=clock, sample_rate_hz=RATE, block_s=0.1, phase_switch=True)
    counter = itertools.count(1)
    rt = EvseRuntime(
        sim.board,
        PortConfig(sample_rate_hz=RATE),
        connector_id=1,
        serial="SIM-1",
        firmware_version="1.0.0",
        clock=clock,
        id_factory=lambda: f"id{next(counter)}",
        timing=RuntimeTiming(debounce_s=0.05, housekeeping_s=0.05, phase_switch_wait_s=2.0),
    )
    rig = Rig(clock, sim, rt)
    sub = rt.port.events()

    async def collect() -> None:
        async for e in sub:
            rig.events.append(e)

    task = asyncio.create_task(collect())
    async with rt:
        sim.ev.plug_in()
        await rig.run(0.2)
        await rt.port.authorize("T")
        sim.ev.draw(16.0, 3)
        await rig.run(0.5)
        assert sim.currents() == (16.0, 16.0, 16.0)
        await rt.port.set_limit(16.0, 1)  # the energy manager chose one phase
        await rig.settle()
        assert sim.ev.offered_a == 0.0 and sim.phases_fed == 3  # paused first ...
        await rig.run(0.5)
        assert sim.phases_fed == 1 and not sim.contactor_closed  # ... switched while open ...
        assert sim.ev.offered_a == 0.0
        await rig.run(2.0)
        assert sim.currents() == (16.0, 0.0, 0.0)  # ... resumed: the EV draws on L1 only
        await rt.port.set_limit(10.0, 3)
        await rig.run(3.0)
        assert sim.currents() == (10.0, 10.0, 10.0)
        assert sim.unsafe_phase_switches == 0
        types = [e.body.type for e in rig.events if isinstance(e.body, SessionEvent)]
        assert types.count(T.CHARGING_PAUSED_EVSE) == 2 and types.count(T.CHARGING_RESUMED) == 2
    await task
    sim.close()
