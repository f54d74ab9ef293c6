"""EnergyManager over FakePorts: stale mains fallback, rotation and priority, on a ManualClock.

The clock only moves when a test advances it, so "after N s" is exact and nothing sleeps.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from waiting import settled

from chargeport.clock import ManualClock
from chargeport.config import EnergyConfig
from chargeport.fake_port import FakePort
from chargeport.port import MeterValue, PortInfo
from main_node.energy import EnergyManager, MainsStatus

REFRESH_S = 5.0


def last_limit(port: FakePort) -> float | None:
    sent = [float(args[0]) for name, args in port.calls if name == "set_limit"]  # type: ignore[arg-type]
    return sent[-1] if sent else None


async def advance(clock: ManualClock, seconds: float, step: float = 1.0) -> None:
    for _ in range(round(seconds / step)):
        clock.advance(step)
        for _ in range(20):
            await asyncio.sleep(0)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def make_ports(clock: ManualClock, n: int = 3) -> dict[int, FakePort]:
    return {
        cid: FakePort(PortInfo(cid, f"SN{cid}", "1.0", 32.0, 3), clock=clock)
        for cid in range(1, n + 1)
    }


@pytest.fixture
async def managed(
    request: pytest.FixtureRequest, clock: ManualClock
) -> AsyncIterator[tuple[EnergyManager, dict[int, FakePort]]]:
    overrides = dict(getattr(request, "param", {}))
    ports = make_ports(clock, overrides.pop("ports", 3))
    settings = {
        "site_limit_a": 40.0,
        "refresh_s": REFRESH_S,
        "mains_max_age_s": 30.0,
        "mains_fallback_a": 10.0,
        **overrides,
    }
    config = EnergyConfig(**settings)
    mgr = EnergyManager(ports, config, clock)
    await mgr.start()
    yield mgr, ports
    await mgr.stop()


async def charge(port: FakePort) -> None:
    await port.authorize("TAG")
    port.plug_in()
    port.ev_ready()


async def test_stale_mains_falls_back_logs_once_and_recovers(
    managed: tuple[EnergyManager, dict[int, FakePort]],
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """EVerest-style fallback: a reading older than mains_max_age_s is not trusted."""
    mgr, ports = managed
    caplog.set_level(logging.INFO, logger="main_node.energy")
    await charge(ports[1])
    mgr.set_mains_reading((10.0, 10.0, 10.0))
    await settled(lambda: last_limit(ports[1]) == 30.0, "40 A less 10 A of building load")
    assert mgr.snapshot().mains_status is MainsStatus.LIVE
    await advance(clock, 29.0)
    assert last_limit(ports[1]) == 30.0  # 29 s old: still trusted
    await advance(clock, 1.0)
    await settled(lambda: last_limit(ports[1]) == 10.0, "the fallback limit, at 30 s")
    snap = mgr.snapshot()
    assert snap.mains_status is MainsStatus.STALE and snap.to_json()["mains_status"] == "stale"
    await advance(clock, 3 * REFRESH_S)  # refreshes while stale: logged once, not per refresh
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "fallback" in warnings[0].getMessage()
    mgr.set_mains_reading((12.0, 10.0, 10.0))
    await settled(lambda: last_limit(ports[1]) == 28.0, "back to site less load")
    mgr.set_mains_reading((12.0, 10.0, 10.0))
    await advance(clock, REFRESH_S)
    infos = [r for r in caplog.records if "are back" in r.getMessage()]
    assert len(infos) == 1 and infos[0].levelno == logging.INFO
    assert mgr.snapshot().mains_status is MainsStatus.LIVE


async def test_a_newer_reading_moves_the_stale_deadline(
    managed: tuple[EnergyManager, dict[int, FakePort]], clock: ManualClock
) -> None:
    mgr, ports = managed
    await charge(ports[1])
    mgr.set_mains_reading((0.0, 0.0, 0.0))
    await settled(lambda: last_limit(ports[1]) == 32.0, "full")
    await advance(clock, 20.0)
    mgr.set_mains_reading((0.0, 0.0, 0.0))
    await advance(clock, 20.0)  # 40 s after the first reading, 20 s after the second
    assert mgr.snapshot().mains_status is MainsStatus.LIVE and last_limit(ports[1]) == 32.0
    await advance(clock, 10.0)
    await settled(lambda: last_limit(ports[1]) == 10.0, "stale 30 s after the second")


@pytest.mark.parametrize("managed", [{"mains_required": True}], indirect=True)
async def test_declared_meter_that_never_answered_is_stale_from_boot(
    managed: tuple[EnergyManager, dict[int, FakePort]],
) -> None:
    """A restarted main must not hand out the whole site before the meter speaks."""
    mgr, ports = managed
    await charge(ports[1])
    await settled(lambda: last_limit(ports[1]) == 10.0, "fallback from the start")
    assert mgr.snapshot().mains_status is MainsStatus.STALE
    mgr.set_mains_reading((0.0, 0.0, 0.0))
    await settled(lambda: last_limit(ports[1]) == 32.0, "a reading: the site limit applies")


@pytest.mark.parametrize("managed", [{"ports": 2, "site_limit_a": 10.0}], indirect=True)
async def test_second_gun_gets_its_turn_rotation(
    managed: tuple[EnergyManager, dict[int, FakePort]], clock: ManualClock
) -> None:
    """Rule R4: 10 A fits one gun at 6 A; the first-come gun does not hold the site."""
    mgr, ports = managed
    await charge(ports[1])
    await settled(lambda: last_limit(ports[1]) == 10.0, "first gun")
    await charge(ports[2])
    await settled(lambda: mgr.snapshot().paused == (2,), "second waits")
    assert last_limit(ports[2]) == 0.0
    await advance(clock, 600.0, step=REFRESH_S)
    await settled(lambda: last_limit(ports[2]) == 10.0 and last_limit(ports[1]) == 0.0, "swap")
    assert mgr.snapshot().paused == (1,)


@pytest.mark.parametrize(
    "managed", [{"ports": 2, "site_limit_a": 10.0, "priority": [2]}], indirect=True
)
async def test_priority_gun_preempts_after_min_on_time(
    managed: tuple[EnergyManager, dict[int, FakePort]], clock: ManualClock
) -> None:
    """Rule R5: a configured priority gun runs first; an OCPP profile still caps it."""
    mgr, ports = managed
    await charge(ports[1])
    await settled(lambda: last_limit(ports[1]) == 10.0, "first gun")
    await charge(ports[2])
    await advance(clock, 300.0, step=REFRESH_S)
    await settled(lambda: last_limit(ports[2]) == 10.0 and last_limit(ports[1]) == 0.0, "preempt")
    mgr.set_profile_limit(2, 8.0)  # TxProfile: authoritative upper bound
    await settled(lambda: last_limit(ports[2]) == 8.0, "capped by the profile")


def phases_sent(port: FakePort) -> int | None:
    sent = [int(args[1]) for name, args in port.calls if name == "set_limit"]  # type: ignore[call-overload]
    return sent[-1] if sent else None


@pytest.mark.parametrize(
    "managed",
    [{"ports": 2, "pv_surplus": True, "phase_switching": True, "pv_margin_w": 100.0}],
    indirect=True,
)
async def test_pv_surplus_follows_export_and_picks_phases(
    managed: tuple[EnergyManager, dict[int, FakePort]],
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The limit follows the export at the grid connection; the phase count follows the
    surplus (P1..P3); a silent grid meter is no surplus, like the stale mains fallback."""
    mgr, ports = managed
    caplog.set_level(logging.INFO, logger="main_node.energy")

    async def feed(watts: float, seconds: float) -> None:
        for _ in range(round(seconds / 5.0)):
            mgr.set_grid_power(watts)
            await advance(clock, 5.0, step=5.0)

    await charge(ports[1])
    await settled(lambda: last_limit(ports[1]) == 0.0, "no reading yet: no surplus")
    assert mgr.snapshot().mains_status is MainsStatus.STALE
    await feed(-5100.0, 125.0)  # 5 kW over the margin, held for min_pause_s (rule R2)
    await settled(lambda: last_limit(ports[1]) == 7.2 and phases_sent(ports[1]) == 3, "3 ph")
    ports[1].emit(MeterValue(energy_wh=0.0, power_w=5000.0))  # the EV draws it ...
    await feed(-100.0, 10.0)  # ... and the export falls by as much: steady
    assert last_limit(ports[1]) == 7.2
    mgr.set_grid_power(1000.0)  # a kettle: importing 1 kW, 3.9 kW left < 3 x 230 V x 6 A
    await settled(lambda: phases_sent(ports[1]) == 1, "P1: one phase")
    assert last_limit(ports[1]) == pytest.approx(16.9) and mgr.snapshot().pv_phases == 1
    await advance(clock, 30.0)  # no grid reading for mains_max_age_s: no surplus
    await settled(lambda: last_limit(ports[1]) == 0.0, "stale: no surplus")
    assert any("no PV surplus" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("managed", [{"ports": 1, "pv_surplus": True}], indirect=True)
async def test_pv_without_phase_switching_budgets_the_ports_own_phases(
    managed: tuple[EnergyManager, dict[int, FakePort]],
) -> None:
    """A port that cannot switch draws on all its phases: the budget is split over three."""
    mgr, ports = managed
    await charge(ports[1])
    mgr.set_grid_power(-3000.0)  # 2.9 kW: 4.2 A on three phases, under 6 A
    await settled(lambda: mgr.snapshot().paused == (1,), "paused")
    assert phases_sent(ports[1]) == 3 and last_limit(ports[1]) == 0.0
