"""Modbus RTU driver for a 3-phase DIN-rail meter with the Eastron SDM630 input-register map.

All quantities are IEEE-754 float32 in two input registers, high word first (SDM630 Modbus
protocol, "3X" registers). One request reads the whole 0x0000..0x0049 range so a reading is
consistent. pymodbus exceptions are translated to `HalError` here, at the seam.
"""

from __future__ import annotations

from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusException

from hal.base import HalError, PowerMeterReading

__all__ = ["SDM630", "ModbusMeter"]


class SDM630:
    """Input-register addresses (SDM630 v2 protocol, table of 3X registers)."""

    VOLTAGE_L1 = 0x0000  # V, then L2 at 0x0002, L3 at 0x0004
    CURRENT_L1 = 0x0006  # A, then 0x0008, 0x000A
    POWER_L1 = 0x000C  # W, then 0x000E, 0x0010
    TOTAL_POWER = 0x0034  # W, total system power
    FREQUENCY = 0x0046  # Hz
    IMPORT_ENERGY = 0x0048  # kWh, total import active energy
    SPAN = IMPORT_ENERGY + 2  # registers read per request, from 0x0000


class ModbusMeter:
    """`hal.base.PowerMeter` over a serial RS485 line (`port.meter_device`, `port.meter_unit`)."""

    def __init__(
        self,
        device: str,
        unit: int = 1,
        *,
        baudrate: int = 9600,
        timeout_s: float = 1.0,
        retries: int = 1,
    ) -> None:
        self._device = device
        self._unit = unit
        self._client = AsyncModbusSerialClient(
            device, baudrate=baudrate, timeout=timeout_s, retries=retries, reconnect_delay=0
        )

    async def async_open(self) -> None:
        """Open the serial port (raises `HalError` when it cannot)."""
        if not await self._client.connect():
            raise HalError(f"Modbus meter: cannot open port.meter_device {self._device!r}")

    async def async_close(self) -> None:
        self._client.close()

    async def read(self) -> PowerMeterReading:
        """One consistent reading of voltages, currents, power, frequency and energy."""
        try:
            rr = await self._client.read_input_registers(0, count=SDM630.SPAN, device_id=self._unit)
        except ModbusException as exc:
            raise HalError(
                f"Modbus meter unit {self._unit} on {self._device}: no answer "
                f"(check port.meter_unit, wiring and baud rate): {exc}"
            ) from exc
        if rr.isError():
            raise HalError(f"Modbus meter unit {self._unit} on {self._device}: error reply {rr}")

        def f32(address: int) -> float:
            value = self._client.convert_from_registers(
                rr.registers[address : address + 2], self._client.DATATYPE.FLOAT32
            )
            return float(value)  # type: ignore[arg-type]

        def three(address: int) -> tuple[float, float, float]:
            return (f32(address), f32(address + 2), f32(address + 4))

        return PowerMeterReading(
            energy_wh=f32(SDM630.IMPORT_ENERGY) * 1000.0,
            power_w=f32(SDM630.TOTAL_POWER),
            voltage_v=three(SDM630.VOLTAGE_L1),
            current_a=three(SDM630.CURRENT_L1),
            frequency_hz=f32(SDM630.FREQUENCY),
        )
