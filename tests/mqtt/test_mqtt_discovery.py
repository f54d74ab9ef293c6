"""Home Assistant MQTT discovery and the richer meter topic, against a real mosquitto.

Home Assistant itself is not here; what it would do is: read each retained
`homeassistant/<component>/<object_id>/config`, subscribe to its state and availability topics,
render the value templates on the payloads, and publish to the command topics. The templates the
station emits use four Jinja shapes; `render` evaluates exactly those (and fails on any other),
so every template is checked against the payloads the station really publishes."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mqtt_harness import Broker, Probe

from chargeport.clock import ManualClock
from chargeport.config import EnergyConfig
from chargeport.fake_port import FakePort
from chargeport.port import LinkChanged, MeterValue, PortInfo
from main_node.energy import EnergyManager
from main_node.mqtt_api import MqttApi, Topics, discovery_configs

pytestmark = pytest.mark.integration

PREFIX, STATION = "cp", "st-1"
BASE = f"{PREFIX}/{STATION}"
SENSORS = [
    "state", "power", "energy", "session_energy", "frequency", "temperature",
    "current_l1", "voltage_l1", "current_l2", "voltage_l2", "current_l3", "voltage_l3",
]  # fmt: skip
VALUE = "{{ value }}"  # what Home Assistant replaces in a number's command_template
COMMANDS = [("switch", "enabled"), ("switch", "charging"), ("number", "limit")]


def render(template: str, value: Any) -> str:
    """Evaluate the template shapes the station uses, as Home Assistant's Jinja would."""
    if m := re.fullmatch(r"\{\{ value_json\.(\w+) \}\}", template):
        return str(value[m[1]])
    if m := re.fullmatch(r"\{\{ \(value_json\.(\w+) \+ \[0, 0, 0\]\)\[(\d)\] \}\}", template):
        return str([*value[m[1]], 0, 0, 0][int(m[2])])
    if m := re.fullmatch(r"\{\{ '(\w+)' if value_json\.(\w+) else '(\w+)' \}\}", template):
        return m[1] if value[m[2]] else m[3]
    raise AssertionError(f"a template outside the tested shapes: {template}")


# ------------------------------------------------------------------ pure


@pytest.mark.parametrize("commands", [False, True])
def test_discovery_documents_per_gun(commands: bool) -> None:
    infos = {c: PortInfo(c, f"SN{c}", "1.2.3", 32.0, 3, remote=c > 1) for c in (1, 2)}
    docs = discovery_configs(Topics(PREFIX, "st 1/x"), infos, commands=commands)
    by_topic = dict(docs)
    assert len(by_topic) == len(docs)  # one document per entity
    for c in (1, 2):
        for what in SENSORS:
            body = by_topic[f"homeassistant/sensor/st_1_x_{c}_{what}/config"]
            assert body is not None
            assert body["unique_id"] == f"chargeport_st_1_x_{c}_{what}"
            assert body["device"]["identifiers"] == [f"chargeport_st_1_x_{c}"]
            assert body["device"]["sw_version"] == "1.2.3"
            assert body["device"]["model"] and body["device"]["name"] == f"st 1/x gun {c}"
            assert body["availability"][0]["topic"] == f"{PREFIX}/st 1/x/status"
            assert body["availability_mode"] == "all"
        for component, what in COMMANDS:
            body = by_topic[f"homeassistant/{component}/st_1_x_{c}_{what}/config"]
            # Without commands the entity is removed (empty retained config), not just absent.
            assert (body is not None) is commands
    units = {
        by_topic[f"homeassistant/sensor/st_1_x_1_{w}/config"]["unit_of_measurement"]  # type: ignore[index]
        for w in ("power", "energy", "current_l2", "voltage_l3", "frequency")
    }
    assert units == {"W", "Wh", "A", "V", "Hz"}


# ------------------------------------------------------------------ broker


@pytest.fixture
def ports() -> dict[int, FakePort]:
    return {c: FakePort(PortInfo(c, f"SN{c}", "1.0", 32.0, 3, remote=c == 2)) for c in (1, 2)}


@pytest.fixture
async def energy(ports: dict[int, FakePort]) -> AsyncIterator[EnergyManager]:
    mgr = EnergyManager(ports, EnergyConfig(site_limit_a=40.0), ManualClock())
    await mgr.start()
    yield mgr
    await mgr.stop()


def configs(probe: Probe) -> dict[str, Any]:
    """The latest discovery document per config topic ('' = removed)."""
    out: dict[str, Any] = {}
    for topic, payload, _ in probe.messages:
        if topic.startswith("homeassistant/"):
            out[topic] = json.loads(payload) if payload else None
    return out


def latest(probe: Probe, topic: str) -> Any:
    values = probe.json(topic)
    assert values, f"nothing on {topic}"
    return values[-1]


async def test_home_assistant_entities_follow_the_station(
    broker: Broker, ports: dict[int, FakePort], energy: EnergyManager
) -> None:
    api = MqttApi(broker.host, broker.port, PREFIX, STATION, ports, energy, commands=True)
    await api.start()
    probe = Probe(broker, asyncio.get_running_loop())
    probe.client.loop_start()
    try:
        await probe.connected()
        expected = [
            f"homeassistant/sensor/st-1_{c}_{what}/config" for c in (1, 2) for what in SENSORS
        ]
        expected += [
            f"homeassistant/{k}/st-1_{c}_{what}/config" for c in (1, 2) for k, what in COMMANDS
        ]
        for topic in expected:
            await probe.wait_for(topic)
        await probe.wait_for(f"{BASE}/connector/2/state")
        ports[2].emit(LinkChanged(True, "boot-2", "2.0"))  # the satellite is linked, new fw
        volts = (230.5, 231.0, 229.5)
        ports[1].emit(MeterValue(4321.0, 6900.0, volts, (10.0, 10.1, 9.9), 49.98, 31.5))
        await probe.wait_for(f"{BASE}/connector/1/meter", lambda m: m["energy_wh"] == 4321.0)
        await probe.wait_for(f"{BASE}/connector/2/state", lambda s: s["link_up"])

        await probe.wait_for(
            "homeassistant/sensor/st-1_2_power/config", lambda d: d["device"]["sw_version"] == "2.0"
        )
        docs = configs(probe)
        assert set(docs) == set(expected)
        assert docs["homeassistant/sensor/st-1_1_power/config"]["device"]["sw_version"] == "1.0"
        assert len({d["unique_id"] for d in docs.values()}) == len(expected)
        rendered: dict[str, str] = {}
        for topic, doc in docs.items():
            for where in doc["availability"]:
                gun_state = doc["state_topic"].replace("/meter", "/state")
                assert where["topic"] in (api.topics.status, gun_state)
                if "value_template" in where:
                    value = latest(probe, where["topic"])
                    assert render(where["value_template"], value) == "online", topic
            state = latest(probe, doc["state_topic"])
            rendered[doc["object_id"]] = render(doc["value_template"], state)
        assert rendered["st-1_1_power"] == "6900.0"
        assert rendered["st-1_1_energy"] == "4321.0"
        assert (rendered["st-1_1_voltage_l1"], rendered["st-1_1_voltage_l3"]) == ("230.5", "229.5")
        assert rendered["st-1_1_current_l2"] == "10.1"
        assert rendered["st-1_1_frequency"] == "49.98"
        assert rendered["st-1_2_current_l1"] == "0"  # nothing measured yet: padded, not an error
        assert rendered["st-1_1_enabled"] == "ON" and rendered["st-1_1_charging"] == "ON"
        float(rendered["st-1_1_limit"])

        # The switch: OFF disables the gun, acknowledged; the state template follows.
        switch = docs["homeassistant/switch/st-1_1_enabled/config"]
        mark = len(probe.messages)
        probe.publish(switch["command_topic"], switch["payload_off"])
        ack = await probe.wait_for(f"{BASE}/ack", start=mark)
        assert ack == {"topic": switch["command_topic"], "result": "accepted", "reason": ""}
        state = await probe.wait_for(switch["state_topic"], lambda s: not s["enabled"], mark)
        assert render(switch["value_template"], state) == "OFF"
        assert ("disable", ()) in ports[1].calls
        # The number: Home Assistant renders the command template with the value.
        number = docs["homeassistant/number/st-1_1_limit/config"]
        mark = len(probe.messages)
        probe.publish(number["command_topic"], number["command_template"].replace(VALUE, "10"))
        assert (await probe.wait_for(f"{BASE}/ack", start=mark))["result"] == "accepted"
        await probe.wait_for(number["state_topic"], lambda s: s["operator_limit_a"] == 10, mark)
        mark = len(probe.messages)
        probe.publish(number["command_topic"], number["command_template"].replace(VALUE, "3"))
        refused = await probe.wait_for(f"{BASE}/ack", start=mark)
        assert refused["result"] == "refused" and "amps must be" in refused["reason"]
    finally:
        await api.stop()
        probe.client.disconnect()
        await asyncio.to_thread(probe.client.loop_stop)


async def test_without_commands_the_command_entities_are_removed(
    broker: Broker, ports: dict[int, FakePort], probe: Probe
) -> None:
    api = MqttApi(broker.host, broker.port, PREFIX, STATION, ports, None, commands=False)
    await api.start()
    try:
        # The station publishes discovery before the guns' state, in order (one client, QoS 1);
        # an empty payload (the removal) is not JSON, so wait for what follows it.
        await probe.wait_for(f"{BASE}/connector/2/state")
        docs = configs(probe)
        for c in (1, 2):
            for component, what in COMMANDS:
                assert docs[f"homeassistant/{component}/st-1_{c}_{what}/config"] is None
            assert docs[f"homeassistant/sensor/st-1_{c}_power/config"] is not None
    finally:
        await api.stop()


STATION_PROC = textwrap.dedent(
    """
    import asyncio, sys
    from chargeport.fake_port import FakePort
    from chargeport.port import PortInfo
    from main_node.mqtt_api import MqttApi

    async def main():
        ports = {1: FakePort(PortInfo(1, "SN1", "1.0", 32.0, 3))}
        api = MqttApi("127.0.0.1", int(sys.argv[1]), "cp", "will", ports, None, keepalive_s=5)
        await api.start()
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


async def test_availability_is_the_last_will_when_the_station_dies(
    broker: Broker, probe: Probe
) -> None:
    """SIGKILL: no goodbye from the station; the broker publishes its will on its behalf."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", STATION_PROC, str(broker.port)
    )
    try:
        doc = await probe.wait_for("homeassistant/sensor/will_1_power/config")
        status_topic = doc["availability"][0]["topic"]
        assert status_topic == "cp/will/status"
        online = doc["availability"][0]["payload_available"].encode()
        offline = doc["availability"][0]["payload_not_available"].encode()
        await probe.wait_for(status_topic, lambda v: v == online)
        mark = len(probe.messages)
        proc.send_signal(signal.SIGKILL)
        await probe.wait_for(status_topic, lambda v: v == offline, start=mark)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
