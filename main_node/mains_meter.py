"""The building's meter at the grid connection, polled over Modbus, feeding the energy manager.

Theory of operation
  Every `interval_s` the poller reads the meter (a `hal.base.PowerMeter`: the Modbus driver with
  a register map, `energy.mains_meter_model`) and hands the per-phase currents to the energy
  manager, and in PV surplus mode the signed power at the grid connection too (> 0 import).
  It never decides what a stale reading means: a meter that stops answering simply stops
  feeding, and the manager's own age rule (`energy.mains_max_age_s`) falls back to the safe
  limit. Failures are logged when their reason changes and once when readings return, never
  at every poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from chargeport.clock import Clock
from hal.base import HalError, PowerMeter

__all__ = ["MainsFeed", "MainsMeterPoller"]

log = logging.getLogger(__name__)


class MainsFeed(Protocol):
    """What the poller feeds (the energy manager)."""

    def set_mains_reading(self, currents_a: tuple[float, float, float]) -> None: ...

    def set_grid_power(self, watts: float) -> None: ...


class MainsMeterPoller:
    """Poll `meter` and feed `feed`; `run()` until cancelled."""

    def __init__(
        self,
        meter: PowerMeter,
        feed: MainsFeed,
        *,
        clock: Clock,
        interval_s: float = 1.0,
        grid_power: bool = False,
        where: str = "mains meter",
        connect: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._meter = meter
        # Opens the meter's line (a USB RS485 adapter may appear after boot): retried at every
        # poll until it works, so a missing meter is a fallback, not a dead main.
        self._connect = connect
        self._feed = feed
        self._clock = clock
        self._interval_s = interval_s
        self._grid_power = grid_power
        self._where = where
        self.last_error = ""
        self.readings = 0

    async def poll_once(self) -> bool:
        """One reading handed on; False (and logged on a new reason) when none could be had."""
        try:
            async with asyncio.timeout(max(self._interval_s * 5, 5.0)):
                if self._connect is not None:
                    await self._connect()
                    self._connect = None
                reading = await self._meter.read()
        except (HalError, OSError, TimeoutError) as exc:
            why = str(exc) or "no answer in time"
            if why != self.last_error:
                log.warning(
                    "%s: no reading (%s); the energy manager falls back once the last reading "
                    "is older than energy.mains_max_age_s",
                    self._where,
                    why,
                )
            self.last_error = why
            return False
        try:
            self._feed.set_mains_reading(reading.current_a)
            if self._grid_power:
                self._feed.set_grid_power(reading.power_w)
        except ValueError as exc:  # the manager refuses implausible values: same as no reading
            why = f"refused by the energy manager: {exc}"
            if why != self.last_error:
                log.warning("%s: %s", self._where, why)
            self.last_error = why
            return False
        if self.last_error:
            log.info("%s: readings again", self._where)
            self.last_error = ""
        self.readings += 1
        return True

    async def run(self) -> None:
        while True:
            await self.poll_once()
            await self._clock.sleep(self._interval_s)
