"""A bounded ring of the satellite's recent events, numbered 1, 2, ... per satellite boot.

The main resumes a stream with the last seq it saw; the ring answers with every later event it
still holds, or tells that some were already dropped (the main must then re-sync from status).
Pure and synchronous: the agent owns waiting and I/O.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Generic, TypeVar

from satellite.errors import SatelliteError

__all__ = ["EventRing", "ReplayGap"]

T = TypeVar("T")


class ReplayGap(SatelliteError):
    """Events after the requested seq have already left the ring."""


class EventRing(Generic[T]):
    """Append items, get (seq, item) back; replay everything after a seq still held."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._items: deque[tuple[int, T]] = deque(maxlen=capacity)
        self._last = 0

    @property
    def last_seq(self) -> int:
        """The seq of the newest item (0 when empty)."""
        return self._last

    @property
    def first_seq(self) -> int:
        """The seq of the oldest item still held (last_seq + 1 when empty)."""
        return self._items[0][0] if self._items else self._last + 1

    def append(self, item: T) -> int:
        """Store `item`; returns its seq."""
        self._last += 1
        self._items.append((self._last, item))
        return self._last

    def after(self, seq: int) -> list[tuple[int, T]]:
        """Every item with a seq > `seq`, oldest first; `ReplayGap` when some were dropped."""
        if seq >= self._last:
            return []
        if seq + 1 < self.first_seq:
            raise ReplayGap(f"events {seq + 1}..{self.first_seq - 1} are no longer held")
        start = seq + 1 - self.first_seq
        return list(itertools.islice(self._items, start, None))
