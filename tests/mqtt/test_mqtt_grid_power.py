"""PV surplus mode fed over MQTT (issue 15): a signed grid power on the mains topic reaches the
energy manager, so the guns share what the site exports; a stale reading means no surplus."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from mqtt_harness import Broker, Probe

from chargeport.clock import ManualClock
from chargeport.config import EnergyConfig
from chargeport.fake_port import FakePort
from chargeport.port import PortInfo
from main_node.energy import EnergyManager
from main_node.mqtt_api import MqttApi

pytestmark = pytest.mark.integration

PREFIX, STATION = "cp", "pv1"
BASE = f"{PREFIX}/{STATION}"


@pytest.fixture
async def pv_station(
    broker: Broker,
) -> AsyncIterator[tuple[dict[int, FakePort], EnergyManager, ManualClock]]:
    ports = {1: FakePort(PortInfo(1, "SN1", "1.0", 32.0, 3))}
    clock = ManualClock()
    config = EnergyConfig(site_limit_a=40.0, pv_surplus=True, pv_margin_w=0.0, min_pause_s=0.0)
    energy = EnergyManager(ports, config, clock)
    await energy.start()
    api = MqttApi(broker.host, broker.port, PREFIX, STATION, ports, energy, mains=True)
    await api.start()
    yield ports, energy, clock
    await api.stop()
    await energy.stop()


async def test_exported_power_becomes_charging_current(
    pv_station: tuple[dict[int, FakePort], EnergyManager, ManualClock], probe: Probe
) -> None:
    ports, energy, clock = pv_station
    port = ports[1]
    await port.authorize("TAG")
    port.plug_in()
    port.ev_ready()
    await probe.wait_for(f"{BASE}/status", lambda v: v == b"online")
    # The site exports 9.66 kW: 14 A on three phases at 230 V (PV surplus, nothing imported).
    probe.publish(f"{BASE}/mains", '{"grid_power_w": -9660}')
    ack = await probe.wait_for(f"{BASE}/ack", lambda a: a["topic"] == f"{BASE}/mains")
    assert ack["result"] == "accepted", ack
    # A paused gun resumes once the budget has held (hysteresis): a second later, same export.
    clock.advance(1.0)
    probe.publish(f"{BASE}/mains", '{"grid_power_w": -9660}')
    allocation = await probe.wait_for(f"{BASE}/energy", lambda e: e["allocation"]["1"] > 0)
    assert 10.0 <= allocation["allocation"]["1"] <= 16.0, allocation
    assert energy.snapshot().allocation[1] == allocation["allocation"]["1"]
