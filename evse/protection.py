"""Protection machines: contactor sequencing, over-current, over-temperature, RCD. No I/O.

Theory of operation: each machine takes measurements with the time they were made and returns
effects as data; the runtime performs them. Faults are `Fault(code, active, message)` effects;
the runtime turns them into `PortErrorEvent`s and blocks energy while any is active.

- Contactor (IEC 61851-1 6.3.1.4 / 8.4): every switch command is checked against the mirror
  contact. Closed when it must be open -> welded; open when it must be closed -> stuck open.
  A mismatch counts only after `settle_s`, the contactor's own operating time. A weld is
  latched: the contacts opening later proves nothing about the next close, so only an operator
  check (`clear_welded` with the mirror open) or a fresh machine (a reboot whose first reading
  shows the mirror open) clears it.
- Over-current (IEC 61851-1 Annex A, table A.8 and its note): the EV may exceed the PWM offer by
  2 A up to 20 A and by 10 % above, and it has `allowed_s` (5 s) to follow a new offer. Past
  that the EVSE first reduces the PWM offer by the excess (an EV that misreads the duty by a
  constant then draws what the site granted: `ReduceOffer`), and if the EV still draws above
  the granted current for another `allowed_s`, or the reduced offer would fall below 6 A
  (A.2.3), it trips: the session is stopped. Never a silent pause.
- Over-temperature (OpenEVSE practice, our derating steps): 65 degC half current, 68 degC
  quarter, 71 degC trip; each step is left only `hysteresis_c` below its threshold.
- RCD (IEC 61851-1 8.5 / IEC 62955): a trip opens the contactor at once; it is reset only with
  no EV connected.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from chargeport.port import ErrorCode

__all__ = [
    "ContactorMachine",
    "ContactorState",
    "Fault",
    "OverCurrentMachine",
    "RcdMachine",
    "ReduceOffer",
    "SwitchContactor",
    "ThermalMachine",
    "ThermalStep",
    "over_current_tolerance",
]


@dataclass(frozen=True, slots=True)
class SwitchContactor:
    closed: bool


@dataclass(frozen=True, slots=True)
class ReduceOffer:
    """Offer `compensation_a` less on the pilot than the current granted to the port."""

    compensation_a: float


@dataclass(frozen=True, slots=True)
class Fault:
    code: ErrorCode
    active: bool
    message: str = ""


# ------------------------------------------------------------------ contactor


class ContactorState(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"
    OPENING = "opening"


class ContactorMachine:
    """Commands the contactor and checks it with the mirror contact."""

    def __init__(self, settle_s: float = 0.2) -> None:
        self.settle_s = settle_s
        self.state = ContactorState.OPEN
        self._since = 0.0
        self.welded = False
        self.stuck_open = False

    @property
    def wanted(self) -> bool:
        """The commanded position (True = closed)."""
        return self.state in (ContactorState.CLOSING, ContactorState.CLOSED)

    def request(self, closed: bool, now: float) -> list[SwitchContactor | Fault]:
        """Ask for a position; returns the switch command if it changes anything."""
        if closed == self.wanted:
            return []
        self.state = ContactorState.CLOSING if closed else ContactorState.OPENING
        self._since = now
        return [SwitchContactor(closed)]

    def feedback(self, mirror_closed: bool, now: float) -> list[SwitchContactor | Fault]:
        """A reading of the mirror contact (True = main contacts closed)."""
        out: list[SwitchContactor | Fault] = []
        settled = now - self._since >= self.settle_s - 1e-9
        if self.wanted:
            if mirror_closed:
                self.state = ContactorState.CLOSED
                if self.stuck_open:
                    self.stuck_open = False
                    out.append(Fault(ErrorCode.POWER_SWITCH_FAILURE, False))
            elif settled and not self.stuck_open:
                self.stuck_open = True
                out.append(Fault(ErrorCode.POWER_SWITCH_FAILURE, True, "contactor does not close"))
                # Stop commanding a contactor that does not answer; retried next session.
                self.state = ContactorState.OPEN
                out.append(SwitchContactor(False))
        else:
            if not mirror_closed:
                self.state = ContactorState.OPEN  # a weld stays latched (see clear_welded)
            elif settled and not self.welded:
                self.welded = True
                out.append(
                    Fault(ErrorCode.POWER_SWITCH_FAILURE, True, "contactor welded (mirror closed)")
                )
        return out

    def clear_welded(self, mirror_closed: bool) -> list[SwitchContactor | Fault]:
        """An operator's check: clears a latched weld only if the mirror reads open now."""
        if not self.welded or mirror_closed or self.wanted:
            return []
        self.welded = False
        return [Fault(ErrorCode.POWER_SWITCH_FAILURE, False)]

    def clear_stuck(self) -> list[SwitchContactor | Fault]:
        """Forget a stuck-open fault (on unplug: the next session tries again)."""
        if not self.stuck_open:
            return []
        self.stuck_open = False
        return [Fault(ErrorCode.POWER_SWITCH_FAILURE, False)]


# ------------------------------------------------------------------ over-current


def over_current_tolerance(offered_a: float) -> float:
    """How far above the offer the EV may draw (IEC 61851-1 Annex A: 2 A to 20 A, else 10 %)."""
    return 2.0 if offered_a <= 20.0 else 0.1 * offered_a


class OverCurrentMachine:
    """IEC 61851-1 Annex A over-current: time to follow, then reduce, then trip."""

    def __init__(self, allowed_s: float = 5.0, min_current_a: float = 6.0) -> None:
        self.allowed_s = allowed_s
        self.min_current_a = min_current_a
        self.tripped = False
        self.compensation_a = 0.0  # how much less the pilot offers than the granted current
        self._since: float | None = None
        self._granted: float | None = None
        self._grace: tuple[float, float] | None = None  # (earlier offer, until): after a cut

    def measure(self, current_a: float, granted_a: float, now: float) -> list[Fault | ReduceOffer]:
        """The highest phase current at `now` against the current granted to the port.

        `granted_a` is the offer before compensation (0 when the pilot offers nothing)."""
        if self.tripped:
            return []
        grace = self._grace if self._grace is not None and now < self._grace[1] else None
        if self._granted is not None and granted_a < self._granted:
            # A lower offer: for `allowed_s` the EV may still draw what it was offered before
            # (IEC 61851-1 table A.8). The excess timer itself runs on, so an offer that
            # changes every few seconds cannot hide an EV that follows none of them.
            before = max(self._granted, grace[0]) if grace is not None else self._granted
            grace = self._grace = (before, now + self.allowed_s)
        self._granted = granted_a
        if current_a <= granted_a + over_current_tolerance(granted_a):
            self._since = None
            return []
        if self._since is None:
            self._since = now
        following = grace is not None and current_a <= grace[0] + over_current_tolerance(grace[0])
        if following or now - self._since < self.allowed_s - 1e-9:
            return []
        self._since = now  # the next step gets its own `allowed_s`
        excess = current_a - granted_a
        if self.compensation_a == 0.0 and granted_a - excess >= self.min_current_a - 1e-9:
            self.compensation_a = excess
            return [ReduceOffer(excess)]
        self.tripped = True
        return [
            Fault(
                ErrorCode.OVER_CURRENT_FAILURE,
                True,
                f"EV draws {current_a:.1f} A, {granted_a:.1f} A granted",
            )
        ]

    def reset(self) -> list[Fault | ReduceOffer]:
        """Clear a trip and any compensation (on unplug: the next EV starts afresh)."""
        self._since = self._granted = self._grace = None
        out: list[Fault | ReduceOffer] = []
        if self.compensation_a:
            self.compensation_a = 0.0
            out.append(ReduceOffer(0.0))
        if self.tripped:
            self.tripped = False
            out.append(Fault(ErrorCode.OVER_CURRENT_FAILURE, False))
        return out


# ------------------------------------------------------------------ over-temperature


class ThermalStep(enum.Enum):
    """Derating step; the value is the fraction of the maximum current still offered."""

    NORMAL = 1.0
    HALF = 0.5
    QUARTER = 0.25
    TRIP = 0.0


_THRESHOLDS = ((ThermalStep.TRIP, 71.0), (ThermalStep.QUARTER, 68.0), (ThermalStep.HALF, 65.0))
_THRESHOLD_OF = dict(_THRESHOLDS)
_ORDER = [ThermalStep.NORMAL, ThermalStep.HALF, ThermalStep.QUARTER, ThermalStep.TRIP]


class ThermalMachine:
    """Over-temperature derating with hysteresis."""

    def __init__(self, hysteresis_c: float = 2.0) -> None:
        self.hysteresis_c = hysteresis_c
        self.step = ThermalStep.NORMAL

    def measure(self, temperature_c: float) -> list[Fault | ThermalStep]:
        """A temperature reading; returns the new step (and a trip fault) when it changes."""
        rising = ThermalStep.NORMAL
        for step, threshold in _THRESHOLDS:
            if temperature_c >= threshold:
                rising = step
                break
        new = self.step
        if _ORDER.index(rising) > _ORDER.index(self.step):
            new = rising
        else:
            # Go down one step at a time, each only once `hysteresis_c` below its threshold.
            while new is not ThermalStep.NORMAL:
                threshold = _THRESHOLD_OF[new]
                if temperature_c > threshold - self.hysteresis_c:
                    break
                new = _ORDER[_ORDER.index(new) - 1]
        if new is self.step:
            return []
        old, self.step = self.step, new
        out: list[Fault | ThermalStep] = [new]
        if new is ThermalStep.TRIP:
            out.append(
                Fault(ErrorCode.HIGH_TEMPERATURE, True, f"connector at {temperature_c:.1f} degC")
            )
        elif old is ThermalStep.TRIP:
            out.append(Fault(ErrorCode.HIGH_TEMPERATURE, False))
        return out


# ------------------------------------------------------------------ RCD


class RcdMachine:
    """Latches an RCD trip; clears only after a successful reset."""

    def __init__(self) -> None:
        self.tripped = False

    def measure(self, tripped: bool) -> list[Fault]:
        """A reading of the RCD monitor; the runtime opens the contactor on any active fault."""
        if tripped == self.tripped:
            return []
        self.tripped = tripped
        if tripped:
            return [Fault(ErrorCode.GROUND_FAILURE, True, "residual current device tripped")]
        return [Fault(ErrorCode.GROUND_FAILURE, False)]
