"""Build a board's hardware from its `[port]` config: the simulated board, or the safety MCU
behind a serial link, optionally with an external Modbus meter. Main and satellites share it."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator

from chargeport.clock import Clock
from chargeport.config import PortConfig
from hal.base import Board
from hal.sim import SimBoard

__all__ = ["open_board"]


@contextlib.asynccontextmanager
async def open_board(
    config: PortConfig, clock: Clock, *, seed: int = 0
) -> AsyncIterator[tuple[Board, SimBoard | None]]:
    """Yield (board, simulated board or None); everything opened here is closed on exit."""
    async with contextlib.AsyncExitStack() as stack:
        sim: SimBoard | None = None
        if config.hal == "sim":
            sim = SimBoard(
                clock=clock,
                sample_rate_hz=config.sample_rate_hz,
                seed=seed,
                max_current_a=config.max_current_a,
                phases=config.phases,
            )
            board = sim.board
        else:
            from hal.mculink.board import open_mcu_board

            board = await stack.enter_async_context(
                open_mcu_board(
                    config.serial_device,
                    config.link_key_file,
                    clock=clock,
                    sample_rate_hz=config.sample_rate_hz,
                )
            )
        if config.meter == "modbus":
            from hal.modbus_meter import ModbusMeter

            meter = ModbusMeter(config.meter_device, unit=config.meter_unit)
            await meter.async_open()
            stack.push_async_callback(meter.async_close)
            board = dataclasses.replace(board, power_meter=meter)
        yield board, sim
