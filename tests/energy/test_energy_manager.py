"""EnergyManager over FakePorts: event-driven pushes, refresh, failures and link loss.

The clock is a ManualClock that the tests only advance on purpose, so a limit that reaches a
port without `advance` proves the path is event-driven (no polling period in it).
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
from chargeport.port import LinkChanged, MeterValue, PortInfo, PortUnavailable
from main_node.energy import EnergyManager, EnergySnapshot

REFRESH_S = 5.0
LOG: list[tuple[int, float]] = []  # (connector, amps) across ports, in call order


class FlakyPort(FakePort):
    """A FakePort whose set_limit can be made to fail like an unreachable satellite."""

    unavailable = False

    async def set_limit(self, amps: float, phases: int, valid_for_s: float = 0.0) -> None:
        if self.unavailable:
            self.calls.append(("set_limit_failed", (amps,)))
            raise PortUnavailable("link down")
        LOG.append((self.info.connector_id, amps))
        await super().set_limit(amps, phases, valid_for_s)


def limits(port: FakePort) -> list[float]:
    return [float(args[0]) for name, args in port.calls if name == "set_limit"]  # type: ignore[arg-type]


def last_limit(port: FakePort) -> float | None:
    sent = limits(port)
    return sent[-1] if sent else None


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def ports(clock: ManualClock) -> dict[int, FlakyPort]:
    LOG.clear()
    return {
        cid: FlakyPort(PortInfo(cid, f"SN{cid}", "1.0", 32.0, 3, remote=cid > 1), clock=clock)
        for cid in (1, 2, 3)
    }


@pytest.fixture
async def manager(ports: dict[int, FlakyPort], clock: ManualClock) -> AsyncIterator[EnergyManager]:
    config = EnergyConfig(site_limit_a=40.0, min_current_a=6.0, refresh_s=REFRESH_S)
    mgr = EnergyManager(ports, config, clock)
    await mgr.start()
    await settled(lambda: all(last_limit(p) == 0.0 for p in ports.values()), "initial zeros")
    yield mgr
    await mgr.stop()


async def charge(port: FakePort) -> None:
    await port.authorize("TAG")
    port.plug_in()
    port.ev_ready()


async def test_idle_ports_get_zero_and_sessions_share_fairly(
    manager: EnergyManager, ports: dict[int, FlakyPort]
) -> None:
    """Authorization makes a port active; the budget is split evenly among active ports."""
    await charge(ports[1])
    await settled(lambda: last_limit(ports[1]) == 32.0, "port 1 gets its max")
    await charge(ports[2])
    await settled(lambda: last_limit(ports[1]) == 20.0 and last_limit(ports[2]) == 20.0, "20/20")
    assert last_limit(ports[3]) == 0.0
    assert manager.allocation() == {1: 20.0, 2: 20.0, 3: 0.0}
    # The limit outlives a few refresh periods so a dead main lets it expire on the port.
    assert ("set_limit", (20.0, 3, 3 * REFRESH_S)) in ports[1].calls


async def test_latest_session_pauses_below_6a_iec61851(
    manager: EnergyManager, ports: dict[int, FlakyPort]
) -> None:
    """IEC 61851-1: under 6 A a port pauses; the most recent session is the one that pauses."""
    manager.set_profile_limit(0, 15.0)  # OCPP ChargePointMaxProfile on connector 0
    for cid in (2, 1, 3):
        await charge(ports[cid])
        await settled(lambda cid=cid: manager.snapshot().active.count(cid) == 1, f"{cid} active")  # type: ignore[misc]
    await settled(lambda: manager.allocation() == {1: 7.5, 2: 7.5, 3: 0.0}, "3 pauses")
    await settled(lambda: last_limit(ports[3]) == 0.0 and last_limit(ports[1]) == 7.5, "pushed")
    assert manager.snapshot().paused == (3,)
    ports[2].unplug()  # the first session leaves: the paused port resumes
    await settled(lambda: last_limit(ports[3]) == 7.5 and last_limit(ports[1]) == 7.5, "resume")


async def test_profile_limits_ocpp_smart_charging(
    manager: EnergyManager, ports: dict[int, FlakyPort]
) -> None:
    """OCPP 1.6 §3.13: a per-connector TxProfile caps one port, the others get the surplus."""
    await charge(ports[1])
    await charge(ports[2])
    await settled(lambda: manager.allocation()[2] == 20.0, "20/20")
    manager.set_profile_limit(2, 8.0)
    await settled(lambda: last_limit(ports[2]) == 8.0 and last_limit(ports[1]) == 32.0, "8/32")
    manager.set_profile_limit(2, None)
    await settled(lambda: last_limit(ports[2]) == 20.0, "cleared")
    with pytest.raises(ValueError):
        manager.set_profile_limit(9, 10.0)
    with pytest.raises(ValueError):
        manager.set_profile_limit(1, -1.0)


async def test_mains_reading_lowers_allocations(
    manager: EnergyManager, ports: dict[int, FlakyPort]
) -> None:
    """Building load on the busiest phase (minus our own draw) comes off the site limit."""
    await charge(ports[1])
    await charge(ports[2])
    await settled(lambda: last_limit(ports[1]) == 20.0, "20/20")
    for cid in (1, 2):
        ports[cid].emit(MeterValue(energy_wh=0.0, power_w=0.0, current_a=(10.0, 10.0, 10.0)))
    manager.set_mains_reading((44.0, 30.0, 20.0))  # others: 24 A on L1 -> 16 A left
    await settled(lambda: last_limit(ports[1]) == 8.0 and last_limit(ports[2]) == 8.0, "8/8")
    assert manager.snapshot().available_a == pytest.approx(16.0)
    with pytest.raises(ValueError):
        manager.set_mains_reading((1.0, float("nan"), 2.0))


async def test_reductions_reach_ports_before_increases(
    manager: EnergyManager, ports: dict[int, FlakyPort]
) -> None:
    """Never oversubscribe in between: the port that loses current is told first."""
    await charge(ports[2])
    await settled(lambda: last_limit(ports[2]) == 32.0, "32")
    LOG.clear()
    await charge(ports[1])  # connector 1 would be pushed first if order were by id
    await settled(lambda: last_limit(ports[1]) == 20.0, "20/20")
    assert LOG.index((2, 20.0)) < LOG.index((1, 20.0))


async def test_unavailable_port_is_retried_on_refresh(
    manager: EnergyManager, ports: dict[int, FlakyPort], clock: ManualClock
) -> None:
    """A failing set_limit is logged, never fatal, and retried by the next refresh."""
    ports[2].unavailable = True
    await charge(ports[1])
    await charge(ports[2])
    await settled(lambda: ("set_limit_failed", (20.0,)) in ports[2].calls, "attempted")
    await settled(lambda: last_limit(ports[1]) == 20.0, "others unaffected")
    ports[2].unavailable = False
    clock.advance(REFRESH_S)
    await settled(lambda: last_limit(ports[2]) == 20.0, "retried")


async def test_refresh_resends_every_limit(
    manager: EnergyManager, ports: dict[int, FlakyPort], clock: ManualClock
) -> None:
    await charge(ports[1])
    await settled(lambda: last_limit(ports[1]) == 32.0, "32")
    before = {cid: len(limits(p)) for cid, p in ports.items()}
    clock.advance(REFRESH_S)
    await settled(lambda: all(len(limits(p)) > before[c] for c, p in ports.items()), "refresh")


async def test_link_loss_keeps_last_limit_reserved_until_it_expires(
    manager: EnergyManager, ports: dict[int, FlakyPort], clock: ManualClock
) -> None:
    """A satellite without its main keeps charging at its last limit until valid_for ends."""
    await charge(ports[1])
    await charge(ports[2])
    await settled(lambda: last_limit(ports[1]) == 20.0 and last_limit(ports[2]) == 20.0, "20/20")
    ports[2].emit(LinkChanged(connected=False))
    await settled(lambda: manager.snapshot().reserved == {2: 20.0}, "reserved")
    assert last_limit(ports[1]) == 20.0  # not handed out while port 2 may still draw it
    clock.advance(3 * REFRESH_S)
    await settled(lambda: last_limit(ports[1]) == 32.0, "expired: port 1 gets it")
    ports[2].emit(LinkChanged(connected=True, boot_id="b2"))
    await settled(lambda: last_limit(ports[2]) == 20.0 and last_limit(ports[1]) == 20.0, "back")


async def test_listener_sees_snapshots_and_stop_reaps_tasks(
    ports: dict[int, FlakyPort], clock: ManualClock
) -> None:
    mgr = EnergyManager(ports, EnergyConfig(site_limit_a=40.0), clock)
    seen: list[EnergySnapshot] = []
    mgr.add_listener(seen.append)
    before = len(asyncio.all_tasks())
    await mgr.start()
    await charge(ports[3])
    await settled(lambda: bool(seen) and seen[-1].allocation.get(3) == 32.0, "snapshot")
    assert seen[-1].to_json()["allocation"]["3"] == 32.0
    await mgr.stop()
    assert len(asyncio.all_tasks()) == before


async def test_a_failing_set_limit_is_logged_once_per_change_not_every_refresh(
    manager: EnergyManager,
    ports: dict[int, FlakyPort],
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each refresh retries, but the log says it once, with the reason, and once when it heals."""
    caplog.set_level(logging.INFO, logger="main_node.energy")
    ports[2].unavailable = True
    await charge(ports[1])
    await charge(ports[2])
    for _ in range(3):
        attempts = len([c for c in ports[2].calls if c[0] == "set_limit_failed"])
        clock.advance(REFRESH_S)
        await settled(
            lambda n=attempts: len([c for c in ports[2].calls if c[0] == "set_limit_failed"]) > n,
            "a retry",
        )
    failures = [r.getMessage() for r in caplog.records if "connector 2 failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].endswith("failed: link down"), failures
    ports[2].unavailable = False
    clock.advance(REFRESH_S)
    await settled(lambda: last_limit(ports[2]) == 20.0, "retried")
    assert any("limits reach connector 2 again" in r.getMessage() for r in caplog.records)
