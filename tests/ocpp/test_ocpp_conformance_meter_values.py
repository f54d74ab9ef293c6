"""Idle MeterValues read as a meter would show them (OCPP 1.6 section 7.33 SampledValue: a
value is the meter's reading; *.Import measurands are imports, an energy register counts up)."""

from __future__ import annotations

import pytest

from chargeport.port import MeterValue
from main_node.ocpp.meter_values import POWER_FLOOR_W, format_value, sampled_values

MEASURANDS = ("Energy.Active.Import.Register", "Power.Active.Import", "Current.Import")

CASES = [
    # (name, energy Wh, power W, currents A, expected energy, power, currents)
    ("idle noise -0.008 W reads 0", 12.0, -0.008, (0.0, 0.0, 0.0), "12", "0", ["0", "0", "0"]),
    ("negative zero reads 0", 0.0, -0.0, (-0.0, 0.0, 0.0), "0", "0", ["0", "0", "0"]),
    ("below the floor reads 0", 5.0, POWER_FLOOR_W - 0.1, (0.01, 0.02, 0.0), "5", "0", ["0"] * 3),
    ("a negative register reads 0", -3.2, 0.0, (0.0, 0.0, 0.0), "0", "0", ["0", "0", "0"]),
    (
        "charging reads as is",
        1500.25,
        7360.4,
        (10.5, 10.5, 10.6),
        "1500.25",
        "7360.4",
        ["10.5", "10.5", "10.6"],
    ),
]


@pytest.mark.parametrize(
    ("name", "energy", "power", "currents", "e", "p", "i"), CASES, ids=[c[0] for c in CASES]
)
def test_idle_meter_values_have_no_negative_noise_ocpp16_7_33(
    name: str,
    energy: float,
    power: float,
    currents: tuple[float, float, float],
    e: str,
    p: str,
    i: list[str],
) -> None:
    mv = MeterValue(energy_wh=energy, power_w=power, current_a=currents)
    values = sampled_values(mv, "Sample.Periodic", MEASURANDS)
    by = [(v["measurand"], v["value"]) for v in values]
    assert by[0] == ("Energy.Active.Import.Register", e)
    assert by[1] == ("Power.Active.Import", p)
    assert [v for m, v in by[2:]] == i
    assert not any(v.startswith("-") for _, v in by)


@pytest.mark.parametrize(
    ("value", "text"), [(-0.0, "0"), (-0.0004, "0"), (1.0, "1"), (0.1234, "0.123"), (230.0, "230")]
)
def test_format_value_never_negative_zero_ocpp16_7_33(value: float, text: str) -> None:
    assert format_value(value) == text
