"""Simulated-EV scenarios: the parser, and every shipped example completing a session."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from chargeport.clock import ManualClock
from chargeport.config import PortConfig
from chargeport.port import ErrorCode, MeterValue, PortErrorEvent, SessionEvent, StopReason
from chargeport.port import SessionEventType as T
from evse.ev_sim import ScenarioError, Step, parse_scenario, run_scenario
from evse.runtime import EvseRuntime
from hal.sim import SimBoard

SCENARIOS = Path(__file__).resolve().parents[2] / "examples" / "scenarios"


def test_parse_everest_style() -> None:
    steps = parse_scenario(
        "sleep 1; plugin; wait_pwm  # comment\ndraw_power_regulated 16,3; sleep 30; pause; unplug"
    )
    assert [s.command for s in steps] == [
        "sleep",
        "plugin",
        "wait_pwm",
        "draw_power_regulated",
        "sleep",
        "pause",
        "unplug",
    ]
    assert steps[3] == Step("draw_power_regulated", ("16,3",), 2)


def test_parse_faults_and_auth() -> None:
    steps = parse_scenario("auth 04AB\nrcd_trip\ncp_short on\ncp_short off\ndraw_power_fixed 20, 1")
    assert [(s.command, s.args) for s in steps] == [
        ("auth", ("04AB",)),
        ("rcd_trip", ()),
        ("cp_short", ("on",)),
        ("cp_short", ("off",)),
        ("draw_power_fixed", ("20,1",)),
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("plugin\nfly_away", "line 2"),
        ("sleep", "line 1"),
        ("sleep soon", "line 1"),
        ("\n\ndraw_power_regulated 16", "line 3"),
        ("draw_power_regulated 16,4", "line 1"),
        ("plugin now", "line 1"),
        ("rcd_trip maybe", "line 1"),
        ("sleep -1", "line 1"),
    ],
)
def test_parse_errors_name_the_line(text: str, line: str) -> None:
    with pytest.raises(ScenarioError, match=line):
        parse_scenario(text)


async def _play(name: str) -> tuple[list[object], float]:
    """Run a shipped scenario with a station that authorizes; returns events, simulated s."""
    clock = ManualClock()
    sim = SimBoard(clock=clock, sample_rate_hz=2000, block_s=0.5)
    rt = EvseRuntime(
        sim.board,
        PortConfig(sample_rate_hz=2000),
        connector_id=1,
        serial="S",
        firmware_version="1",
        clock=clock,
    )
    steps = parse_scenario((SCENARIOS / name).read_text())
    bodies: list[object] = []
    sub = rt.port.events()
    t0 = clock.monotonic()

    async def station() -> None:
        async for e in sub:
            bodies.append(e.body)
            b = e.body
            if isinstance(b, SessionEvent) and b.type is T.AUTH_REQUIRED:
                tag = b.transaction.id_tag if b.transaction else "REMOTE"
                if name == "plug-and-wait.txt" or b.transaction:
                    await rt.port.authorize(tag)

    async with rt:
        watcher = asyncio.create_task(station())
        if name == "never-plugs.txt":
            await rt.port.authorize("REMOTE")  # a remote start nobody comes for
        play = asyncio.create_task(run_scenario(steps, sim.ev, clock))
        while not play.done() and clock.monotonic() - t0 < 700:
            clock.advance(0.1)
            for _ in range(6):
                await asyncio.sleep(0)
        await play
        for _ in range(10):  # let the runtime see the last step (pilot debounce)
            clock.advance(0.1)
            for _ in range(6):
                await asyncio.sleep(0)
    await watcher
    sim.close()
    return bodies, clock.monotonic() - t0


@pytest.mark.parametrize(
    "name", ["charge-and-leave.txt", "plug-and-wait.txt", "never-plugs.txt", "fault-rcd.txt"]
)
async def test_shipped_scenario_completes_within_10_min(name: str) -> None:
    bodies, took = await _play(name)
    types = [b.type for b in bodies if isinstance(b, SessionEvent)]
    assert took < 600
    if name == "never-plugs.txt":
        assert types == [T.AUTHORIZED, T.PLUGIN_TIMEOUT]
        return
    assert types[0] is T.SESSION_STARTED and types[-1] is T.SESSION_FINISHED
    assert T.TRANSACTION_STARTED in types and T.CHARGING_STARTED in types
    assert T.TRANSACTION_FINISHED in types
    if name == "charge-and-leave.txt":
        assert T.CHARGING_PAUSED_EV in types and T.CHARGING_RESUMED in types
    if name == "fault-rcd.txt":
        errors = [b for b in bodies if isinstance(b, PortErrorEvent)]
        assert [(e.code, e.active) for e in errors] == [
            (ErrorCode.GROUND_FAILURE, True),
            (ErrorCode.GROUND_FAILURE, False),
        ]


@pytest.mark.parametrize(
    ("name", "errors", "stop_reason"),
    [
        # IEC 61851-1 6.3.1.4: the weld latches; leaving does not clear it (OCPP Faulted).
        ("fault-welded.txt", [(ErrorCode.POWER_SWITCH_FAILURE, True)], StopReason.EV_DISCONNECTED),
        # Annex A: reduce, then stop the EV that still overdraws; cleared when it leaves.
        (
            "over-current-stop.txt",
            [(ErrorCode.OVER_CURRENT_FAILURE, True), (ErrorCode.OVER_CURRENT_FAILURE, False)],
            StopReason.OTHER,
        ),
        # Annex A: an EV that follows the reduced offer charges on, no fault.
        ("over-current-reduce.txt", [], StopReason.EV_DISCONNECTED),
    ],
)
async def test_protection_scenarios(
    name: str, errors: list[tuple[ErrorCode, bool]], stop_reason: StopReason
) -> None:
    bodies, took = await _play(name)
    assert took < 600
    types = [b.type for b in bodies if isinstance(b, SessionEvent)]
    assert types[0] is T.SESSION_STARTED and types[-1] is T.SESSION_FINISHED
    assert T.CHARGING_STARTED in types
    seen = [(b.code, b.active) for b in bodies if isinstance(b, PortErrorEvent)]
    assert seen == errors
    (done,) = [
        b.transaction
        for b in bodies
        if isinstance(b, SessionEvent) and b.type is T.TRANSACTION_FINISHED
    ]
    assert done is not None and done.stop_reason is stop_reason
    if name == "over-current-reduce.txt":
        drawn = [max(b.current_a) for b in bodies if isinstance(b, MeterValue) and b.current_a]
        assert max(drawn) > 36.0  # 37 A on a 32 A offer at first ...
        assert [round(c) for c in drawn if c > 30][-10:] == [32] * 10  # ... then the grant
