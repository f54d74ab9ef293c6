"""Integration: the SDM630-map Modbus RTU driver against a pymodbus simulated meter on a pty."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from hal.base import HalError
from hal.modbus_meter import SDM630, ModbusMeter

pytestmark = pytest.mark.integration

UNIT = 7


def meter_registers() -> list[float]:
    """The 0x0000..0x0049 input registers as 37 float32 values (index = address / 2)."""
    values = [0.0] * (SDM630.SPAN // 2)
    for k, v in enumerate((231.5, 229.0, 230.2)):
        values[SDM630.VOLTAGE_L1 // 2 + k] = v
    for k, v in enumerate((16.0, 15.5, 14.25)):
        values[SDM630.CURRENT_L1 // 2 + k] = v
    for k, v in enumerate((3667.0, 3510.0, 3250.0)):
        values[SDM630.POWER_L1 // 2 + k] = v
    values[SDM630.TOTAL_POWER // 2] = 10427.0
    values[SDM630.FREQUENCY // 2] = 49.95
    values[SDM630.IMPORT_ENERGY // 2] = 1234.5
    return values


@pytest.fixture
async def server(pty_pair: tuple[str, str]) -> AsyncIterator[str]:
    meter_port, host_port = pty_pair
    device = SimDevice(
        UNIT, simdata=[SimData(0, values=meter_registers(), datatype=DataType.FLOAT32)]
    )
    srv = ModbusSerialServer(device, port=meter_port, baudrate=19200)
    await srv.serve_forever(background=True)
    try:
        yield host_port
    finally:
        await srv.shutdown()  # type: ignore[no-untyped-call]


async def test_reads_voltages_currents_power_energy(server: str) -> None:
    meter = ModbusMeter(server, UNIT, baudrate=19200)
    await meter.async_open()
    try:
        reading = await meter.read()
    finally:
        await meter.async_close()
    assert reading.voltage_v == pytest.approx((231.5, 229.0, 230.2), abs=1e-3)
    assert reading.current_a == pytest.approx((16.0, 15.5, 14.25), abs=1e-3)
    assert reading.power_w == pytest.approx(10427.0)
    assert reading.frequency_hz == pytest.approx(49.95, abs=1e-4)
    assert reading.energy_wh == pytest.approx(1_234_500.0, rel=1e-6)


async def test_silent_device_maps_to_hal_error(pty_pair: tuple[str, str]) -> None:
    """Nobody on the line answers: the ModbusIOException becomes a one-line HalError."""
    meter = ModbusMeter(pty_pair[1], UNIT, baudrate=19200, timeout_s=0.2, retries=0)
    await meter.async_open()
    try:
        with pytest.raises(HalError, match=r"unit 7 .*no answer"):
            await meter.read()
    finally:
        await meter.async_close()


async def test_exception_reply_maps_to_hal_error(server: str) -> None:
    """pymodbus' simulator answers an unknown unit with an exception reply (a real bus is
    silent); either way the caller gets a HalError naming the unit."""
    meter = ModbusMeter(server, UNIT + 1, baudrate=19200, timeout_s=0.2, retries=0)
    await meter.async_open()
    try:
        with pytest.raises(HalError, match=r"unit 8 .*(error reply|no answer)"):
            await meter.read()
    finally:
        await meter.async_close()


async def test_missing_port_maps_to_hal_error(tmp_path: Path) -> None:
    meter = ModbusMeter(str(tmp_path / "nope"), UNIT)
    with pytest.raises(HalError, match="cannot open"):
        await meter.async_open()
