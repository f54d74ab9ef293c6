"""A simulated board: a `hal.base.Board` whose signals come from a simulated EV and physics.

The pilot level follows the EV's IEC 61851-1 state (A 12 V, B 9 V, C 6 V, D 3 V) and the duty
the EVSE sets (0 % -> -12 V, state F); the contactor has a mirror contact; the sampler produces
3-phase 230 V 50 Hz blocks carrying the current the EV draws (regulated to the PWM offer or
fixed), with noise and a power factor; a first-order thermal model heats the connector with
I^2. Faults can be injected by name (`FAULTS`). With `power_meter=True` the board meters through
a simulated external meter (like a Modbus DIN-rail meter) instead of the sampler; with
`phase_switch=True` a 1/3-phase relay feeds the EV 1 or 3 phases (a switch while the contacts
are closed is counted in `unsafe_phase_switches`: a vehicle-unsafe sequence).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable

from chargeport.clock import Clock
from hal.base import Board, HalError, PowerMeterReading, SampleBlock
from hal.waveform import WaveformSource

__all__ = ["FAULTS", "SimBoard", "SimulatedEv"]

FAULTS = (
    "diode_fault",
    "welded_contactor",
    "stuck_open_contactor",
    "rcd_trip",
    "over_temperature",
    "cp_short",
    "meter_failure",  # the external power meter stops answering (power_meter=True boards)
)

_EV_LEVELS = {"B": 9.0, "C": 6.0, "D": 3.0}
_AMBIENT_C = 25.0
_THERMAL_TAU_S = 600.0  # connector + cable heat up with a ten-minute time constant
_FULL_LOAD_RISE_K = 30.0  # steady-state rise at the board's maximum current
_OVER_TEMPERATURE_K = 55.0  # what the over_temperature fault adds (a blocked vent, sun)


def _offer(duty: float) -> float:
    # Local copy of IEC 61851-1 table A.7 so the hal does not depend on evse.
    if duty < 8.0 or duty > 97.0:
        return 0.0
    if duty <= 85.0:
        return max(6.0, duty * 0.6)
    return min(80.0, (duty - 64.0) * 2.5)


class SimulatedEv:
    """The car (and its driver): plug in / out, request or stop energy, present an id tag."""

    def __init__(self, board: SimBoard) -> None:
        self._board = board
        self.plugged = False
        self.requesting = False  # state C (or D with `ventilation`)
        self.ventilation = False
        self.amps = 0.0
        self.phases = 3
        self.regulated = True
        self.overshoot_a = 0.0  # a regulated EV that misreads the duty draws this much more

    @property
    def board(self) -> SimBoard:
        return self._board

    @property
    def state(self) -> str:
        """The state the EV presents on the pilot: A, B, C or D."""
        if not self.plugged:
            return "A"
        if not self.requesting:
            return "B"
        return "D" if self.ventilation else "C"

    @property
    def offered_a(self) -> float:
        """The current the EVSE offers through the PWM duty."""
        return _offer(self._board.duty)

    def plug_in(self) -> None:
        self.plugged = True
        self._board._changed()

    def unplug(self) -> None:
        self.plugged = False
        self.requesting = False
        self._board._changed()

    def draw(
        self,
        amps: float,
        phases: int = 3,
        *,
        regulated: bool = True,
        ventilation: bool = False,
        overshoot_a: float | None = None,
    ) -> None:
        """Request energy (state C) and draw `amps` per phase, capped by the offer if regulated
        (plus `overshoot_a`, kept when not given: an EV that reads the duty too high)."""
        if phases not in (1, 2, 3):
            raise ValueError(f"phases must be 1, 2 or 3, got {phases}")
        self.amps, self.phases, self.regulated = amps, phases, regulated
        if overshoot_a is not None:
            self.overshoot_a = overshoot_a
        self.ventilation = ventilation
        self.requesting = True
        self._board._changed()

    def pause(self) -> None:
        """Stop requesting energy (back to state B)."""
        self.requesting = False
        self._board._changed()

    def swipe(self, id_tag: str) -> None:
        """The driver presents an RFID card."""
        for queue in list(self._board._tag_queues):
            queue.put_nowait(id_tag)

    async def wait_pwm(self) -> None:
        """Until the EVSE oscillates the pilot with an AC offer (EVerest `wait_pwm`)."""
        await self._board.wait_for(lambda: self.offered_a > 0.0)


class SimBoard:
    """Builds a `hal.base.Board` from simulated parts; `ev` and `inject` drive it."""

    def __init__(
        self,
        *,
        clock: Clock,
        sample_rate_hz: int = 10_000,
        block_s: float = 0.1,
        seed: int = 0,
        max_current_a: float = 32.0,
        phases: int = 3,
        power_meter: bool = False,
        phase_switch: bool = False,
    ) -> None:
        self.clock = clock
        self.sample_rate_hz = sample_rate_hz
        self.block_samples = max(1, round(sample_rate_hz * block_s))
        self.max_current_a = max_current_a
        self.phases = phases
        self.power_factor = 0.99
        self.waveform = WaveformSource(rate_hz=sample_rate_hz, seed=seed)
        self.ev = SimulatedEv(self)
        self.duty = 100.0
        self.contactor_commanded = False
        self.contactor_closed = False  # the real contacts (the mirror contact reads these)
        self.locked = False
        self.phases_fed = phases  # what the phase relay feeds (1 or 3)
        self.unsafe_phase_switches = 0
        self.faults: set[str] = set()
        self.rcd_latched = False
        self.ambient_c = _AMBIENT_C
        self._temperature_c = _AMBIENT_C
        self._thermal_at = clock.monotonic()
        self._level = 12.0
        self._level_queues: set[asyncio.Queue[float | None]] = set()
        self._tag_queues: set[asyncio.Queue[str | None]] = set()
        self._waiters: list[asyncio.Event] = []
        self._closed = False
        self.board = Board(
            cp=_Cp(self),
            contactor=_Contactor(self),
            lock=_Lock(self),
            sampler=_Sampler(self),
            temperature=_Temperature(self),
            rcd=_Rcd(self),
            id_reader=_IdReader(self),
            power_meter=_PowerMeter(self) if power_meter else None,
            phase_switch=_PhaseSwitch(self) if phase_switch else None,
        )

    # -- test and scenario handles

    def inject(self, fault: str, active: bool = True) -> None:
        """Start (or end) a fault: one of `FAULTS`."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {', '.join(FAULTS)}")
        self._thermal_update()
        (self.faults.add if active else self.faults.discard)(fault)
        if fault == "rcd_trip" and active:
            self.rcd_latched = True  # an RCD latches until it is reset
        self._apply_contactor()
        self._changed()

    @property
    def level(self) -> float:
        """The pilot's positive plateau (V) right now."""
        return self._level

    def currents(self) -> tuple[float, float, float]:
        """RMS current the EV draws on L1..L3 right now."""
        ev = self.ev
        if (
            not ev.plugged
            or not ev.requesting
            or not self.contactor_closed
            or self.rcd_latched
            or "cp_short" in self.faults
        ):
            return (0.0, 0.0, 0.0)
        amps = ev.amps
        if ev.regulated:
            offer = ev.offered_a
            amps = min(amps, offer + ev.overshoot_a) if offer > 0 else 0.0
        per = [amps if i < min(ev.phases, self.phases, self.phases_fed) else 0.0 for i in range(3)]
        return (per[0], per[1], per[2])

    def temperature_c(self) -> float:
        """Connector temperature now (first-order model plus an injected over-temperature)."""
        self._thermal_update()
        extra = _OVER_TEMPERATURE_K if "over_temperature" in self.faults else 0.0
        return self._temperature_c + extra

    def set_temperature(self, celsius: float) -> None:
        """Put the connector at `celsius` now (it then follows the thermal model)."""
        self._thermal_update()
        self._temperature_c = celsius

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Until `predicate()` is true; re-checked on every change of the board."""
        while not predicate():
            event = asyncio.Event()
            self._waiters.append(event)
            await event.wait()

    def close(self) -> None:
        """End every stream (levels, blocks, tags)."""
        self._closed = True
        for q in list(self._level_queues):
            q.put_nowait(None)
        for t in list(self._tag_queues):
            t.put_nowait(None)
        self._changed()

    # -- internals

    def _thermal_update(self) -> None:
        now = self.clock.monotonic()
        dt = max(0.0, now - self._thermal_at)
        self._thermal_at = now
        i = max(self.currents())
        target = self.ambient_c + _FULL_LOAD_RISE_K * (i / self.max_current_a) ** 2
        self._temperature_c = target + (self._temperature_c - target) * math.exp(
            -dt / _THERMAL_TAU_S
        )

    def _apply_contactor(self) -> None:
        if "welded_contactor" in self.faults and self.contactor_closed:
            return  # welded contacts stay closed whatever the coil does
        if "stuck_open_contactor" in self.faults and self.contactor_commanded:
            self.contactor_closed = False
            return
        self.contactor_closed = self.contactor_commanded

    def _compute_level(self) -> float:
        if self.duty <= 0.0:
            return -12.0  # state F: the EVSE holds the pilot at -12 V
        if "cp_short" in self.faults:
            return 0.0
        return _EV_LEVELS.get(self.ev.state, 12.0)

    def _changed(self) -> None:
        self._thermal_update()
        level = self._compute_level()
        if level != self._level:
            self._level = level
            for q in list(self._level_queues):
                q.put_nowait(level)
        waiters, self._waiters = self._waiters, []
        for event in waiters:
            event.set()


class _Cp:
    def __init__(self, sim: SimBoard) -> None:
        self._sim = sim

    async def set_duty(self, percent: float) -> None:
        self._sim.duty = percent
        self._sim._changed()

    async def levels(self) -> AsyncIterator[float]:
        queue: asyncio.Queue[float | None] = asyncio.Queue()
        self._sim._level_queues.add(queue)
        try:
            yield self._sim.level
            while (level := await queue.get()) is not None:
                yield level
        finally:
            self._sim._level_queues.discard(queue)

    async def diode_ok(self) -> bool:
        return not (self._sim.ev.plugged and "diode_fault" in self._sim.faults)


class _Contactor:
    def __init__(self, sim: SimBoard) -> None:
        self._sim = sim

    async def switch(self, closed: bool) -> None:
        self._sim._thermal_update()
        self._sim.contactor_commanded = closed
        self._sim._apply_contactor()
        self._sim._changed()

    async def feedback(self) -> bool:
        return self._sim.contactor_closed


class _Lock:
    def __init__(self, sim: SimBoard) -> None:
        self._sim = sim

    async def lock(self, locked: bool) -> None:
        self._sim.locked = locked


class _Sampler:
    def __init__(self, sim: SimBoard) -> None:
        self._sim = sim

    async def blocks(self) -> AsyncIterator[SampleBlock]:
        sim = self._sim
        n = sim.block_samples
        span = n / sim.sample_rate_hz
        start = sim.clock.monotonic()
        while not sim._closed:
            # Gap-free: each block starts where the last ended; a late loop catches up.
            # 1 us early is fine and absorbs float rounding of clocks far from their epoch.
            await sim.clock.sleep(start + span - sim.clock.monotonic() - 1e-6)
            if sim._closed:
                return
            sim._thermal_update()
            yield sim.waveform.block(start, n, sim.currents(), sim.power_factor)
            start += span


class _Temperature:
    def __init__(self, sim: SimBoard) -> None:
        self._sim = sim

    async def read_c(self) -> float:
        return self._sim.temperature_c()


class _Rcd:
    def __init__(self, sim: SimBoard) -> None:
        self._sim = sim

    async def tripped(self) -> bool:
        return self._sim.rcd_latched

    async def reset(self) -> None:
        if "rcd_trip" not in self._sim.faults:
            self._sim.rcd_latched = False
            self._sim._changed()


class _IdReader:
    def __init__(self, sim: SimBoard) -> None:
        self._sim = sim

    async def tags(self) -> AsyncIterator[str]:
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._sim._tag_queues.add(queue)
        try:
            while (tag := await queue.get()) is not None:
                yield tag
        finally:
            self._sim._tag_queues.discard(queue)


class _PowerMeter:
    """An external meter: integrates the EV's power between reads; fails on `meter_failure`."""

    def __init__(self, sim: SimBoard) -> None:
        self._sim = sim
        self._energy_wh = 0.0
        self._at = sim.clock.monotonic()

    async def read(self) -> PowerMeterReading:
        sim = self._sim
        if "meter_failure" in sim.faults:
            raise HalError("power meter: no answer")
        now = sim.clock.monotonic()
        currents = sim.currents()
        power = 230.0 * sum(currents) * sim.power_factor
        self._energy_wh += power * max(0.0, now - self._at) / 3600.0
        self._at = now
        return PowerMeterReading(self._energy_wh, power, (230.0, 230.0, 230.0), currents, 50.0)


class _PhaseSwitch:
    def __init__(self, sim: SimBoard) -> None:
        self._sim = sim

    async def set_phases(self, phases: int) -> None:
        sim = self._sim
        if phases not in (1, 3):
            raise HalError(f"phase switch: 1 or 3 phases, not {phases}")
        if phases != sim.phases_fed and sim.contactor_closed:
            sim.unsafe_phase_switches += 1  # switching under load: what the sequence prevents
        sim._thermal_update()
        sim.phases_fed = phases
        sim._changed()
