"""IEC 61851-1 Annex A control pilot machine: table A.3 levels, debounce, transitions."""

from __future__ import annotations

import pytest

from chargeport.port import CpState
from evse.cp import (
    TRANSITIONS,
    CpMachine,
    CpShort,
    CpStateEntered,
    EvPlugged,
    EvReady,
    EvUnplugged,
    classify,
)


@pytest.mark.parametrize(
    ("volts", "state"),
    [
        (12.0, CpState.A),
        (11.2, CpState.A),
        (9.0, CpState.B),
        (8.1, CpState.B),
        (6.0, CpState.C),
        (3.0, CpState.D),
        (0.0, CpState.E),
        (-12.0, CpState.F),
    ],
)
def test_levels_table_a3(volts: float, state: CpState) -> None:
    assert classify(volts) is state


A, B, C, D, E, F = CpState.A, CpState.B, CpState.C, CpState.D, CpState.E, CpState.F


@pytest.mark.parametrize(
    ("old", "new", "effects"),
    [
        (A, B, (CpStateEntered(B), EvPlugged())),  # A.3: vehicle connected
        (B, C, (CpStateEntered(C), EvReady(True))),  # B -> C: EV requests energy
        (B, D, (CpStateEntered(D), EvReady(True, ventilation=True))),
        (C, D, (CpStateEntered(D), EvReady(True, ventilation=True))),
        (C, B, (CpStateEntered(B), EvReady(False))),  # EV pauses
        (B, A, (CpStateEntered(A), EvUnplugged())),
        (C, A, (CpStateEntered(A), EvUnplugged())),  # fast unplug: no pause first
        (A, C, (CpStateEntered(C), EvPlugged(), EvReady(True))),
        (C, E, (CpStateEntered(E), CpShort(True), EvReady(False))),  # A.3 state E: short
        (E, B, (CpStateEntered(B), CpShort(False))),
        (E, A, (CpStateEntered(A), CpShort(False), EvUnplugged())),
        (B, F, (CpStateEntered(F), EvUnplugged())),  # state F hides the EV
        (F, B, (CpStateEntered(B), EvPlugged())),  # ... which is seen afresh after F
        (F, A, (CpStateEntered(A),)),
    ],
)
def test_transition_effects_annex_a(
    old: CpState, new: CpState, effects: tuple[object, ...]
) -> None:
    assert TRANSITIONS[old][new] == effects


def test_table_is_complete_annex_a() -> None:
    for old in CpState:
        assert set(TRANSITIONS[old]) == set(CpState) - {old}


def test_debounce_commits_only_stable_level() -> None:
    m = CpMachine(debounce_s=0.05)
    assert m.observe(9.0, 0.0) == []
    assert m.deadline == pytest.approx(0.05)
    assert m.tick(0.04) == []
    assert m.tick(0.05) == [CpStateEntered(B), EvPlugged()]
    assert m.state is B and m.deadline is None


def test_debounce_ignores_glitch() -> None:
    m = CpMachine(debounce_s=0.05)
    m.observe(6.0, 0.0)  # a 20 ms glitch to C while idle in A
    assert m.observe(12.0, 0.02) == []
    assert m.tick(1.0) == [] and m.state is A


def test_debounce_restarts_on_new_candidate() -> None:
    m = CpMachine(debounce_s=0.05)
    m.observe(9.0, 0.0)
    m.observe(6.0, 0.03)  # ringing: B then C; C must be stable on its own
    assert m.tick(0.06) == []
    assert m.tick(0.08) == [CpStateEntered(C), EvPlugged(), EvReady(True)]


def test_zero_debounce_commits_at_once() -> None:
    m = CpMachine(debounce_s=0.0)
    assert m.observe(9.0, 0.0) == [CpStateEntered(B), EvPlugged()]
