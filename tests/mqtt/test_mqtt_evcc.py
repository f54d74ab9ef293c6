"""The evcc MQTT template in docs/evcc.md, checked against a station on a real mosquitto.

evcc is not here. The test reads the documented YAML block, then does what evcc's mqtt plugin
does with it: subscribe to each `topic` and apply its `jq`, and publish each setter's `payload`
with `${enable}` / `${maxcurrent}` filled in. Only the jq forms the template uses are evaluated
(`.a`, `.a / N`, `.a[i] // D`); any other form fails the test, so the doc cannot drift."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mqtt_harness import Broker, Probe

from chargeport.clock import ManualClock
from chargeport.config import EnergyConfig
from chargeport.fake_port import FakePort
from chargeport.port import MeterValue, PortInfo
from main_node.energy import EnergyManager
from main_node.mqtt_api import MqttApi

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[2] / "docs" / "evcc.md"
STATION = "CP-1"  # the station id the documented template uses


def documented_template() -> dict[str, Any]:
    text = DOC.read_text()
    marker = text.index("<!-- evcc-mqtt-template")
    block = text[marker:].split("```yaml\n", 1)[1].split("```", 1)[0]
    return parse_yaml(block)


def parse_yaml(text: str) -> Any:
    """The YAML subset of the doc: nested mappings, lists of mappings, scalars, comments."""
    lines = [ln for raw in text.splitlines() if (ln := re.sub(r"\s+#.*$", "", raw)).strip()]
    pos = 0

    def indent(line: str) -> int:
        return len(line) - len(line.lstrip())

    def block(level: int) -> Any:
        nonlocal pos
        if lines[pos].lstrip().startswith("- "):
            items = []
            while pos < len(lines) and indent(lines[pos]) == level:
                assert lines[pos].lstrip().startswith("- "), lines[pos]
                lines[pos] = " " * (level + 2) + lines[pos].lstrip()[2:]
                items.append(block(level + 2))
            return items
        mapping: dict[str, Any] = {}
        while pos < len(lines) and indent(lines[pos]) == level:
            line = lines[pos]
            if line.lstrip().startswith("- "):
                break
            key, _, value = line.strip().partition(":")
            pos += 1
            value = value.strip()
            if value:
                mapping[key] = value[1:-1] if value[:1] == value[-1:] == "'" else value
            else:
                mapping[key] = block(indent(lines[pos]))
        return mapping

    return block(0)


def jq(expression: str, value: Any) -> Any:
    """The jq forms the template uses, evaluated as jq would."""
    if m := re.fullmatch(r"\.(\w+)", expression):
        return value[m[1]]
    if m := re.fullmatch(r"\.(\w+) / (\d+)", expression):
        return value[m[1]] / int(m[2])
    if m := re.fullmatch(r"\.(\w+)\[(\d+)\] // (\d+)", expression):
        items = value[m[1]]
        item = items[int(m[2])] if int(m[2]) < len(items) else None
        return item if item is not None else int(m[3])
    raise AssertionError(f"a jq form outside the tested subset: {expression}")


@pytest.fixture
def ports() -> dict[int, FakePort]:
    return {c: FakePort(PortInfo(c, f"SN{c}", "1.0", 32.0, 3)) for c in (1, 2)}


@pytest.fixture
async def station(broker: Broker, ports: dict[int, FakePort]) -> AsyncIterator[EnergyManager]:
    energy = EnergyManager(ports, EnergyConfig(site_limit_a=40.0), ManualClock())
    await energy.start()
    api = MqttApi(broker.host, broker.port, "chargeport", STATION, ports, energy, commands=True)
    await api.start()
    yield energy
    await api.stop()
    await energy.stop()


async def read(probe: Probe, getter: dict[str, Any]) -> Any:
    """The getter's value now: jq over the latest (retained) message on its topic."""
    assert getter["source"] == "mqtt"
    await probe.wait_for(getter["topic"])
    return jq(getter["jq"], probe.json(getter["topic"])[-1])


async def test_documented_evcc_template_reads_and_steers_the_station(
    station: EnergyManager, probe: Probe, ports: dict[int, FakePort]
) -> None:
    template = documented_template()
    (charger,) = template["chargers"]
    (meter,) = template["meters"]
    assert template["loadpoints"][0] == {
        "title": "Gun 1", "charger": charger["name"], "meter": meter["name"],
    }  # fmt: skip
    assert charger["type"] == meter["type"] == "custom"

    # Readings: the EV plugs in and charges; every documented value is there and plausible.
    await ports[1].authorize("TAG")
    ports[1].plug_in()
    ports[1].ev_ready()
    ports[1].emit(MeterValue(12_345.0, 7_000.0, (230.0, 231.0, 232.0), (10.0, 10.5, 11.0), 50.0))
    await probe.wait_for(meter["power"]["topic"], lambda m: m["power_w"] == 7000.0)
    status = charger["status"]
    await probe.wait_for(status["topic"], lambda s: jq(status["jq"], s) == "C")  # evcc: charging
    assert await read(probe, charger["enabled"]) is True
    assert await read(probe, meter["energy"]) == pytest.approx(12.345)  # kWh
    assert [await read(probe, g) for g in meter["currents"]] == [10.0, 10.5, 11.0]
    assert [await read(probe, g) for g in meter["voltages"]] == [230.0, 231.0, 232.0]

    # maxcurrent: evcc publishes the payload with ${maxcurrent} filled in.
    setter = charger["maxcurrent"]
    mark = len(probe.messages)
    probe.publish(setter["topic"], setter["payload"].replace("${maxcurrent}", "16"))
    ack = await probe.wait_for(f"chargeport/{STATION}/ack", start=mark)
    assert ack == {"topic": setter["topic"], "result": "accepted", "reason": ""}
    await probe.wait_for(f"chargeport/{STATION}/energy", lambda e: e["allocation"]["1"] == 16.0)

    # enable false: paused (0 A) with the transaction kept; enabled reads false.
    enable = charger["enable"]
    mark = len(probe.messages)
    probe.publish(enable["topic"], enable["payload"].replace("${enable}", "false"))
    assert (await probe.wait_for(f"chargeport/{STATION}/ack", start=mark))["result"] == "accepted"
    await probe.wait_for(f"chargeport/{STATION}/energy", lambda e: e["allocation"]["1"] == 0.0)
    state = await probe.wait_for(charger["enabled"]["topic"], lambda s: not s["charging_allowed"])
    assert jq(charger["enabled"]["jq"], state) is False
    assert state["enabled"] is True  # the gun is still in service: only charging paused
    assert ("disable", ()) not in ports[1].calls
    # enable true: back to the last maxcurrent.
    mark = len(probe.messages)
    probe.publish(enable["topic"], enable["payload"].replace("${enable}", "true"))
    await probe.wait_for(f"chargeport/{STATION}/energy", lambda e: e["allocation"]["1"] == 16.0)
    state = await probe.wait_for(charger["enabled"]["topic"], lambda s: s["charging_allowed"], mark)
    assert jq(charger["enabled"]["jq"], state) is True


def test_the_parser_reads_the_documented_block() -> None:
    """Guards the parser itself on a block with every shape the doc uses."""
    parsed = parse_yaml("a:\n  - b: 1   # note\n    c:\n      d: '{\"x\": 2}'\n  - b: 3\ne: f\n")
    assert parsed == {"a": [{"b": "1", "c": {"d": '{"x": 2}'}}, {"b": "3"}], "e": "f"}
