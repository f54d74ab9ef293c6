"""Kit for "hal on hardware" tests: an EvseRuntime over `hal.factory.open_board` on real ptys."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from waiting import until as eventually

from chargeport.clock import RealClock
from chargeport.config import PortConfig
from chargeport.port import (
    ErrorCode,
    MeterValue,
    PortErrorEvent,
    PortEvent,
    SessionEvent,
    SessionEventType,
)
from evse.runtime import EvseRuntime, RuntimeTiming
from hal.base import Board
from hal.factory import open_board
from hal.sim import SimBoard

__all__ = ["HwRig", "eventually", "open_rig"]

# Shrunk so a session runs in well under a second of real time; the logic is unchanged.
TIMING = RuntimeTiming(
    debounce_s=0.02, housekeeping_s=0.02, contactor_settle_s=0.1, over_current_allowed_s=5.0
)


@dataclass
class HwRig:
    board: Board
    sim: SimBoard | None
    rt: EvseRuntime
    events: list[PortEvent] = field(default_factory=list)

    def session_types(self) -> list[SessionEventType]:
        return [e.body.type for e in self.events if isinstance(e.body, SessionEvent)]

    def sessions(self, kind: SessionEventType) -> list[SessionEvent]:
        bodies = [e.body for e in self.events if isinstance(e.body, SessionEvent)]
        return [b for b in bodies if b.type is kind]

    def meters(self) -> list[MeterValue]:
        return [e.body for e in self.events if isinstance(e.body, MeterValue)]

    def errors(self, code: ErrorCode | None = None) -> list[PortErrorEvent]:
        return [
            e.body
            for e in self.events
            if isinstance(e.body, PortErrorEvent) and (code is None or e.body.code is code)
        ]

    async def until_session(self, kind: SessionEventType) -> None:
        await eventually(lambda: kind in self.session_types())


@contextlib.asynccontextmanager
async def open_rig(config: PortConfig) -> AsyncIterator[HwRig]:
    """Board from the factory, runtime started, every event collected; all closed on exit."""
    counter = itertools.count(1)
    async with open_board(config, RealClock()) as (board, sim):
        rt = EvseRuntime(
            board,
            config,
            connector_id=1,
            serial="HW-1",
            firmware_version="1.0.0",
            id_factory=lambda: f"id{next(counter)}",
            timing=TIMING,
        )
        rig = HwRig(board, sim, rt)
        sub = rt.port.events()

        async def collect() -> None:
            async for event in sub:
                rig.events.append(event)

        collector = asyncio.create_task(collect(), name="hw-collector")
        try:
            await rt.start()
            yield rig
        finally:
            await rt.stop()  # closes the bus, which ends the collector
            await collector
