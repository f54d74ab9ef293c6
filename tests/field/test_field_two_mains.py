"""Two mains with one config and one satellite: the satellite serves the first, refuses the
second naming the holder, tells the holder; both mains log an ERROR naming the other and the
second stops after a bounded number of refusals (before: the link flapped for ever)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from chargeport.fake_port import FakePort
from chargeport.port import PortInfo
from main_node.locator import StaticLocator
from main_node.remote_port import RemotePort
from satellite.host import AgentHost
from satellite.link_core import SatelliteCore, TellHolder

pytestmark = pytest.mark.integration


def main(port: int, boot: str) -> RemotePort:
    return RemotePort(
        "SAT-1",
        2,
        StaticLocator({"SAT-1": ("127.0.0.1", port)}),
        station_id="CP-1",
        main_boot_id=boot,
        credentials=None,
        retry_max_s=0.05,
        refused_retry_s=0.05,
        max_held_refusals=3,
        handshake_timeout_s=2.0,
    )


async def test_second_main_is_refused_and_gives_up_first_keeps_the_satellite(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    host = AgentHost(FakePort(PortInfo(1, "SAT-1", "1.0.0", 32.0, 3)), serial="SAT-1", pki_dir=None)
    port = await host.start()
    first, second = main(port, "first-boot"), main(port, "second-boot")
    try:
        await first.start()
        async with asyncio.timeout(10):
            await first.wait_connected()
        await second.start()
        async with asyncio.timeout(10):
            assert second._task is not None
            await second._task  # it gives up by itself: the manager returns
        assert first.connected and first.handshakes == 1  # never taken away
        assert not second.connected and second.handshakes == 0
        assert "is driven by main CP-1 (boot first-bo) at 127.0.0.1:" in second.last_error
        async with asyncio.timeout(10):
            while not any("another main" in r.getMessage() for r in caplog.records):
                await asyncio.sleep(0.02)
    finally:
        await second.stop()
        await first.stop()
        await host.stop()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    by_first = [r.getMessage() for r in errors if r.getMessage().startswith("another main")]
    assert len(by_first) == 1, by_first
    assert by_first[0].startswith("another main (station CP-1, boot second-b) at 127.0.0.1:")
    by_second = [r.getMessage() for r in errors if r.getMessage().startswith("satellite SAT-1 is")]
    assert len(by_second) == 1, by_second
    assert any("this main stops trying" in r.getMessage() for r in errors)
    by_satellite = [r for r in errors if r.name == "satellite.agent"]
    assert len(by_satellite) == 1  # once per intruding main, not at every refusal
    assert by_satellite[0].getMessage().startswith("main CP-1 (boot second-b) at 127.0.0.1:")


def core(now: float = 0.0) -> SatelliteCore:
    c = SatelliteCore(serial="S", connector=1, protocol_version=1, session_ids=lambda: "s1")
    c.hello(station_id="A", main_boot_id="a", protocol_version=1, liveness_s=2.0, now=now)
    return c


def test_a_live_main_holds_the_satellite() -> None:
    c = core()
    c.open_events("s1", now=0.0)
    out = c.hello(
        station_id="B", main_boot_id="b", protocol_version=1, liveness_s=2.0, now=1.0,
        address="10.0.0.2:4000",
    )  # fmt: skip
    assert out.held and out.refusal is not None and "driven by main A" in out.refusal
    assert out.effects == (TellHolder("B", "b", "10.0.0.2:4000"),)
    assert c.main_boot_id == "a"  # the holder keeps its session


@pytest.mark.parametrize(
    ("why", "streams", "later_s"),
    [
        ("the holder's streams closed (it was killed): a restarted main takes over", False, 1.0),
        ("the holder fell silent past liveness (hung): the new main takes over", True, 2.5),
    ],
)
def test_a_gone_main_does_not_hold_the_satellite(why: str, streams: bool, later_s: float) -> None:
    c = core()
    if streams:
        c.open_events("s1", now=0.0)
    out = c.hello(station_id="A", main_boot_id="b", protocol_version=1, liveness_s=2.0, now=later_s)
    assert out.refusal is None and not out.held, why
    assert c.main_boot_id == "b"
