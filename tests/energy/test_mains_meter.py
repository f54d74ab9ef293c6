"""The Modbus meter at the grid connection feeds the energy manager (issue 15): readings keep
the mains status live; a meter that goes silent is logged once and the manager falls back
after energy.mains_max_age_s; readings that return are logged once and restore it.
A real pymodbus simulated SDM630 on a socat pty pair; a ManualClock for the age."""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import AsyncIterator

import pytest
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from chargeport.clock import ManualClock
from chargeport.config import EnergyConfig
from chargeport.fake_port import FakePort
from chargeport.port import PortInfo
from hal.modbus_meter import ModbusMeter
from hal.register_map import load_map
from main_node.energy import EnergyManager
from main_node.energy_policy import MainsStatus
from main_node.mains_meter import MainsMeterPoller

pytestmark = pytest.mark.integration

UNIT = 3
AMPS = (21.0, 19.5, 20.25)


def sdm630(amps: tuple[float, float, float]) -> SimDevice:
    values = {0x00: 230.0, 0x02: 231.0, 0x04: 229.0, 0x06: amps[0], 0x08: amps[1]}
    values |= {0x0A: amps[2], 0x34: 13800.0, 0x46: 50.0, 0x48: 4321.0}
    regs = [0] * 0x50
    for address, value in values.items():
        regs[address], regs[address + 1] = struct.unpack(">HH", struct.pack(">f", value))
    return SimDevice(UNIT, simdata=[SimData(0, values=regs, datatype=DataType.REGISTERS)])


@pytest.fixture
async def manager() -> AsyncIterator[tuple[EnergyManager, ManualClock]]:
    clock = ManualClock()
    ports = {1: FakePort(PortInfo(1, "MAIN", "1.0", 32.0, 3), clock=clock)}
    config = EnergyConfig(site_limit_a=40.0, mains_max_age_s=10.0, mains_fallback_a=6.0)
    mgr = EnergyManager(ports, config, clock)
    await mgr.start()
    yield mgr, clock
    await mgr.stop()


async def until_status(mgr: EnergyManager, status: MainsStatus) -> None:
    async with asyncio.timeout(5):
        while mgr.snapshot().mains_status is not status:
            await asyncio.sleep(0.01)


async def test_meter_feeds_then_falls_silent_then_returns(
    pty_pair: tuple[str, str],
    manager: tuple[EnergyManager, ManualClock],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="main_node.mains_meter")
    mgr, clock = manager
    meter = ModbusMeter(pty_pair[1], UNIT, register_map=load_map("sdm630"), timeout_s=0.3)
    poller = MainsMeterPoller(meter, mgr, clock=clock, connect=meter.async_open)
    server = ModbusSerialServer(sdm630(AMPS), port=pty_pair[0], baudrate=19200)
    await server.serve_forever(background=True)
    try:
        assert await poller.poll_once()
        await until_status(mgr, MainsStatus.LIVE)
        assert mgr.snapshot().mains_a == pytest.approx(AMPS)

        await server.shutdown()  # type: ignore[no-untyped-call]
        for _ in range(3):
            assert not await poller.poll_once()
        silent = [r for r in caplog.records if "no reading" in r.getMessage()]
        assert len(silent) == 1  # once per reason, not at every poll
        clock.advance(10.5)  # past energy.mains_max_age_s without a reading
        await until_status(mgr, MainsStatus.STALE)

        server = ModbusSerialServer(sdm630(AMPS), port=pty_pair[0], baudrate=19200)
        await server.serve_forever(background=True)
        async with asyncio.timeout(10):
            while not await poller.poll_once():
                await asyncio.sleep(0.05)
        await until_status(mgr, MainsStatus.LIVE)
        assert any("readings again" in r.getMessage() for r in caplog.records)
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]
        await meter.async_close()
