"""Modbus RTU driver for a DIN-rail meter, driven by a register map (`hal.register_map`).

The map (`port.meter_model`: `sdm630`, `sdm72`, `abb_b23` or a map file) says which blocks of
registers to read and how to decode them; each block is one request. A reading that is not
plausible for a mains meter raises `HalError` naming the map, so a map that does not fit the
meter is noticed at the first reading. pymodbus exceptions are translated to `HalError` here,
at the seam.
"""

from __future__ import annotations

from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusException

from hal.base import HalError, PowerMeterReading
from hal.register_map import RegisterMap, RegisterMapError, load_map, plausibility_problem

__all__ = ["SDM630", "ModbusMeter"]


class SDM630:
    """Addresses of the SDM630 map (`hal/meter_maps/sdm630.toml`), for tests and tools."""

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
        register_map: RegisterMap | None = None,
        phases: int = 3,
        baudrate: int = 9600,
        timeout_s: float = 1.0,
        retries: int = 1,
    ) -> None:
        self._device = device
        self._unit = unit
        self._map = register_map or load_map("sdm630")
        self._phases = phases
        self._client = AsyncModbusSerialClient(
            device, baudrate=baudrate, timeout=timeout_s, retries=retries, reconnect_delay=0
        )

    @property
    def register_map(self) -> RegisterMap:
        return self._map

    async def async_open(self) -> None:
        """Open the serial port (raises `HalError` when it cannot)."""
        if not await self._client.connect():
            raise HalError(f"Modbus meter: cannot open port.meter_device {self._device!r}")

    async def async_close(self) -> None:
        self._client.close()

    async def read(self) -> PowerMeterReading:
        """One reading of voltages, currents, power, frequency and energy (one request per
        block of the map, so values within a block are consistent)."""
        where = f"Modbus meter unit {self._unit} on {self._device}"
        registers: dict[int, int] = {}
        for start, count in self._map.blocks:
            values = await self._read(start, count)
            registers.update(zip(range(start, start + count), values, strict=True))
        try:
            reading = self._map.decode(registers, self._phases)
        except RegisterMapError as exc:
            raise HalError(f"{where} (map {self._map.name!r}): {exc}") from None
        problem = plausibility_problem(reading, self._phases)
        if problem is not None:
            raise HalError(
                f"{where}: {problem}; the register map {self._map.name!r} "
                f"(port.meter_model) does not fit this meter"
            )
        return reading

    async def _read(self, start: int, count: int) -> list[int]:
        where = f"Modbus meter unit {self._unit} on {self._device}"
        read = (
            self._client.read_input_registers
            if self._map.function == "input"
            else self._client.read_holding_registers
        )
        try:
            rr = await read(start, count=count, device_id=self._unit)
        except ModbusException as exc:
            raise HalError(
                f"{where}: no answer (check port.meter_unit, wiring and baud rate): {exc}"
            ) from exc
        if rr.isError():
            raise HalError(
                f"{where}: error reply {rr} to reading {count} registers at {start:#06x} "
                f"(map {self._map.name!r}: is port.meter_model right?)"
            )
        registers: list[int] = list(rr.registers)
        if len(registers) < count:
            raise HalError(f"{where}: short reply ({len(registers)} of {count} registers)")
        return registers[:count]
