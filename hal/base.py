"""Hardware seams of one charger board. `hal.sim` implements them in software; `hal.serial`
(MCU link over a UART/RS485) and `hal.modbus_meter` implement them on real hardware.

The evse runtime only ever talks to a `Board`. Everything here is async and owned by the
runtime's event loop; drivers that use threads cross into the loop themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from chargeport.errors import ChargeportError

__all__ = [
    "Board",
    "ConnectorLock",
    "Contactor",
    "ControlPilot",
    "HalError",
    "IdReader",
    "PhaseSwitch",
    "PowerMeter",
    "PowerMeterReading",
    "RcdMonitor",
    "SampleBlock",
    "Sampler",
    "TemperatureSensor",
]


class HalError(ChargeportError):
    """A hardware seam failed (device gone, no answer, bad data)."""


class ControlPilot(Protocol):
    """IEC 61851-1 control pilot: the EVSE sets the PWM, the EV loads the line."""

    async def set_duty(self, percent: float) -> None:
        """100 = steady +12 V (no PWM), 0 = steady -12 V (state F), 5..96.7 = PWM duty."""
        ...

    def levels(self) -> AsyncIterator[float]:
        """The measured positive plateau of the CP signal in volts, on every change."""
        ...

    async def diode_ok(self) -> bool:
        """False when the negative plateau shows the EV's diode is missing (IEC 61851-1 A.2)."""
        ...


class Contactor(Protocol):
    async def switch(self, closed: bool) -> None: ...

    async def feedback(self) -> bool:
        """The mirror contact: True when the main contacts are actually closed."""
        ...


class ConnectorLock(Protocol):
    async def lock(self, locked: bool) -> None: ...


@dataclass(frozen=True)
class SampleBlock:
    """Simultaneous samples of 3-phase voltage (V) and current (A), `rate_hz` per channel."""

    start_time: float  # clock time of the first sample
    rate_hz: int
    voltage: npt.NDArray[np.float64]  # shape (3, n)
    current: npt.NDArray[np.float64]  # shape (3, n)


class Sampler(Protocol):
    def blocks(self) -> AsyncIterator[SampleBlock]:
        """Consecutive sample blocks, gap-free, until the board closes."""
        ...


class TemperatureSensor(Protocol):
    async def read_c(self) -> float: ...


class RcdMonitor(Protocol):
    async def tripped(self) -> bool: ...

    async def reset(self) -> None: ...


@dataclass(frozen=True)
class PowerMeterReading:
    energy_wh: float
    power_w: float
    voltage_v: tuple[float, float, float]
    current_a: tuple[float, float, float]
    frequency_hz: float


class PowerMeter(Protocol):
    """An external (e.g. Modbus DIN-rail) meter; boards without one meter via the `Sampler`."""

    async def read(self) -> PowerMeterReading: ...


class IdReader(Protocol):
    """An RFID/NFC reader at the port."""

    def tags(self) -> AsyncIterator[str]:
        """Every id tag a driver presents, until the board closes."""
        ...


class PhaseSwitch(Protocol):
    """A 1/3-phase relay ahead of the contactor; switched only with the contactor open."""

    async def set_phases(self, phases: int) -> None: ...


@dataclass
class Board:
    """One board's hardware, as the evse runtime sees it."""

    cp: ControlPilot
    contactor: Contactor
    lock: ConnectorLock
    sampler: Sampler
    temperature: TemperatureSensor
    rcd: RcdMonitor
    power_meter: PowerMeter | None = None
    id_reader: IdReader | None = None
    phase_switch: PhaseSwitch | None = None
