"""The clock seam: evse machines, metering and the simulated EV take time from a `Clock`.

`ScaledClock(speed)` runs simulated time N times faster than real time; `ManualClock` is
advanced by tests, never slept on.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["Clock", "ManualClock", "RealClock", "ScaledClock"]


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock (unix) seconds, for timestamps."""
        ...

    def monotonic(self) -> float:
        """Seconds for measuring intervals."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    @property
    def speed(self) -> float:
        """Simulated seconds per real second."""
        ...


class RealClock:
    speed = 1.0

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ScaledClock:
    """Simulated time that runs `speed` times faster than real time, from now on."""

    def __init__(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._real0 = time.monotonic()
        self._wall0 = time.time()

    def monotonic(self) -> float:
        return self._real0 + (time.monotonic() - self._real0) * self.speed

    def time(self) -> float:
        return self._wall0 + (time.monotonic() - self._real0) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


class ManualClock:
    """A clock tests advance by hand; `sleep` waits until `advance` has passed the deadline."""

    speed = 1.0

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._start = start
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now - self._start

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._now + seconds, fut))
        await fut

    @property
    def sleepers(self) -> int:
        """Tasks waiting in `sleep` now: a test advances once the timer it means is armed."""
        return sum(not fut.done() for _, fut in self._waiters)

    def advance(self, seconds: float) -> None:
        self._now += seconds
        due = [(t, f) for t, f in self._waiters if t <= self._now]
        self._waiters = [(t, f) for t, f in self._waiters if t > self._now]
        for _, fut in sorted(due, key=lambda w: w[0]):
            if not fut.done():
                fut.set_result(None)
