"""Energy policy cores: stale mains, and which guns run (rules R1..R5 of main_node.energy_policy).

Every scheduler case is a list of decisions (time, budget, guns that want current) and the guns
expected to run after each; minimum 6 A (IEC 61851-1 A.2.3), band 1 A, min on 300 s, min pause
120 s, rotation 600 s unless a case says otherwise.
"""

from __future__ import annotations

import pytest

from main_node.energy_policy import (
    Candidate,
    MainsStatus,
    PhaseChooser,
    RotationConfig,
    Scheduler,
    mains_status,
    pv_surplus_w,
)

CFG = RotationConfig(
    min_current_a=6.0, hysteresis_a=1.0, min_on_s=300.0, min_pause_s=120.0, rotation_s=600.0
)


@pytest.mark.parametrize(
    ("name", "last", "now", "required", "expected"),
    [
        ("no_meter_site_limit_applies", None, 100.0, False, MainsStatus.NONE),
        ("declared_meter_silent_from_boot_is_stale", None, 0.0, True, MainsStatus.STALE),
        ("fresh_reading_is_live", 90.0, 100.0, False, MainsStatus.LIVE),
        ("just_below_max_age_is_live", 70.5, 100.0, True, MainsStatus.LIVE),
        ("at_max_age_is_stale", 70.0, 100.0, False, MainsStatus.STALE),
        ("old_reading_is_stale_everest_fallback", 10.0, 100.0, False, MainsStatus.STALE),
    ],
)
def test_mains_status(
    name: str, last: float | None, now: float, required: bool, expected: MainsStatus
) -> None:
    assert mains_status(last, now, 30.0, required) is expected, name


Step = tuple[float, float, tuple[int, ...]]


def guns(*cids: int, prio: dict[int, int] | None = None) -> tuple[Candidate, ...]:
    return tuple(Candidate(c, (prio or {}).get(c, 0), order=c) for c in cids)


@pytest.mark.parametrize(
    ("name", "steps", "expected", "prio"),
    [
        (
            "iec61851_everyone_fits",
            [(0, 40.0, (1, 2, 3))],
            [{1, 2, 3}],
            None,
        ),
        (
            "iec61851_min_6a_first_come_runs_later_waits",
            [(0, 15.0, (1,)), (1, 15.0, (1, 2)), (2, 15.0, (1, 2, 3))],
            [{1}, {1, 2}, {1, 2}],
            None,
        ),
        (
            "r1_budget_drop_pauses_longest_running_at_once",
            [(0, 20.0, (1,)), (10, 20.0, (1, 2, 3)), (20, 11.0, (1, 2, 3))],
            [{1}, {1, 2, 3}, {2}],
            None,
        ),
        (
            "r1_equal_start_the_later_session_pauses",
            [(0, 18.0, (1, 2, 3)), (5, 12.0, (1, 2, 3))],
            [{1, 2, 3}, {1, 2}],
            None,
        ),
        (
            "r1_site_limit_beats_min_on_time",
            [(0, 12.0, (1, 2)), (1, 6.0, (1, 2))],
            [{1, 2}, {1}],
            None,
        ),
        (
            "r2_budget_must_hold_for_min_pause_before_a_start",
            [(0, 6.0, (1,)), (10, 8.0, (1, 2)), (20, 13.0, (1, 2)), (131, 13.0, (1, 2))],
            [{1}, {1}, {1}, {1, 2}],
            None,
        ),
        (
            "r3_no_resume_within_min_pause",
            [(0, 12.0, (1, 2)), (10, 6.0, (1, 2)), (20, 20.0, (1, 2)), (131, 20.0, (1, 2))],
            [{1, 2}, {1}, {1}, {1, 2}],
            None,
        ),
        (
            "r3_resume_needs_the_hysteresis_band",
            [(0, 12.0, (1, 2)), (10, 6.0, (1, 2)), (200, 12.5, (1, 2)), (400, 12.5, (1, 2))],
            [{1, 2}, {1}, {1}, {1}],
            None,
        ),
        (
            "r3_resume_above_the_band",
            [(0, 12.0, (1, 2)), (10, 6.0, (1, 2)), (100, 13.0, (1, 2)), (200, 13.0, (1, 2))],
            [{1, 2}, {1}, {1}, {1, 2}],
            None,
        ),
        (
            "r4_paused_gun_gets_its_turn_after_rotation_s",
            [(0, 10.0, (1,)), (1, 10.0, (1, 2)), (600, 10.0, (1, 2)), (601, 10.0, (1, 2))],
            [{1}, {1}, {1}, {2}],
            None,
        ),
        (
            "r4_turn_comes_back_after_another_rotation_s",
            [(0, 10.0, (1, 2)), (601, 10.0, (1, 2)), (1200, 10.0, (1, 2)), (1201, 10.0, (1, 2))],
            [{1}, {2}, {2}, {1}],
            None,
        ),
        (
            "r4_min_on_time_protects_a_fresh_gun",
            [
                (0, 10.0, (1, 2, 3)),
                (600, 10.0, (1, 2, 3)),
                (601, 10.0, (1, 2, 3)),
                (900, 10.0, (1, 2, 3)),
            ],
            [{1}, {2}, {2}, {3}],
            None,
        ),
        (
            "r4_rotation_pauses_the_longest_running",
            [(0, 14.0, (1,)), (100, 14.0, (1, 2)), (101, 14.0, (1, 2, 3)), (701, 14.0, (1, 2, 3))],
            [{1}, {1, 2}, {1, 2}, {2, 3}],
            None,
        ),
        (
            "r5_priority_gun_starts_first",
            [(0, 10.0, (1, 2))],
            [{2}],
            {2: 1},
        ),
        (
            "r5_priority_gun_preempts_after_min_on",
            [(0, 10.0, (1,)), (10, 10.0, (1, 2)), (299, 10.0, (1, 2)), (300, 10.0, (1, 2))],
            [{1}, {1}, {1}, {2}],
            {2: 1},
        ),
        (
            "r5_lower_priority_never_rotates_in",
            [(0, 10.0, (1, 2)), (5000, 10.0, (1, 2))],
            [{2}, {2}],
            {2: 1},
        ),
        (
            "gun_that_leaves_frees_its_place",
            [(0, 10.0, (1, 2)), (50, 10.0, (2,))],
            [{1}, {2}],
            None,
        ),
    ],
)
def test_scheduler_rules(
    name: str, steps: list[Step], expected: list[set[int]], prio: dict[int, int] | None
) -> None:
    s = Scheduler(CFG)
    got = [set(s.decide(t, budget, guns(*cids, prio=prio))) for t, budget, cids in steps]
    assert got == expected, name


def test_no_minimum_runs_everyone() -> None:
    s = Scheduler(RotationConfig(min_current_a=0.0))
    assert s.decide(0.0, 1.0, guns(1, 2, 3)) == {1, 2, 3}


def test_rotation_serves_every_gun_over_two_hours_20a_4_guns() -> None:
    """The bench case: 20 A fits three guns at 6 A; the fourth is never starved (R4)."""
    s = Scheduler(CFG)
    served: set[int] = set()
    switches = 0
    before: frozenset[int] = frozenset()
    for t in range(0, 7200, 5):
        now = s.decide(float(t), 20.0, guns(1, 2, 3, 4))
        assert len(now) == 3
        switches += len(now ^ before)
        before = now
        served |= now
    assert served == {1, 2, 3, 4}
    assert switches / 4 / 2 <= 6  # contactor operations per gun and hour


@pytest.mark.parametrize(
    ("name", "grid_w", "own_w", "expected"),
    [
        ("export_only", -5000.0, 0.0, 4900.0),
        ("own_draw_plus_export", -1000.0, 3000.0, 3900.0),
        ("importing_shrinks_the_budget", 500.0, 3000.0, 2400.0),
        ("importing_more_than_we_draw_is_zero", 5000.0, 3000.0, 0.0),
    ],
)
def test_pv_surplus(name: str, grid_w: float, own_w: float, expected: float) -> None:
    assert pv_surplus_w(grid_w, own_w, margin_w=100.0) == pytest.approx(expected), name


@pytest.mark.parametrize(
    ("name", "steps", "expected"),
    [
        ("three_phases_while_the_surplus_covers_3x6a", [(0, 5000.0)], [3]),
        ("p1_below_4140w_one_phase", [(0, 4000.0)], [1]),
        ("p2_back_to_three_only_above_the_band", [(0, 3000), (700, 4300), (800, 4700)], [1, 1, 3]),
        ("p3_one_switch_per_hold_time", [(0, 3000), (100, 9000), (600, 9000)], [1, 1, 3]),
        ("p3_first_switch_is_free", [(5, 1000.0)], [1]),
    ],
)
def test_phase_chooser_rules(
    name: str, steps: list[tuple[float, float]], expected: list[int]
) -> None:
    chooser = PhaseChooser(min_current_a=6.0, band_w=500.0, min_hold_s=600.0)
    assert [chooser.choose(w, t) for t, w in steps] == expected, name
