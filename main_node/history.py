"""A bounded ring of per-gun samples for the dashboard's charts (pure: no I/O, time passed in).

One sample per gun per tick (1 Hz on the main): time, power, current per phase and the meter
register. Storage is preallocated flat arrays (`array('d')` for time and energy, `array('f')`
for power and currents: 32 bytes a sample), so one hour for four guns is about 460 KiB and never
grows. A page that reloads asks for the ring (`series`) and then follows the live samples over
the WebSocket (`latest`).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_CAPACITY", "GunRing", "HistoryRing", "Sample", "SiteRing"]

DEFAULT_CAPACITY = 3600  # one hour at 1 Hz
PHASES = 3


@dataclass(frozen=True, slots=True)
class Sample:
    t: float  # unix seconds
    power_w: float
    current_a: tuple[float, float, float]
    energy_wh: float


class GunRing:
    """Fixed-capacity ring of samples for one gun; the oldest is overwritten when full."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("history capacity must be at least 1")
        self.capacity = capacity
        self._t = array("d", bytes(8 * capacity))
        self._energy = array("d", bytes(8 * capacity))
        self._power = array("f", bytes(4 * capacity))
        self._current = [array("f", bytes(4 * capacity)) for _ in range(PHASES)]
        self._head = 0  # next slot to write
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def append(
        self, t: float, power_w: float, current_a: Sequence[float], energy_wh: float
    ) -> None:
        """Add a sample; one not newer than the last is dropped (clock stepped back)."""
        if self._count and t <= self._t[(self._head - 1) % self.capacity]:
            return
        i = self._head
        self._t[i] = t
        self._power[i] = power_w
        self._energy[i] = energy_wh
        for phase in range(PHASES):
            self._current[phase][i] = current_a[phase] if phase < len(current_a) else 0.0
        self._head = (i + 1) % self.capacity
        self._count = min(self._count + 1, self.capacity)

    def _indices(self) -> Iterable[int]:
        start = (self._head - self._count) % self.capacity
        return ((start + k) % self.capacity for k in range(self._count))

    def latest(self) -> Sample | None:
        if not self._count:
            return None
        i = (self._head - 1) % self.capacity
        l1, l2, l3 = (self._current[p][i] for p in range(PHASES))
        return Sample(self._t[i], self._power[i], (l1, l2, l3), self._energy[i])

    def series(self, since: float = 0.0) -> dict[str, Any]:
        """Columns (oldest first) of the samples newer than `since`, rounded for JSON."""
        rows = [i for i in self._indices() if self._t[i] > since]
        return {
            "t": [round(self._t[i], 1) for i in rows],
            "power_w": [round(self._power[i], 1) for i in rows],
            "current_a": [[round(self._current[p][i], 2) for i in rows] for p in range(PHASES)],
            "energy_wh": [round(self._energy[i], 1) for i in rows],
        }

    @property
    def nbytes(self) -> int:
        arrays = [self._t, self._energy, self._power, *self._current]
        return sum(a.itemsize * len(a) for a in arrays)


def _num(value: float, digits: int) -> float | None:
    """JSON has no NaN: a missing value (stored as NaN) becomes null, a gap in the chart."""
    return None if math.isnan(value) else round(value, digits)


class SiteRing:
    """The site over time: mains per phase (NaN without a reading), the current the guns may
    share (site limit less other load, or the fallback), the site limit, allocation per gun."""

    def __init__(self, connectors: Iterable[int], capacity: int) -> None:
        self.capacity = capacity
        self._t = array("d", bytes(8 * capacity))
        self._mains = [array("f", bytes(4 * capacity)) for _ in range(PHASES)]
        self._available = array("f", bytes(4 * capacity))
        self._limit = array("f", bytes(4 * capacity))
        self._alloc = {c: array("f", bytes(4 * capacity)) for c in connectors}
        self._head = 0
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def append(
        self,
        t: float,
        mains_a: Sequence[float] | None,
        available_a: float,
        site_limit_a: float,
        allocation: dict[int, float],
    ) -> None:
        if self._count and t <= self._t[(self._head - 1) % self.capacity]:
            return
        i = self._head
        self._t[i] = t
        for phase in range(PHASES):
            reading = mains_a[phase] if mains_a is not None and phase < len(mains_a) else math.nan
            self._mains[phase][i] = reading
        self._available[i] = available_a
        self._limit[i] = site_limit_a
        for c, column in self._alloc.items():
            column[i] = allocation.get(c, 0.0)
        self._head = (i + 1) % self.capacity
        self._count = min(self._count + 1, self.capacity)

    def _rows(self, since: float) -> list[int]:
        start = (self._head - self._count) % self.capacity
        rows = ((start + k) % self.capacity for k in range(self._count))
        return [i for i in rows if self._t[i] > since]

    def _json(self, rows: list[int]) -> dict[str, Any]:
        return {
            "t": [round(self._t[i], 1) for i in rows],
            "mains_a": [[_num(self._mains[p][i], 2) for i in rows] for p in range(PHASES)],
            "available_a": [round(self._available[i], 2) for i in rows],
            "site_limit_a": [round(self._limit[i], 2) for i in rows],
            "allocation": {
                str(c): [round(col[i], 2) for i in rows] for c, col in sorted(self._alloc.items())
            },
        }

    def series(self, since: float = 0.0) -> dict[str, Any]:
        """Columns (oldest first) of the samples newer than `since`; null = no mains reading."""
        return self._json(self._rows(since))

    def latest(self) -> dict[str, Any] | None:
        """The newest sample in the shape of `series` with one row."""
        if not self._count:
            return None
        return self._json([(self._head - 1) % self.capacity])

    @property
    def nbytes(self) -> int:
        arrays = [self._t, *self._mains, self._available, self._limit, *self._alloc.values()]
        return sum(a.itemsize * len(a) for a in arrays)


class HistoryRing:
    """One `GunRing` per connector, all sampled at the same instants, and the site's ring."""

    def __init__(self, connectors: Iterable[int], capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self.guns = {c: GunRing(capacity) for c in connectors}
        self.site = SiteRing(self.guns, capacity)

    def record(
        self,
        connector: int,
        t: float,
        power_w: float,
        current_a: Sequence[float],
        energy_wh: float,
    ) -> None:
        ring = self.guns.get(connector)
        if ring is not None:
            ring.append(t, power_w, current_a, energy_wh)

    def series(self, since: float = 0.0) -> dict[str, dict[str, Any]]:
        """Every gun's columns, keyed by connector (a string, as JSON needs)."""
        return {str(c): ring.series(since) for c, ring in sorted(self.guns.items())}

    def latest(self) -> dict[str, list[float]]:
        """The newest sample of each gun as `[t, power_w, l1, l2, l3, energy_wh]`."""
        out: dict[str, list[float]] = {}
        for c, ring in sorted(self.guns.items()):
            s = ring.latest()
            if s is not None:
                out[str(c)] = [
                    round(s.t, 1),
                    round(s.power_w, 1),
                    *(round(a, 2) for a in s.current_a),
                    round(s.energy_wh, 1),
                ]
        return out

    @property
    def nbytes(self) -> int:
        return sum(ring.nbytes for ring in self.guns.values()) + self.site.nbytes
