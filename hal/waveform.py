"""Synthetic 3-phase mains: voltage and current sample blocks, phase-continuous across calls.

The phase is accumulated sample by sample (not recomputed from the absolute time), so changing
`frequency_hz` between blocks bends the waveform without a jump, as a real grid does.
"""

from __future__ import annotations

import math

import numpy as np

from hal.base import SampleBlock

__all__ = ["CURRENT_NOISE_PER_VOLT", "WaveformSource"]

# Current-channel noise relative to the voltage-channel noise: a 0.2 V RMS voltage noise floor
# comes with a 2 mA RMS current noise floor (CT / shunt front end), so an idle port reads ~0 A.
CURRENT_NOISE_PER_VOLT = 0.01

_PHASE_SHIFT = np.array([0.0, -2.0 * math.pi / 3.0, 2.0 * math.pi / 3.0])  # L1, L2, L3


class WaveformSource:
    """Generates `SampleBlock`s of 3-phase voltage and the current a load draws from it."""

    def __init__(
        self,
        rate_hz: int = 10_000,
        frequency_hz: float = 50.0,
        voltage_rms: float = 230.0,
        noise_rms: float = 0.2,
        seed: int = 0,
    ) -> None:
        if rate_hz <= 0:
            raise ValueError("rate_hz must be positive")
        self.rate_hz = rate_hz
        self.frequency_hz = frequency_hz
        self.voltage_rms = voltage_rms
        self.noise_rms = noise_rms
        self._rng = np.random.default_rng(seed)
        self._phase = 0.0  # radians of L1 at the next expected sample
        self._next_time: float | None = None

    def block(
        self,
        start_time: float,
        n: int,
        current_rms: tuple[float, float, float],
        power_factor: float = 0.99,
    ) -> SampleBlock:
        """`n` samples per channel from `start_time`; the current lags by acos(power_factor)."""
        omega = 2.0 * math.pi * self.frequency_hz
        if self._next_time is not None and start_time != self._next_time:
            # A gap (or overlap) in time: advance the phase by it so the signal stays coherent.
            self._phase += omega * (start_time - self._next_time)
        step = omega / self.rate_hz
        theta = self._phase + step * np.arange(n, dtype=np.float64)
        self._phase = math.fmod(self._phase + step * n, 2.0 * math.pi)
        self._next_time = start_time + n / self.rate_hz

        pf = min(1.0, max(-1.0, power_factor))
        lag = math.acos(pf)
        angles = theta[np.newaxis, :] + _PHASE_SHIFT[:, np.newaxis]  # (3, n)
        voltage = (math.sqrt(2.0) * self.voltage_rms) * np.sin(angles)
        i_peak = math.sqrt(2.0) * np.asarray(current_rms, dtype=np.float64)[:, np.newaxis]
        current = i_peak * np.sin(angles - lag)
        if self.noise_rms > 0.0:
            voltage += self._rng.normal(0.0, self.noise_rms, size=(3, n))
            current += self._rng.normal(0.0, self.noise_rms * CURRENT_NOISE_PER_VOLT, size=(3, n))
        return SampleBlock(
            start_time=start_time, rate_hz=self.rate_hz, voltage=voltage, current=current
        )
