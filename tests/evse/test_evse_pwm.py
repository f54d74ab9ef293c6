"""IEC 61851-1 Annex A, tables A.7/A.8: duty cycle <-> current."""

from __future__ import annotations

import pytest

from evse.pwm import DUTY_OFF, amps_from_duty, duty_from_amps, pwm_running


@pytest.mark.parametrize(
    ("amps", "duty"),
    [
        (6.0, 10.0),  # table A.8: 6-51 A -> A / 0.6
        (10.0, 16.666666666666668),
        (16.0, 26.666666666666668),
        (32.0, 53.333333333333336),
        (51.0, 85.0),
        (60.0, 88.0),  # table A.8: 51-80 A -> A / 2.5 + 64
        (80.0, 96.0),
        (100.0, 96.0),  # never above 80 A
        (5.9, DUTY_OFF),  # below 6 A: no charging, steady +12 V
        (0.0, DUTY_OFF),
    ],
)
def test_duty_from_amps_table_a8(amps: float, duty: float) -> None:
    assert duty_from_amps(amps) == pytest.approx(duty)


@pytest.mark.parametrize(
    ("duty", "amps"),
    [
        (5.0, 0.0),  # table A.7: 3-7 % digital communication, no AC offer
        (9.0, 6.0),  # 8-10 % -> 6 A
        (10.0, 6.0),
        (26.666666666666668, 16.0),
        (50.0, 30.0),
        (85.0, 51.0),
        (90.0, 65.0),  # 85-96 % -> (duty - 64) * 2.5
        (96.0, 80.0),
        (100.0, 0.0),  # no PWM
    ],
)
def test_amps_from_duty_table_a7(duty: float, amps: float) -> None:
    assert amps_from_duty(duty) == pytest.approx(amps)


@pytest.mark.parametrize("amps", [6.0, 13.0, 20.0, 32.0, 50.0, 51.0, 63.0, 80.0])
def test_round_trip_annex_a(amps: float) -> None:
    assert amps_from_duty(duty_from_amps(amps)) == pytest.approx(amps)


@pytest.mark.parametrize(
    ("duty", "running"), [(0.0, False), (5.0, True), (53.3, True), (100.0, False)]
)
def test_pwm_running(duty: float, running: bool) -> None:
    assert pwm_running(duty) is running
