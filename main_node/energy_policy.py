"""Energy policy cores: stale mains fallback, rotation and hysteresis. No I/O, time injected.

Theory of operation.

- Stale mains (EVerest EnergyManager's fallback): a building-meter reading is trusted for
  `max_age_s`; after that it says nothing about the building's load, which may have grown, so
  the ports share a configured fallback limit instead of `site - load`. With a meter declared
  (`required`), no reading at all is stale too: a restarted main does not start from the full
  site limit.
- Who runs (`Scheduler.decide`): IEC 61851-1 A.2.3 forbids offers below 6 A, so when the budget
  does not cover 6 A x the guns that want current, some guns are paused (offer 0). The
  scheduler chooses which, by these rules (cited as R1..R5 in the tests):
  R1 the site limit is hard: while n x minimum exceeds the budget, the gun of lowest priority
     that has run longest pauses at once (minimum on-time yields to the fuse);
  R2 a gun starts only into a budget that has covered (n + 1) x minimum for the whole last
     `min_pause_s` (a noisy mains reading does not switch a gun on for one good sample);
  R3 a gun the scheduler paused stays off `min_pause_s` and resumes only with `hysteresis_a`
     above the minimum: a port hovering around 6 A does not chatter;
  R4 rotation: a gun that has waited `rotation_s` takes the turn of the equal-or-lower priority
     gun that has run longest, once that one ran `min_on_s`; the first-come gun does not hold
     the site;
  R5 priority (config `priority`): better guns are started first and pre-empt worse ones after
     `min_on_s`; OCPP profile limits still cap every gun (the allocator's ceilings).
- PV surplus (`pv_surplus_w`, `PhaseChooser`): the ports may use what they draw now plus what
  the site still exports, less a margin. A power budget favours fewer phases: 3 phases need
  3 x 230 V x 6 A = 4.1 kW before a gun can start, 1 phase 1.4 kW. P1: below the 3-phase
  minimum the station switches to 1 phase; P2: back to 3 phases only with `band_w` above it;
  P3: at most one switch per `min_hold_s` (each switch pauses the EV, IEC 61851-1 sequence).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "NOMINAL_V",
    "Candidate",
    "MainsStatus",
    "PhaseChooser",
    "RotationConfig",
    "Scheduler",
    "mains_status",
    "pv_surplus_w",
]

NOMINAL_V = 230.0  # phase voltage for turning a power budget into amps

_EPS = 1e-9


class MainsStatus(enum.Enum):
    """What the energy manager knows about the building's load."""

    NONE = "none"  # no mains meter: the site limit applies as is
    LIVE = "live"  # a fresh reading: site limit less the building's other load
    STALE = "stale"  # too old, or a declared meter never answered: the fallback limit applies


def mains_status(
    last_reading_at: float | None, now: float, max_age_s: float, required: bool
) -> MainsStatus:
    """Classify the mains reading taken at `last_reading_at` (monotonic s) at `now`."""
    if last_reading_at is None:
        return MainsStatus.STALE if required else MainsStatus.NONE
    return MainsStatus.STALE if now - last_reading_at >= max_age_s - _EPS else MainsStatus.LIVE


@dataclass(frozen=True, slots=True)
class RotationConfig:
    min_current_a: float = 6.0
    hysteresis_a: float = 1.0
    min_on_s: float = 300.0
    min_pause_s: float = 120.0
    rotation_s: float = 600.0


@dataclass(frozen=True, slots=True)
class Candidate:
    """A gun that wants current and could take the minimum (its ceiling allows 6 A)."""

    connector_id: int
    priority: int = 0  # higher is served first
    order: int = 0  # session start order: among equals the later session waits


@dataclass(slots=True)
class _Gun:
    on: bool
    since: float  # when it last switched on, or started waiting
    paused_at: float | None = None  # when the scheduler last switched it off


class Scheduler:
    """Decides which guns run when the budget does not cover everyone's minimum."""

    def __init__(self, config: RotationConfig) -> None:
        self.config = config
        self._guns: dict[int, _Gun] = {}
        self._window: deque[tuple[float, float]] = deque()  # (time, budget), budgets increasing

    def running(self) -> frozenset[int]:
        """The guns switched on by the last decision."""
        return frozenset(cid for cid, g in self._guns.items() if g.on)

    def decide(
        self, now: float, budget_a: float, candidates: Iterable[Candidate]
    ) -> frozenset[int]:
        """The guns that may run now; the state (who runs since when) moves on with it."""
        cfg = self.config
        wanted = {c.connector_id: c for c in candidates}
        for cid in [cid for cid in self._guns if cid not in wanted]:
            del self._guns[cid]  # left (unplugged, finished, capped below 6 A): forgotten
        for cid in wanted:
            self._guns.setdefault(cid, _Gun(False, now))
        held = self._held_budget(now, budget_a)
        if cfg.min_current_a <= 0:
            for each in self._guns.values():
                each.on = True
            return self.running()

        def gun(c: Candidate) -> _Gun:
            return self._guns[c.connector_id]

        running = [c for c in wanted.values() if gun(c).on]
        # R1: the budget now decides how many may stay on; the longest-running of the lowest
        # priority goes first (ties: the later session, then the higher connector id).
        keep = int(budget_a / cfg.min_current_a + _EPS)
        while len(running) > keep:
            victim = min(
                running, key=lambda c: (c.priority, gun(c).since, -c.order, -c.connector_id)
            )
            self._switch(gun(victim), False, now)
            running.remove(victim)
        # R2 + R3: start waiting guns, best first, while the held budget covers one more.
        waiting = sorted(
            (c for c in wanted.values() if not gun(c).on),
            key=lambda c: (-c.priority, gun(c).since, c.order, c.connector_id),
        )
        for c in waiting:
            g = gun(c)
            if not self._pause_over(g, now):
                continue
            band = cfg.hysteresis_a if g.paused_at is not None else 0.0
            if (len(running) + 1) * cfg.min_current_a + band > held + _EPS:
                break  # better guns first: a worse one does not jump the queue
            self._switch(g, True, now)
            running.append(c)
        # R4 + R5: swap a waiting gun in for a running one (same count, same budget).
        for c in waiting:
            g = gun(c)
            if g.on or not self._pause_over(g, now):
                continue
            turn_due = now - g.since >= cfg.rotation_s - _EPS
            victims = [
                r
                for r in running
                if now - gun(r).since >= cfg.min_on_s - _EPS
                and (r.priority < c.priority or (r.priority == c.priority and turn_due))
            ]
            if not victims:
                continue
            victim = min(victims, key=lambda r: (r.priority, gun(r).since, -r.order))
            self._switch(gun(victim), False, now)
            running.remove(victim)
            self._switch(g, True, now)
            running.append(c)
        return self.running()

    # -- helpers

    def _switch(self, gun: _Gun, on: bool, now: float) -> None:
        gun.on, gun.since = on, now
        if not on:
            gun.paused_at = now

    def _pause_over(self, gun: _Gun, now: float) -> bool:
        return gun.paused_at is None or now - gun.paused_at >= self.config.min_pause_s - _EPS

    def _held_budget(self, now: float, budget_a: float) -> float:
        """The lowest budget seen over the last `min_pause_s` (a sliding-window minimum)."""
        window = self._window
        while window and window[-1][1] >= budget_a:
            window.pop()
        window.append((now, budget_a))
        horizon = now - self.config.min_pause_s
        while len(window) > 1 and window[0][0] < horizon - _EPS:
            window.popleft()
        return window[0][1]


# ------------------------------------------------------------------ PV surplus


def pv_surplus_w(grid_w: float, own_w: float, margin_w: float) -> float:
    """Power the ports may use: their own draw plus the export (grid_w < 0), less a margin."""
    return max(own_w - grid_w - margin_w, 0.0)


class PhaseChooser:
    """1 or 3 phases for a power budget, with a band and a minimum time between switches."""

    def __init__(
        self, min_current_a: float = 6.0, band_w: float = 500.0, min_hold_s: float = 600.0
    ) -> None:
        self.min_current_a = min_current_a
        self.band_w = band_w
        self.min_hold_s = min_hold_s
        self.phases = 3
        self._since: float | None = None  # last switch (None: never switched)

    def choose(self, surplus_w: float, now: float) -> int:
        """The phase count to use at `now`; switches only as rules P1..P3 allow."""
        three_phase_min_w = 3 * NOMINAL_V * self.min_current_a
        want = self.phases
        if self.phases == 3 and surplus_w < three_phase_min_w - _EPS:
            want = 1  # P1
        elif self.phases == 1 and surplus_w >= three_phase_min_w + self.band_w - _EPS:
            want = 3  # P2
        held = self._since is None or now - self._since >= self.min_hold_s - _EPS
        if want != self.phases and held:  # P3
            self.phases, self._since = want, now
        return self.phases
