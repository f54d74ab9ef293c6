"""Protection machines: contactor mirror (IEC 61851-1 6.3.1.4), over-current (Annex A),
over-temperature derating with hysteresis, RCD (IEC 61851-1 8.5)."""

from __future__ import annotations

import pytest

from chargeport.port import ErrorCode
from evse.protection import (
    ContactorMachine,
    Fault,
    OverCurrentMachine,
    RcdMachine,
    SwitchContactor,
    ThermalMachine,
    ThermalStep,
    over_current_tolerance,
)

PSF = ErrorCode.POWER_SWITCH_FAILURE


def test_contactor_close_confirmed_by_mirror() -> None:
    m = ContactorMachine(settle_s=0.2)
    assert m.request(True, 0.0) == [SwitchContactor(True)]
    assert m.request(True, 0.1) == []  # already commanded
    assert m.feedback(True, 0.05) == []
    assert not m.welded and not m.stuck_open


def test_contactor_welded_detected_by_mirror_iec61851_6_3_1_4() -> None:
    m = ContactorMachine(settle_s=0.2)
    m.request(True, 0.0)
    m.feedback(True, 0.1)
    assert m.request(False, 1.0) == [SwitchContactor(False)]
    assert m.feedback(True, 1.1) == []  # still within the operating time
    (f,) = m.feedback(True, 1.2)
    assert isinstance(f, Fault) and f.code is PSF and f.active and "welded" in f.message
    assert m.feedback(True, 1.3) == []  # reported once
    assert m.feedback(False, 2.0) == [Fault(PSF, False)]


def test_contactor_stuck_open() -> None:
    m = ContactorMachine(settle_s=0.2)
    m.request(True, 0.0)
    out = m.feedback(False, 0.2)
    assert out[0] == Fault(PSF, True, "contactor does not close")
    assert out[1] == SwitchContactor(False)
    assert m.clear_stuck() == [Fault(PSF, False)]


@pytest.mark.parametrize(("offered", "tol"), [(6.0, 2.0), (16.0, 2.0), (20.0, 2.0), (32.0, 3.2)])
def test_over_current_tolerance_annex_a(offered: float, tol: float) -> None:
    assert over_current_tolerance(offered) == pytest.approx(tol)


@pytest.mark.parametrize(
    ("samples", "trips_at"),
    [
        ([(0, 17.9), (6, 17.9)], None),  # within +2 A of 16 A
        ([(0, 19.0), (4, 19.0), (5, 19.0)], 5),  # above for 5 s: trip
        ([(0, 19.0), (3, 16.0), (4, 19.0), (8, 19.0), (9, 19.0)], 9),  # dip restarts the timer
    ],
)
def test_over_current_after_allowed_time_annex_a(
    samples: list[tuple[float, float]], trips_at: float | None
) -> None:
    m = OverCurrentMachine(allowed_s=5.0)
    tripped = None
    for now, amps in samples:
        for f in m.measure(amps, 16.0, now):
            assert f.code is ErrorCode.OVER_CURRENT_FAILURE and f.active
            tripped = now
    assert tripped == trips_at
    if trips_at is not None:
        assert m.reset() == [Fault(ErrorCode.OVER_CURRENT_FAILURE, False)]


@pytest.mark.parametrize(
    ("temps", "steps"),
    [
        ([60, 65, 68, 71], [ThermalStep.HALF, ThermalStep.QUARTER, ThermalStep.TRIP]),
        ([72], [ThermalStep.TRIP]),  # jumps straight to the highest step
        ([66, 64, 63, 62.9], [ThermalStep.HALF, ThermalStep.NORMAL]),  # leaves at 65 - 2
        ([71, 70, 69, 66.5, 65.9], [ThermalStep.TRIP, ThermalStep.QUARTER, ThermalStep.HALF]),
        ([71, 50], [ThermalStep.TRIP, ThermalStep.NORMAL]),
    ],
)
def test_thermal_derating_with_hysteresis(temps: list[float], steps: list[ThermalStep]) -> None:
    m = ThermalMachine(hysteresis_c=2.0)
    seen = [e for t in temps for e in m.measure(t) if isinstance(e, ThermalStep)]
    assert seen == steps


def test_thermal_trip_raises_and_clears_high_temperature() -> None:
    m = ThermalMachine()
    assert Fault(ErrorCode.HIGH_TEMPERATURE, True, "connector at 71.0 degC") in m.measure(71.0)
    assert Fault(ErrorCode.HIGH_TEMPERATURE, False) in m.measure(60.0)


def test_rcd_latch_iec61851_8_5() -> None:
    m = RcdMachine()
    assert m.measure(False) == []
    (f,) = m.measure(True)
    assert f.code is ErrorCode.GROUND_FAILURE and f.active
    assert m.measure(True) == []
    assert m.measure(False) == [Fault(ErrorCode.GROUND_FAILURE, False)]
