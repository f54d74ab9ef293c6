"""1 <-> 3 phase switching in the vehicle-safe sequence: pause, switch, wait, resume. No I/O.

Theory of operation. IEC 61851-1 has no state for changing the phase count while charging; the
sequence every vehicle tolerates is an EVSE pause: the pilot stops offering current (PWM off,
state x1: the EV stops drawing and opens S2), the contactor opens (IEC 61851-1 A.3: PWM off
before opening), the phase relay switches only once the mirror contact confirms the contactor
open (no current, no arc, and never with a welded contactor), and only after `wait_s` does the
offer return (vehicles re-detect the supply; the wait keeps them from faulting on a phase
count that changes under their charger). `request` starts it, `tick` moves it on; effects are
data: `HoldEnergy(on)` (the runtime blocks the session's energy) and `SwitchPhases(n)`.

    IDLE --request(n != phases)--> PAUSING --contactor open--> WAITING --wait_s--> IDLE
                                   (HoldEnergy on)             (SwitchPhases n)    (HoldEnergy off)

A request that arrives mid-sequence only changes the target: the relay is switched (again) in
WAITING while the contactor is still open, and the wait starts over.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["HoldEnergy", "PhaseEffect", "PhaseSwitchMachine", "PhaseSwitchState", "SwitchPhases"]


@dataclass(frozen=True, slots=True)
class HoldEnergy:
    on: bool


@dataclass(frozen=True, slots=True)
class SwitchPhases:
    phases: int


PhaseEffect = HoldEnergy | SwitchPhases


class PhaseSwitchState(enum.Enum):
    IDLE = "idle"
    PAUSING = "pausing"  # energy held, waiting for the contactor to be confirmed open
    WAITING = "waiting"  # switched, waiting before the offer returns


class PhaseSwitchMachine:
    """The phase relay's sequence for one port."""

    def __init__(self, phases: int = 3, wait_s: float = 10.0) -> None:
        if phases not in (1, 3):
            raise ValueError(f"phases must be 1 or 3, got {phases}")
        self.phases = phases  # what the relay feeds now
        self.target = phases
        self.wait_s = wait_s
        self.state = PhaseSwitchState.IDLE
        self._since = 0.0

    def request(self, phases: int, now: float, contactor_open: bool) -> list[PhaseEffect]:
        """Ask for `phases`; starts the sequence if it changes anything."""
        if phases not in (1, 3):
            raise ValueError(f"phases must be 1 or 3, got {phases}")
        self.target = phases
        if self.state is not PhaseSwitchState.IDLE or phases == self.phases:
            return []
        self.state = PhaseSwitchState.PAUSING
        return [HoldEnergy(True), *self.tick(now, contactor_open)]

    def tick(self, now: float, contactor_open: bool) -> list[PhaseEffect]:
        """Time passes, with the contactor (mirror-confirmed) open or not."""
        if self.state is PhaseSwitchState.PAUSING:
            if not contactor_open:
                return []
            return self._switch(now)
        if self.state is PhaseSwitchState.WAITING:
            if self.target != self.phases:
                # Asked again meanwhile: the contactor cannot have closed (energy is held).
                return self._switch(now) if contactor_open else []
            if now - self._since >= self.wait_s - 1e-9:
                self.state = PhaseSwitchState.IDLE
                return [HoldEnergy(False)]
        return []

    def _switch(self, now: float) -> list[PhaseEffect]:
        self.state, self._since, self.phases = PhaseSwitchState.WAITING, now, self.target
        return [SwitchPhases(self.target)]
