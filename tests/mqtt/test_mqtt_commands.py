"""parse_command: every command from the broker is validated before it reaches a port."""

from __future__ import annotations

import pytest

from chargeport.port import PortInfo
from main_node.mqtt_api import (
    CommandRejected,
    Disable,
    Enable,
    Mains,
    MqttApi,
    MqttConfigError,
    SetLimit,
    Topics,
    check_mains,
    parse_command,
)

T = Topics("cp", "st1")
PORTS = {1: PortInfo(1, "A", "1", 32.0, 3), 2: PortInfo(2, "B", "1", 16.0, 1)}


@pytest.mark.parametrize(
    ("topic", "payload", "expected"),
    [
        ("cp/st1/connector/1/cmd/enable", b"", Enable(1)),
        ("cp/st1/connector/2/cmd/disable", b"anything", Disable(2)),
        ("cp/st1/connector/1/cmd/limit", b'{"amps": 16, "phases": 1}', SetLimit(1, 16.0, 1)),
        ("cp/st1/connector/1/cmd/limit", b'{"amps": 10.5}', SetLimit(1, 10.5, 3)),
        # IEC 61851-1: 0 A pauses the port.
        ("cp/st1/connector/2/cmd/limit", b'{"amps": 0}', SetLimit(2, 0.0, 1)),
        ("cp/st1/connector/1/cmd/limit", b'{"amps": null}', SetLimit(1, None, 3)),
        ("cp/st1/mains", b'{"currents_a": [10, 20.5, 0]}', Mains((10.0, 20.5, 0.0))),
        ("cp/st1/mains", b'{"grid_power_w": -4200}', Mains(None, -4200.0)),
        (
            "cp/st1/mains",
            b'{"currents_a": [1, 2, 3], "grid_power_w": 900.5}',
            Mains((1.0, 2.0, 3.0), 900.5),
        ),
    ],
)
def test_valid_commands(topic: str, payload: bytes, expected: object) -> None:
    assert parse_command(T, topic, payload, PORTS) == expected


@pytest.mark.parametrize(
    ("name", "topic", "payload", "fragment"),
    [
        ("unknown_connector", "cp/st1/connector/9/cmd/enable", b"", "unknown connector"),
        ("connector_not_a_number", "cp/st1/connector/x/cmd/enable", b"", "unknown connector"),
        ("unknown_verb", "cp/st1/connector/1/cmd/explode", b"", "unknown command"),
        ("bad_json", "cp/st1/connector/1/cmd/limit", b"{amps:", "not valid JSON"),
        ("not_utf8", "cp/st1/connector/1/cmd/limit", b"\xff\xfe", "not valid JSON"),
        ("not_an_object", "cp/st1/connector/1/cmd/limit", b"[16]", "JSON object"),
        ("amps_missing", "cp/st1/connector/1/cmd/limit", b"{}", '"amps"'),
        # IEC 61851-1 A.8: no PWM below 6 A; never above the port's rating.
        ("iec61851_below_6a", "cp/st1/connector/1/cmd/limit", b'{"amps": 5}', "amps must be"),
        ("above_port_max", "cp/st1/connector/2/cmd/limit", b'{"amps": 20}', "amps must be"),
        ("amps_is_bool", "cp/st1/connector/1/cmd/limit", b'{"amps": true}', "amps must be"),
        ("amps_is_string", "cp/st1/connector/1/cmd/limit", b'{"amps": "16"}', "amps must be"),
        ("amps_nan", "cp/st1/connector/1/cmd/limit", b'{"amps": NaN}', "amps must be"),
        ("phases_2", "cp/st1/connector/1/cmd/limit", b'{"amps": 6, "phases": 2}', "phases"),
        ("phases_3_on_1ph", "cp/st1/connector/2/cmd/limit", b'{"amps": 6, "phases": 3}', "phases"),
        ("mains_two_values", "cp/st1/mains", b'{"currents_a": [1, 2]}', "currents_a"),
        ("mains_negative", "cp/st1/mains", b'{"currents_a": [1, -2, 3]}', "currents_a"),
        ("mains_not_list", "cp/st1/mains", b'{"currents_a": 3}', "currents_a"),
        ("mains_nan", "cp/st1/mains", b'{"currents_a": [1, NaN, 3]}', "finite"),
        ("mains_infinity", "cp/st1/mains", b'{"currents_a": [Infinity, 1, 3]}', "finite"),
        ("mains_above_bound", "cp/st1/mains", b'{"currents_a": [1, 127, 3]}', "0..126 A"),
        ("mains_bool", "cp/st1/mains", b'{"currents_a": [true, 1, 3]}', "currents_a"),
        ("grid_power_nan", "cp/st1/mains", b'{"grid_power_w": NaN}', "grid_power_w"),
        ("grid_power_huge", "cp/st1/mains", b'{"grid_power_w": -1e9}', "grid_power_w"),
        ("huge_payload", "cp/st1/connector/1/cmd/limit", b"x" * 5000, "larger than"),
    ],
)
def test_rejected_commands(name: str, topic: str, payload: bytes, fragment: str) -> None:
    with pytest.raises(CommandRejected, match=fragment):
        parse_command(T, topic, payload, PORTS, mains_max_a=126.0)


@pytest.mark.parametrize(
    ("mains", "own", "charging", "plausible"),
    [
        ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), False, True),  # nothing charges, empty building
        ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), True, False),  # issue 14: zeros while guns charge
        ((0.0, 0.0, 0.0), (16.0, 16.0, 16.0), True, False),
        ((20.0, 18.0, 17.0), (16.0, 16.0, 16.0), True, True),  # building + our 16 A
        ((15.0, 16.0, 16.0), (16.0, 16.0, 16.0), True, True),  # within the tolerance
        ((16.0, 5.0, 16.0), (16.0, 16.0, 16.0), True, False),  # L2 below our own draw
        ((60.0, 60.0, 60.0), (48.0, 0.0, 0.0), True, True),  # 10 % of 48 A tolerance: fine
        ((40.0, 0.0, 0.0), (48.0, 0.0, 0.0), True, False),
    ],
)
def test_mains_plausible_against_own_draw(
    mains: tuple[float, float, float], own: tuple[float, ...], charging: bool, plausible: bool
) -> None:
    """The mains meter is upstream of our guns: per phase it cannot read less than they draw."""
    if plausible:
        check_mains(mains, own, charging)
    else:
        with pytest.raises(CommandRejected, match="implausible"):
            check_mains(mains, own, charging)


@pytest.mark.parametrize("prefix", ["", "a/+", "a/#"])
def test_wildcards_in_prefix_are_a_config_error(prefix: str) -> None:
    with pytest.raises(MqttConfigError):
        MqttApi("127.0.0.1", 1883, prefix, "st", {})
