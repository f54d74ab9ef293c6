"""Test rig for evse runtime tests: a SimBoard and an EvseRuntime on a ManualClock."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

from chargeport.clock import ManualClock
from chargeport.config import PortConfig
from chargeport.port import PortEvent, SessionEvent, SessionEventType
from evse.runtime import EvseRuntime, RuntimeTiming
from hal.sim import SimBoard

RATE = 2_000  # 40 samples per mains cycle: enough for metering, cheap for tests


@dataclass
class Rig:
    clock: ManualClock
    sim: SimBoard
    rt: EvseRuntime
    events: list[PortEvent] = field(default_factory=list)

    async def run(self, seconds: float, step: float = 0.05) -> None:
        """Advance simulated time in steps, letting every task react."""
        for _ in range(round(seconds / step)):
            self.clock.advance(step)
            for _ in range(8):
                await asyncio.sleep(0)

    async def settle(self) -> None:
        for _ in range(8):
            await asyncio.sleep(0)

    def session_types(self) -> list[SessionEventType]:
        return [e.body.type for e in self.events if isinstance(e.body, SessionEvent)]

    def bodies(self, kind: type) -> list[object]:
        return [e.body for e in self.events if isinstance(e.body, kind)]


async def make_rig(
    config: PortConfig | None = None, start_enabled: bool = True, power_meter: bool = False
) -> Rig:
    clock = ManualClock()
    sim = SimBoard(clock=clock, sample_rate_hz=RATE, block_s=0.1, power_meter=power_meter)
    counter = itertools.count(1)
    rt = EvseRuntime(
        sim.board,
        config or PortConfig(sample_rate_hz=RATE),
        connector_id=1,
        serial="SIM-1",
        firmware_version="1.0.0",
        clock=clock,
        id_factory=lambda: f"id{next(counter)}",
        start_enabled=start_enabled,
        timing=RuntimeTiming(debounce_s=0.05, housekeeping_s=0.05, over_current_allowed_s=2.0),
    )
    return Rig(clock, sim, rt)
