"""Build a board's hardware from its `[port]` config: the simulated board, the safety MCU
behind a serial link, or a vendor's driver (entry point group `chargeport.hal`), optionally
with an external Modbus meter and a PN532 RFID reader. Main and satellites share it."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator

from chargeport.clock import Clock
from chargeport.config import PortConfig
from chargeport.errors import ChargeportError
from hal.base import Board, HalError
from hal.sim import SimBoard

__all__ = ["open_board"]


@contextlib.asynccontextmanager
async def open_board(
    config: PortConfig, clock: Clock, *, seed: int = 0
) -> AsyncIterator[tuple[Board, SimBoard | None]]:
    """Yield (board, simulated board or None); everything opened here is closed on exit.

    A device or key file that cannot be opened raises `ChargeportError` (one line)."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            board, sim = await _async_open(config, clock, seed, stack)
        except HalError as exc:
            # The seam to the CLI: a device or key the user named is wrong; say which, no
            # traceback (chargeport_cli.cli prints a ChargeportError as one line, exits non-zero).
            raise ChargeportError(f"port (hal = {config.hal!r}): {exc}") from exc
        yield board, sim


async def _async_open(
    config: PortConfig, clock: Clock, seed: int, stack: contextlib.AsyncExitStack
) -> tuple[Board, SimBoard | None]:
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
    elif config.hal != "serial":
        from hal.drivers import load_driver  # a vendor's board, from its package

        board = await stack.enter_async_context(load_driver(config.hal)(config, clock))
    else:
        from hal.mculink.board import open_mcu_board

        if not config.link_key_file:
            raise HalError("port.link_key_file: required when port.hal = 'serial'")
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
        from hal.register_map import load_map

        meter = ModbusMeter(
            config.meter_device,
            unit=config.meter_unit,
            register_map=load_map(config.meter_model),
            phases=config.phases,
        )
        await meter.async_open()
        stack.push_async_callback(meter.async_close)
        board = dataclasses.replace(board, power_meter=meter)
    if config.rfid_device:
        from hal.pn532 import Pn532Reader

        reader = Pn532Reader(config.rfid_device)
        await reader.async_open()
        stack.push_async_callback(reader.async_close)
        board = dataclasses.replace(board, id_reader=reader)
    return board, sim
