"""Per-port recovery: resume after a blip, satellite restarts (in process and kill -9),
other ports untouched, and a main with 8 satellites on loopback."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from linkkit import Link, TcpProxy, fake_port, next_event, spawn_satellite, tell, wait_until

from chargeport.config import LinkConfig, MainConfig, SatelliteEntry, StationConfig
from chargeport.fake_port import FakePort
from chargeport.port import (
    LinkChanged,
    MeterValue,
    PortDisabledChanged,
    PortEvent,
    PortInfo,
    PortUnavailable,
    SessionEvent,
    SessionEventType,
    StopReason,
)
from main_node.locator import StaticLocator
from main_node.station import Station

HERE = Path(__file__).parent


async def drain(sub: Any, n: int) -> list[PortEvent]:
    out: list[PortEvent] = []
    async with asyncio.timeout(5.0):
        while len(out) < n:
            out.append(await anext(sub))
    return out


def is_session(kind: SessionEventType) -> Callable[[object], bool]:
    return lambda b: isinstance(b, SessionEvent) and b.type is kind


async def test_blip_resumes_from_the_last_seq_nothing_lost_nothing_duplicated(
    link: Link, proxy_factory: Callable[[tuple[str, int]], Awaitable[TcpProxy]]
) -> None:
    fake = fake_port()
    host = await link.satellite(fake)
    proxy = await proxy_factory(host.address)
    rp = await link.remote(address=("127.0.0.1", proxy.port), connect=False)
    sub = rp.events()
    await wait_until(lambda: rp.connected)
    await rp.authorize("TAG1")
    fake.plug_in()
    for wh in range(5):
        fake.meter(float(wh))
    await wait_until(lambda: rp.last_seq == host.agent.last_seq)
    proxy.paused = True  # the network is gone ...
    proxy.cut()
    await wait_until(lambda: not rp.connected)
    with pytest.raises(PortUnavailable):
        await rp.pause()
    for wh in range(5, 10):  # ... while the satellite keeps producing events
        fake.meter(float(wh))
    fake.ev_ready()
    proxy.paused = False
    await wait_until(lambda: rp.connected and rp.last_seq == host.agent.last_seq)
    assert rp.handshakes == 2 and host.agent.main_boot_id == "main-boot-1"
    # The first link-up is a snapshot (this main is new to the board): the port's state, which
    # includes the enable from Ready, then every later event exactly once, across the blip.
    first_up = 0
    while not isinstance((await anext(sub)).body, LinkChanged):
        first_up += 1
    assert fake.history[0].body == PortDisabledChanged(True)
    expected = [e.body for e in fake.history[1:]]
    got = await drain(sub, len(expected) + 2)  # + link down, up
    bodies = [e.body for e in got if not isinstance(e.body, LinkChanged)]
    links = [e.body.connected for e in got if isinstance(e.body, LinkChanged)]
    assert bodies == expected
    assert links == [False, True]
    assert [e.seq for e in got] == list(range(first_up + 2, first_up + 2 + len(got)))


async def test_new_satellite_boot_closes_the_transaction_with_the_last_meter_value(
    link: Link,
) -> None:
    fake1, fake2 = fake_port("SAT-1"), fake_port("SAT-2")
    host1 = await link.satellite(fake1, "SAT-1")
    await link.satellite(fake2, "SAT-2")
    rp1 = await link.remote("SAT-1", connector=2)
    rp2 = await link.remote("SAT-2", connector=3)
    sub1, sub2 = rp1.events(), rp2.events()
    for rp, fake in ((rp1, fake1), (rp2, fake2)):
        await rp.authorize("TAG")
        fake.plug_in()
        fake.ev_ready()
        fake.meter(1234.5, 7000.0)
    await next_event(sub1, lambda b: isinstance(b, MeterValue))
    tx1 = (await rp1.status()).transaction_id
    tx2 = (await rp2.status()).transaction_id
    # The satellite dies ...
    await host1.stop(0)
    await next_event(sub1, lambda b: isinstance(b, LinkChanged) and not b.connected)
    # ... and boots again (new boot id, fresh port) on the same address.
    host_port = host1.port
    fresh = fake_port("SAT-1")
    await link.satellite(fresh, "SAT-1", listen=f"127.0.0.1:{host_port}")
    fin = await next_event(sub1, is_session(SessionEventType.TRANSACTION_FINISHED))
    assert fin.body.transaction is not None  # type: ignore[union-attr]
    assert fin.body.transaction.transaction_id == tx1  # type: ignore[union-attr]
    assert fin.body.transaction.meter_wh == 1234.5  # type: ignore[union-attr]
    assert fin.body.transaction.stop_reason is StopReason.POWER_LOSS  # type: ignore[union-attr]
    await next_event(sub1, is_session(SessionEventType.SESSION_FINISHED))
    up = await next_event(sub1, lambda b: isinstance(b, LinkChanged))
    assert up.body.connected and up.body.boot_id == rp1.boot_id != host1.boot_id  # type: ignore[union-attr]
    assert (await rp1.status()).transaction_id is None
    # The other port never noticed.
    assert rp2.connected and rp2.handshakes == 1
    assert (await rp2.status()).transaction_id == tx2
    assert not [
        e for e in drain_now(sub2) if isinstance(e.body, LinkChanged) and not e.body.connected
    ]


def drain_now(sub: Any) -> list[PortEvent]:
    out = []
    while sub.pending():
        out.append(sub._queue.get_nowait())
    return out


@pytest.mark.integration
async def test_kill_9_satellite_marks_port_unavailable_then_recovers(link: Link) -> None:
    procs: list[subprocess.Popen[str]] = []
    try:
        proc, port = await spawn_satellite(link.pki)
        procs.append(proc)
        rp = await link.remote(address=("127.0.0.1", port), keepalive_s=0.5)
        sub = rp.events()
        await rp.authorize("TAG9")
        await tell(proc, "plug")
        await tell(proc, "ready")
        await tell(proc, "meter 777")
        await next_event(sub, lambda b: isinstance(b, MeterValue))
        proc.kill()  # SIGKILL: no goodbye on the wire
        proc.wait()
        down = await next_event(sub, lambda b: isinstance(b, LinkChanged))
        assert not down.body.connected  # type: ignore[union-attr]
        with pytest.raises(PortUnavailable):
            await rp.status()
        old_boot = rp.boot_id
        proc2, _ = await spawn_satellite(link.pki, "--listen", f"127.0.0.1:{port}")
        procs.append(proc2)
        fin = await next_event(sub, is_session(SessionEventType.TRANSACTION_FINISHED))
        assert fin.body.transaction.meter_wh == 777.0  # type: ignore[union-attr]
        up = await next_event(sub, lambda b: isinstance(b, LinkChanged))
        assert up.body.connected and rp.boot_id != old_boot  # type: ignore[union-attr]
        assert (await rp.status()).enabled
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            for stream in (p.stdin, p.stdout):
                if stream is not None:
                    stream.close()


async def test_station_with_8_satellites_recovers_one_port_alone(link: Link) -> None:
    serials = [f"SAT-{i}" for i in range(1, 9)]
    fakes = {s: fake_port(s) for s in serials}
    for s in serials:
        await link.satellite(fakes[s], s)
    config = MainConfig(
        station=StationConfig(id="st", max_satellites=8, local_connector=1),
        link=LinkConfig(pki_dir=str(link.pki), mdns=False, handshake_timeout_s=2.0),
        satellites=[
            SatelliteEntry(serial=s, connector=i + 2, address="{}:{}".format(*link.addresses[s]))
            for i, s in enumerate(serials)
        ],
    )
    local = FakePort(PortInfo(1, "MAIN", "1.0.0", 32.0, 3))
    locator = StaticLocator(link.addresses)
    station = Station(config, locator, local_port=local, retry_max_s=0.2)
    assert list(station.ports) == list(range(1, 10)) and station.ports[1] is local
    await station.start()
    try:
        await wait_until(lambda: all(h.connected for h in station.link_health().values()), 10)
        for connector in range(2, 10):
            await station.ports[connector].set_limit(10.0 + connector, 3)
        victim = link.hosts[2]  # SAT-3 on connector 4
        await victim.stop(0)
        await wait_until(lambda: not station.link_health()[4].connected)
        health = station.link_health()
        assert [c for c, h in health.items() if not h.connected] == [4]
        assert health[4].serial == "SAT-3" and health[2].firmware_version == "1.0.0"
        with pytest.raises(PortUnavailable):
            await station.ports[4].status()
        for connector in (2, 3, 5, 9):
            assert (
                await station.ports[connector].status()
            ).limits.max_current_a == 10.0 + connector  # type: ignore[union-attr]
        assert all(station.remotes[c].handshakes == 1 for c in (2, 3, 5, 6, 7, 8, 9))
        await link.satellite(fake_port("SAT-3"), "SAT-3", listen=f"127.0.0.1:{victim.port}")
        await wait_until(lambda: station.link_health()[4].connected)
    finally:
        await station.stop()


def test_station_refuses_to_run_without_pki_unless_insecure(tmp_path: Path) -> None:
    from chargeport.pki import PkiError

    sats = [SatelliteEntry(serial="SAT-1", connector=2, address="127.0.0.1:1")]
    secure = MainConfig(link=LinkConfig(pki_dir=str(tmp_path)), satellites=sats)
    with pytest.raises(PkiError, match="pki init"):
        Station(secure, StaticLocator({}))
    insecure = MainConfig(link=LinkConfig(insecure=True, pki_dir=str(tmp_path)), satellites=sats)
    assert Station(insecure, StaticLocator({})).remotes[2]._credentials is None
