"""IEC 61851-1 control pilot state machine (Annex A), with debounce.

Theory of operation: the hal reports the positive plateau of the pilot voltage whenever it
changes. `CpMachine.observe` classifies it into a state (table A.3 voltage ranges); a new
state must stay stable for `debounce_s` before it is committed, so ringing while a plug is
inserted never reaches the session machine. A committed change looks up
`TRANSITIONS[old][new]`, which lists the effects (as data) the change means for the session:
plugged / unplugged, EV requests or stops energy, pilot short. State F is driven by the EVSE
itself (steady -12 V while the port is unavailable); it hides the EV, so leaving F reports the
EV afresh. State E (0 V) is a short of the pilot or missing power (table A.3).
"""

from __future__ import annotations

from dataclasses import dataclass

from chargeport.port import CpState

__all__ = [
    "TRANSITIONS",
    "CpEffect",
    "CpMachine",
    "CpShort",
    "CpStateEntered",
    "EvPlugged",
    "EvReady",
    "EvUnplugged",
    "classify",
]


@dataclass(frozen=True, slots=True)
class CpStateEntered:
    state: CpState


@dataclass(frozen=True, slots=True)
class EvPlugged:
    pass


@dataclass(frozen=True, slots=True)
class EvUnplugged:
    pass


@dataclass(frozen=True, slots=True)
class EvReady:
    """The EV requests energy (state C or D) or stops requesting it (back to B)."""

    ready: bool
    ventilation: bool = False


@dataclass(frozen=True, slots=True)
class CpShort:
    """State E: the pilot is shorted to PE (or the EVSE has no power)."""

    active: bool


CpEffect = CpStateEntered | EvPlugged | EvUnplugged | EvReady | CpShort


def classify(volts: float) -> CpState:
    """Positive plateau (V) -> state, per IEC 61851-1 table A.3 ranges (nominal +-1 V)."""
    if volts >= 10.5:
        return CpState.A  # 12 V
    if volts >= 7.5:
        return CpState.B  # 9 V
    if volts >= 4.5:
        return CpState.C  # 6 V
    if volts >= 1.5:
        return CpState.D  # 3 V
    if volts > -10.5:
        return CpState.E  # 0 V
    return CpState.F  # -12 V


# What each state says about the EV: (plugged, ready, shorted). E and F hide the EV.
_VIEW: dict[CpState, tuple[bool, bool, bool]] = {
    CpState.A: (False, False, False),
    CpState.B: (True, False, False),
    CpState.C: (True, True, False),
    CpState.D: (True, True, False),
    CpState.E: (True, False, True),  # a short is on a connected cable; the EV cannot draw
    CpState.F: (False, False, False),
}


def _edge(old: CpState, new: CpState) -> tuple[CpEffect, ...]:
    """Effects of a committed change: the difference between the two states' views."""
    (p0, r0, s0), (p1, r1, s1) = _VIEW[old], _VIEW[new]
    if old is CpState.F:
        p0 = r0 = False  # leaving F the EV is seen afresh (IEC 61851-1 A.3 state F)
    out: list[CpEffect] = [CpStateEntered(new)]
    if s0 and not s1:
        out.append(CpShort(False))
    if not p0 and p1:
        out.append(EvPlugged())
    if s1 and not s0:
        out.append(CpShort(True))  # before the EV's ready flag drops: a fault, not a pause
    if p0 and not p1:
        out.append(EvUnplugged())  # implies not ready; no separate pause first
    elif r0 != r1:
        out.append(EvReady(r1, ventilation=new is CpState.D))
    elif r1 and (old is CpState.D) != (new is CpState.D):
        out.append(EvReady(True, ventilation=new is CpState.D))
    return tuple(out)


# Every state can follow every other one (a fast unplug skips B), so the table is complete;
# its cells are the effects of the change.
TRANSITIONS: dict[CpState, dict[CpState, tuple[CpEffect, ...]]] = {
    old: {new: _edge(old, new) for new in CpState if new is not old} for old in CpState
}


class CpMachine:
    """Debounced CP state; feed levels and ticks, get effects back. No I/O."""

    def __init__(self, debounce_s: float = 0.05, initial: CpState = CpState.A) -> None:
        self.debounce_s = debounce_s
        self.state = initial
        self._pending: tuple[CpState, float] | None = None

    @property
    def deadline(self) -> float | None:
        """When the pending state will be committed, if one is pending."""
        return None if self._pending is None else self._pending[1] + self.debounce_s

    def observe(self, volts: float, now: float) -> list[CpEffect]:
        """A new level measurement at `now`."""
        seen = classify(volts)
        if seen is self.state:
            self._pending = None
            return []
        if self._pending is None or self._pending[0] is not seen:
            self._pending = (seen, now)
        return self.tick(now)

    def tick(self, now: float) -> list[CpEffect]:
        """Commit the pending state once it has been stable for the debounce time."""
        if self._pending is None or now - self._pending[1] < self.debounce_s - 1e-9:
            return []
        new, _ = self._pending
        self._pending = None
        effects = TRANSITIONS[self.state][new]
        self.state = new
        return list(effects)
