"""MqttApi against a real mosquitto on loopback: retained state, commands, errors, reconnect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from mqtt_harness import Broker, Probe

from chargeport.clock import ManualClock
from chargeport.config import EnergyConfig
from chargeport.fake_port import FakePort
from chargeport.port import MeterValue, PortInfo
from main_node.energy import EnergyManager
from main_node.mqtt_api import MqttApi

pytestmark = pytest.mark.integration

PREFIX, STATION = "cp", "st1"
BASE = f"{PREFIX}/{STATION}"


@pytest.fixture
def ports() -> dict[int, FakePort]:
    return {
        cid: FakePort(PortInfo(cid, f"SN{cid}", "1.0", 32.0, 3, remote=cid > 1))
        for cid in (1, 2, 3)
    }


@pytest.fixture
async def energy(ports: dict[int, FakePort]) -> AsyncIterator[EnergyManager]:
    mgr = EnergyManager(ports, EnergyConfig(site_limit_a=40.0), ManualClock())
    await mgr.start()
    yield mgr
    await mgr.stop()


@pytest.fixture
async def api(
    broker: Broker, ports: dict[int, FakePort], energy: EnergyManager
) -> AsyncIterator[MqttApi]:
    mqtt_api = MqttApi(
        broker.host, broker.port, PREFIX, STATION, ports, energy, commands=True, mains=True
    )
    await mqtt_api.start()
    yield mqtt_api
    await mqtt_api.stop()


async def charge(port: FakePort) -> None:
    await port.authorize("TAG")
    port.plug_in()
    port.ev_ready()


async def test_retained_state_for_every_connector(
    api: MqttApi, broker: Broker, ports: dict[int, FakePort]
) -> None:
    """A client that subscribes later still gets state, meter, energy and status (retained)."""
    first = Probe(broker, asyncio.get_running_loop())
    first.client.loop_start()
    try:
        await first.connected()
        await first.wait_for(f"{BASE}/status", lambda v: v == b"online")
        for cid in ports:
            await first.wait_for(f"{BASE}/connector/{cid}/state")
    finally:
        first.client.disconnect()
        await asyncio.to_thread(first.client.loop_stop)
    late = Probe(broker, asyncio.get_running_loop())
    late.client.loop_start()
    try:
        await late.connected()
        for cid in ports:
            state = await late.wait_for(f"{BASE}/connector/{cid}/state")
            assert state["connector"] == cid and state["enabled"] is True
            assert "energy_wh" not in state
            meter = await late.wait_for(f"{BASE}/connector/{cid}/meter")
            assert "energy_wh" in meter
        await late.wait_for(f"{BASE}/energy", lambda v: "allocation" in v)
        assert all(retain for topic, _, retain in late.messages if topic.startswith(BASE))
    finally:
        late.client.disconnect()
        await asyncio.to_thread(late.client.loop_stop)


async def test_events_update_state_and_meter(
    api: MqttApi, probe: Probe, ports: dict[int, FakePort]
) -> None:
    await probe.wait_for(f"{BASE}/connector/2/state")
    await charge(ports[2])
    await probe.wait_for(f"{BASE}/connector/2/state", lambda s: s["state"] == "Charging")
    ports[2].emit(MeterValue(energy_wh=1234.0, power_w=7000.0, current_a=(10.0, 10.0, 10.0)))
    meter = await probe.wait_for(f"{BASE}/connector/2/meter", lambda m: m["energy_wh"] == 1234.0)
    assert meter["power_w"] == 7000.0
    await probe.wait_for(f"{BASE}/energy", lambda e: e["allocation"]["2"] == 32.0)


async def test_commands_reach_the_port(
    api: MqttApi, probe: Probe, ports: dict[int, FakePort]
) -> None:
    await probe.wait_for(f"{BASE}/connector/3/state")
    probe.publish(f"{BASE}/connector/3/cmd/disable", b"")
    await probe.wait_for(f"{BASE}/connector/3/state", lambda s: s["enabled"] is False)
    assert ("disable", ()) in ports[3].calls
    probe.publish(f"{BASE}/connector/3/cmd/enable", b"")
    await probe.wait_for(f"{BASE}/connector/3/state", lambda s: s["enabled"] is True)
    # With an energy manager, a limit is an operator cap on that connector's share.
    await charge(ports[1])
    await probe.wait_for(f"{BASE}/energy", lambda e: e["allocation"]["1"] == 32.0)
    probe.publish(f"{BASE}/connector/1/cmd/limit", '{"amps": 10, "phases": 3}')
    await probe.wait_for(f"{BASE}/connector/1/state", lambda s: s["limit_a"] == 10.0)
    assert ("set_limit", (10.0, 3, 15.0)) in ports[1].calls


async def test_bad_commands_yield_errors_and_the_api_keeps_working(
    api: MqttApi, probe: Probe, ports: dict[int, FakePort]
) -> None:
    await probe.wait_for(f"{BASE}/status", lambda v: v == b"online")
    bad = [
        (f"{BASE}/connector/1/cmd/limit", b"{not json"),
        (f"{BASE}/connector/7/cmd/enable", b""),
        (f"{BASE}/connector/1/cmd/limit", b'{"amps": 99}'),  # above the port's 32 A
        (f"{BASE}/mains", b'{"currents_a": "lots"}'),
    ]
    for topic, payload in bad:
        mark = len(probe.messages)
        probe.publish(topic, payload)
        error = await probe.wait_for(f"{BASE}/error", start=mark)
        assert error["topic"] == topic and error["error"]
    probe.publish(f"{BASE}/connector/2/cmd/disable", b"")
    await probe.wait_for(f"{BASE}/connector/2/state", lambda s: s["enabled"] is False)


async def test_mains_reading_lowers_allocations(
    api: MqttApi, probe: Probe, ports: dict[int, FakePort]
) -> None:
    await charge(ports[1])
    await charge(ports[2])
    await probe.wait_for(f"{BASE}/energy", lambda e: e["allocation"]["1"] == 20.0)
    # Building draws 30 A on L2 besides our (unmetered) ports: 40 - 30 = 10 A -> one port.
    probe.publish(f"{BASE}/mains", '{"currents_a": [5, 30, 12]}')
    energy = await probe.wait_for(f"{BASE}/energy", lambda e: e["available_a"] == 10.0)
    assert energy["allocation"] == {"1": 10.0, "2": 0.0, "3": 0.0}
    assert ("set_limit", (10.0, 3, 15.0)) in ports[1].calls
    assert ports[2].calls[-1][0] == "set_limit" and ports[2].calls[-1][1][0] == 0.0


async def test_reconnects_after_broker_restart(
    api: MqttApi, probe: Probe, broker: Broker, ports: dict[int, FakePort]
) -> None:
    """mosquitto restarts (persistence off: retained state is gone); the API republishes."""
    await probe.wait_for(f"{BASE}/connector/1/state")
    mark = len(probe.messages)  # nothing changes meanwhile: later state comes from republishing
    await asyncio.to_thread(broker.restart)
    for cid in ports:
        await probe.wait_for(f"{BASE}/connector/{cid}/state", start=mark)
    await probe.wait_for(f"{BASE}/status", lambda v: v == b"online", mark)
    probe.publish(f"{BASE}/connector/1/cmd/disable", b"")
    await probe.wait_for(f"{BASE}/connector/1/state", lambda s: s["enabled"] is False, mark)
    assert ("disable", ()) in ports[1].calls


async def test_broker_down_at_start_does_not_block(
    tmp_path_factory: pytest.TempPathFactory, ports: dict[int, FakePort]
) -> None:
    """start() returns while the broker is down; the API connects once it comes up."""
    late_broker = Broker(tmp_path_factory.mktemp("late"))
    mqtt_api = MqttApi(
        late_broker.host, late_broker.port, PREFIX, "late", ports, None, reconnect_max_s=1,
        commands=True, mains=True,
    )  # fmt: skip
    await mqtt_api.start()
    try:
        assert not mqtt_api.connected
        await asyncio.to_thread(late_broker.start)
        probe = Probe(late_broker, asyncio.get_running_loop())
        probe.client.loop_start()
        try:
            await probe.wait_for(f"{PREFIX}/late/status", lambda v: v == b"online")
            # Without an energy manager a limit goes straight to the port.
            probe.publish(f"{PREFIX}/late/connector/2/cmd/limit", '{"amps": 8}')
            await probe.wait_for(f"{PREFIX}/late/connector/2/state", lambda s: s["limit_a"] == 8)
            probe.publish(f"{PREFIX}/late/mains", '{"currents_a": [1, 2, 3]}')
            error = await probe.wait_for(f"{PREFIX}/late/error")
            assert "energy manager" in error["error"]
            await mqtt_api.stop()
            await probe.wait_for(f"{PREFIX}/late/status", lambda v: v == b"offline")
        finally:
            probe.client.disconnect()
            await asyncio.to_thread(probe.client.loop_stop)
    finally:
        await mqtt_api.stop()
        late_broker.stop()
