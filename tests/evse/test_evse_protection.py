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
    ReduceOffer,
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
    assert m.feedback(False, 2.0) == []  # latched: contacts that let go once may weld again
    assert m.welded


@pytest.mark.parametrize(
    ("name", "mirror_closed", "wanted", "cleared"),
    [
        ("operator_check_passes_mirror_open", False, False, True),
        ("operator_check_fails_mirror_still_closed", True, False, False),
        ("no_check_while_the_contactor_is_commanded_closed", False, True, False),
    ],
)
def test_welded_cleared_only_by_a_passing_check_iec61851_6_3_1_4(
    name: str, mirror_closed: bool, wanted: bool, cleared: bool
) -> None:
    m = ContactorMachine(settle_s=0.2)
    m.request(True, 0.0)
    m.request(False, 1.0)
    m.feedback(True, 1.5)
    assert m.welded
    if wanted:
        m.request(True, 2.0)
    out = m.clear_welded(mirror_closed)
    assert (out == [Fault(PSF, False)]) is cleared and m.welded is not cleared, name


def test_reboot_check_a_fresh_machine_sees_a_weld_at_once() -> None:
    """A new machine starts open: a mirror still closed after settle_s is a weld (boot check)."""
    m = ContactorMachine(settle_s=0.2)
    assert m.feedback(True, 0.0) == []
    (f,) = m.feedback(True, 0.2)
    assert isinstance(f, Fault) and f.active and "welded" in f.message
    assert ContactorMachine(settle_s=0.2).feedback(False, 0.2) == []  # a passing boot check


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


OC = ErrorCode.OVER_CURRENT_FAILURE
Sample = tuple[float, float, float]  # (now, EV current, granted current)


@pytest.mark.parametrize(
    ("name", "samples", "actions"),
    [
        ("annex_a_within_2a_tolerance", [(0, 17.9, 16), (6, 17.9, 16)], []),
        (
            "table_a8_5s_to_follow_then_reduce_by_the_excess",
            [(0, 19.0, 16), (4.9, 19.0, 16), (5, 19.0, 16)],
            [(5, ReduceOffer(3.0))],
        ),
        (
            "reduced_ev_that_follows_keeps_charging",
            [(0, 19.0, 16), (5, 19.0, 16), (6, 16.0, 16), (20, 16.0, 16)],
            [(5, ReduceOffer(3.0))],
        ),
        (
            "reduced_ev_that_does_not_follow_trips_after_another_5s",
            [(0, 19.0, 16), (5, 19.0, 16), (9.9, 19.0, 16), (10, 19.0, 16)],
            [(5, ReduceOffer(3.0)), (10, OC)],
        ),
        (
            "a2_3_reduction_below_6a_trips_instead",
            [(0, 20.0, 10), (5, 20.0, 10)],
            [(5, OC)],
        ),
        (
            "dip_below_the_tolerance_restarts_the_timer",
            [(0, 19.0, 16), (3, 16.0, 16), (4, 19.0, 16), (8, 19.0, 16), (9, 19.0, 16)],
            [(9, ReduceOffer(3.0))],
        ),
        (
            "table_a8_a_new_lower_offer_gets_its_own_5s",
            [(0, 32.0, 32), (1, 32.0, 16), (5.9, 32.0, 16), (6, 32.0, 16)],
            [(6, OC)],
        ),
        (
            "table_a8_grace_ends_5s_after_the_cut_even_if_the_ev_drew_over_it_before",
            [(0, 20.0, 32), (1, 20.0, 16), (5.9, 20.0, 16), (6, 20.0, 16)],
            [(6, ReduceOffer(4.0))],
        ),
        (
            "an_offer_that_keeps_changing_does_not_hide_an_ev_that_follows_none",
            [(0, 20.0, 7.3), (2, 20.0, 7.1), (4, 20.0, 7.3), (5, 20.0, 7.1)],
            [(5, OC)],
        ),
        (
            "10_percent_above_20a",
            [(0, 35.1, 32), (5, 35.1, 32)],
            [],
        ),
    ],
)
def test_over_current_follow_reduce_trip_annex_a(
    name: str, samples: list[Sample], actions: list[tuple[float, object]]
) -> None:
    m = OverCurrentMachine(allowed_s=5.0)
    got: list[tuple[float, object]] = []
    for now, amps, granted in samples:
        for f in m.measure(amps, granted, now):
            got.append((now, f.code if isinstance(f, Fault) else f))
            assert not isinstance(f, Fault) or f.active
    assert got == actions, name
    if any(a == OC for _, a in actions):
        assert m.reset()[-1] == Fault(OC, False)


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
