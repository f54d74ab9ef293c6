"""The pure energy allocator: fair share, water-filling and the IEC 61851-1 6 A minimum."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from main_node.energy import PortDemand, allocate, available_current, order_pushes


def port(
    cid: int, active: bool = True, max_a: float = 32.0, order: int | None = None
) -> PortDemand:
    return PortDemand(cid, active, max_a, 3, cid if order is None else order)


@pytest.mark.parametrize(
    ("name", "available", "ports", "expected"),
    [
        ("equal_share", 48.0, [port(1), port(2), port(3)], {1: 16.0, 2: 16.0, 3: 16.0}),
        ("below_max_everyone_full", 100.0, [port(1), port(2)], {1: 32.0, 2: 32.0}),
        (
            "water_fill_capped_port_returns_surplus",
            60.0,
            [port(1, max_a=10.0), port(2), port(3)],
            {1: 10.0, 2: 25.0, 3: 25.0},
        ),
        ("idle_ports_get_zero", 40.0, [port(1), port(2, active=False)], {1: 32.0, 2: 0.0}),
        (
            "iec61851_min_6a_latest_session_pauses",
            15.0,
            [port(1, order=5), port(2, order=9), port(3, order=7)],
            {1: 7.5, 2: 0.0, 3: 7.5},
        ),
        (
            "iec61851_min_6a_ties_broken_by_connector",
            12.0,
            [port(3, order=1), port(1, order=1), port(2, order=1)],
            {1: 6.0, 2: 6.0, 3: 0.0},
        ),
        ("iec61851_below_6a_all_pause", 5.9, [port(1), port(2)], {1: 0.0, 2: 0.0}),
        (
            "iec61851_ceiling_below_6a_pauses_that_port_only",
            30.0,
            [port(1, max_a=5.0), port(2)],
            {1: 0.0, 2: 30.0},
        ),
        ("ocpp_zero_limit_pauses", 30.0, [port(1, max_a=0.0), port(2)], {1: 0.0, 2: 30.0}),
        ("rounded_down_to_0_1a", 20.0, [port(1), port(2), port(3)], {1: 6.6, 2: 6.6, 3: 6.6}),
        ("negative_budget_is_zero", -3.0, [port(1)], {1: 0.0}),
    ],
)
def test_allocate(
    name: str, available: float, ports: list[PortDemand], expected: dict[int, float]
) -> None:
    assert allocate(available, ports, 6.0) == pytest.approx(expected), name


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("site_only", {}, 63.0),
        # The building draws 40/30/20 A of which our ports draw 16 A per phase: 24 A is other load.
        ("mains_subtracts_other_load", {"mains_a": (40, 30, 20), "own_a": (16, 16, 16)}, 39.0),
        ("single_phase_port_on_l1", {"mains_a": (40, 30, 20), "own_a": (32,)}, 33.0),
        ("meter_noise_never_adds", {"mains_a": (10, 10, 10), "own_a": (16, 16, 16)}, 63.0),
        ("ocpp_station_max_profile", {"station_limit_a": 20.0}, 20.0),
        ("overloaded_building_is_zero", {"mains_a": (90, 0, 0)}, 0.0),
    ],
)
def test_available_current(name: str, kwargs: dict[str, object], expected: float) -> None:
    assert available_current(63.0, **kwargs) == pytest.approx(expected), name  # type: ignore[arg-type]


def test_order_pushes_sends_reductions_before_increases() -> None:
    """The sum of limits on the ports never exceeds the budget while pushes are in flight."""
    first, then = order_pushes(
        {1: 16.0, 2: 16.0, 3: None, 4: 10.0}, {1: 10.0, 2: 22.0, 3: 6.0, 4: 10.0}
    )
    assert first == [1, 3, 4]
    assert then == [2]


demands = st.lists(
    st.builds(
        PortDemand,
        connector_id=st.integers(1, 8),
        active=st.booleans(),
        max_current_a=st.sampled_from([0.0, 5.0, 6.0, 10.0, 16.0, 32.0]),
        phases=st.sampled_from([1, 3]),
        order=st.integers(0, 5),
    ),
    max_size=8,
    unique_by=lambda d: d.connector_id,
)


@given(st.floats(0, 200), demands)
def test_allocate_invariants(available: float, ports: list[PortDemand]) -> None:
    """In budget; 0 or 6 A..ceiling (IEC 61851-1); earlier sessions never pause before later."""
    result = allocate(available, ports, 6.0)
    assert sum(result.values()) <= available + 1e-6
    for p in ports:
        amps = result[p.connector_id]
        assert amps == 0.0 or 6.0 <= amps <= p.max_current_a + 1e-9
        if not p.active:
            assert amps == 0.0
    eligible = [p for p in ports if p.active and p.max_current_a >= 6.0]
    for a in eligible:
        for b in eligible:
            if (a.order, a.connector_id) < (b.order, b.connector_id) and result[b.connector_id]:
                assert result[a.connector_id] > 0
