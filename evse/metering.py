"""Metering DSP: per-phase RMS, real power, power factor, frequency and energy from sample blocks.

Theory of operation. Every rising zero crossing of L1's voltage (its running mean removed,
linear interpolation between samples for the fractional position) starts a mains cycle. Each
whole cycle is reduced with numpy (`add.reduceat`) to per-phase sums of v, i, v², i², v·i; the
mean (a decaying average over ~1 s of whole cycles) is removed from those sums algebraically, so
DC offsets of the front end bias neither the RMS nor the power. Energy is the sum of the
cycles' real power times their sample count: every sample after the first crossing belongs to
exactly one cycle, and the unfinished cycle at the end of a block is carried into the next
block, so energy does not drift however the blocks cut the waveform. With no voltage (no
crossings) cycles of nominal length are forced so current is still metered. Cycles are grouped
into publish intervals by the sample index they end on; an interval is published from the
`feed` call whose block reaches its end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from chargeport.port import MeterValue
from hal.base import SampleBlock

__all__ = ["Metering"]

_Array = npt.NDArray[np.float64]

_DC_DECAY = 1.0 - 1.0 / 50.0  # per cycle: the DC offset estimate averages over ~1 s of mains


@dataclass
class _Interval:
    """Sums over the cycles of one publish interval."""

    samples: float = 0.0
    svv: _Array = field(default_factory=lambda: np.zeros(3))
    sii: _Array = field(default_factory=lambda: np.zeros(3))
    svi: _Array = field(default_factory=lambda: np.zeros(3))
    freq_cycles: int = 0
    freq_samples: float = 0.0  # fractional sample count spanned by crossing-to-crossing cycles


class Metering:
    """Feeds on gap-free `SampleBlock`s, yields one `MeterValue` per publish interval."""

    def __init__(
        self, rate_hz: int, publish_interval_s: float = 1.0, nominal_hz: float = 50.0
    ) -> None:
        if rate_hz <= 0 or publish_interval_s <= 0 or nominal_hz <= 0:
            raise ValueError("rate_hz, publish_interval_s and nominal_hz must be positive")
        self._rate = rate_hz
        self._interval_len = publish_interval_s * rate_hz  # samples per publish interval
        self._nominal = max(2, round(rate_hz / nominal_hz))  # samples per nominal cycle
        self._holdoff = 0.5 * self._nominal  # a second crossing this soon is noise
        self._max_gap = 2 * self._nominal  # no crossing for this long: force a cycle
        self._energy_ws = 0.0
        self._dc = 0.0  # running mean of L1 voltage, removed before crossing detection
        self._dc_sum: _Array = np.zeros(6)  # decaying sums of v (3) and i (3) over whole cycles
        self._dc_n = 0.0  # the matching decaying sample count
        self._pend_v: _Array = np.zeros((3, 0))
        self._pend_i: _Array = np.zeros((3, 0))
        self._pend_start = 0  # global sample index of the first pending sample
        self._pend_frac = math.nan  # fractional global position of the pending cycle's crossing
        self._started = False  # a cycle boundary has been seen
        self._received = 0  # global samples received
        self._open = 0  # index of the publish interval being accumulated
        self._acc = _Interval()

    @property
    def energy_wh(self) -> float:
        """Energy of all whole cycles metered so far, in Wh."""
        return self._energy_ws / 3600.0

    def feed(self, block: SampleBlock) -> list[MeterValue]:
        """Meter one block; return the values whose publish interval ended in this block."""
        if block.rate_hz != self._rate:
            raise ValueError(f"block rate {block.rate_hz} Hz, metering expects {self._rate} Hz")
        v = np.concatenate((self._pend_v, block.voltage), axis=1)
        i = np.concatenate((self._pend_i, block.current), axis=1)
        base = self._pend_start
        self._received += block.voltage.shape[1]
        out: list[MeterValue] = []

        bounds, fracs = self._boundaries(v[0], base)
        if bounds:
            if self._started:  # the pending cycle starts at buffer index 0
                bounds, fracs = [0, *bounds], [self._pend_frac, *fracs]
            self._started = True
            self._reduce(v, i, base, bounds, fracs, out)
            last = bounds[-1]
            self._pend_v, self._pend_i = v[:, last:], i[:, last:]
            self._pend_start = base + last
            self._pend_frac = fracs[-1]
        else:
            self._pend_v, self._pend_i = v, i

        while self._received >= (self._open + 1) * self._interval_len:
            out.append(self._publish())
        return out

    # ------------------------------------------------------------------ internals

    def _boundaries(self, v1: _Array, base: int) -> tuple[list[int], list[float]]:
        """Cycle starts in this buffer (new ones only) and their fractional global positions."""
        x = v1 - self._dc
        cand = np.flatnonzero((x[:-1] < 0.0) & (x[1:] >= 0.0)) + 1
        bounds: list[int] = []
        fracs: list[float] = []
        prev = 0 if self._started else None  # index 0 is the pending cycle's own start
        prev_frac = self._pend_frac - base if self._started else math.nan
        n = x.shape[0]
        for k in cand.tolist():
            lo, hi = x[k - 1], x[k]
            frac = k - hi / (hi - lo)
            if prev is not None:
                ref = prev_frac if not math.isnan(prev_frac) else float(prev)
                if frac - ref < self._holdoff:
                    continue
                prev = self._force(prev, k, bounds, fracs)
            bounds.append(k)
            fracs.append(base + frac)
            prev, prev_frac = k, frac
        if prev is None and n > self._max_gap:
            prev = 0  # never a crossing: start forcing cycles from the buffer start
            bounds.append(0)
            fracs.append(math.nan)
        if prev is not None:
            self._force(prev, n, bounds, fracs)
        return bounds, fracs

    def _force(self, prev: int, until: int, bounds: list[int], fracs: list[float]) -> int:
        """Insert nominal-length cycle starts while the gap to `until` exceeds the maximum."""
        while until - prev > self._max_gap:
            prev += self._nominal
            bounds.append(prev)
            fracs.append(math.nan)
        return prev

    def _reduce(
        self,
        v: _Array,
        i: _Array,
        base: int,
        starts: list[int],
        start_fracs: list[float],
        out: list[MeterValue],
    ) -> None:
        """Reduce the whole cycles between `starts` and add each to its publish interval."""
        if len(starts) < 2:
            return
        lo, hi = starts[0], starts[-1]
        vs, is_ = v[:, lo:hi], i[:, lo:hi]
        idx = np.asarray(starts[:-1]) - lo
        n = np.diff(np.asarray(starts)).astype(np.float64)
        sv = np.add.reduceat(vs, idx, axis=1)
        si = np.add.reduceat(is_, idx, axis=1)
        if self._dc_n == 0.0:  # first cycles: their own mean is the only estimate there is
            self._dc_sum = np.concatenate((sv.sum(axis=1), si.sum(axis=1)))
            self._dc_n = float(n.sum())
        dv = self._dc_sum[:3, np.newaxis] / self._dc_n
        di = self._dc_sum[3:, np.newaxis] / self._dc_n
        # Offset removed algebraically: sum((v - dv)(i - di)) = sum(vi) - di sum(v) - dv sum(i)
        # + n dv di. The offset is a ~1 s average, not each cycle's own mean: L1's cycles cut
        # L2/L3 away from their zero crossings, where a one-sample-longer cycle's mean is large.
        svv = np.add.reduceat(vs * vs, idx, axis=1) - 2 * dv * sv + n * dv * dv
        sii = np.add.reduceat(is_ * is_, idx, axis=1) - 2 * di * si + n * di * di
        svi = np.add.reduceat(vs * is_, idx, axis=1) - di * sv - dv * si + n * dv * di
        decay = _DC_DECAY ** len(n)
        self._dc_sum = self._dc_sum * decay + np.concatenate((sv.sum(axis=1), si.sum(axis=1)))
        self._dc_n = self._dc_n * decay + float(n.sum())
        self._dc = float(self._dc_sum[0] / self._dc_n)
        f = np.asarray(start_fracs, dtype=np.float64)
        period = f[1:] - f[:-1]  # NaN where either end was forced
        ends = base + np.asarray(starts[1:], dtype=np.float64)
        interval = np.maximum(np.ceil(ends / self._interval_len) - 1, self._open).astype(int)
        for k in np.unique(interval).tolist():
            while k > self._open:
                out.append(self._publish())
            sel = interval == k
            acc = self._acc
            acc.samples += float(n[sel].sum())
            acc.svv += svv[:, sel].sum(axis=1)
            acc.sii += sii[:, sel].sum(axis=1)
            s = svi[:, sel].sum(axis=1)
            acc.svi += s
            self._energy_ws += float(s.sum()) / self._rate
            p = period[sel]
            p = p[~np.isnan(p)]
            acc.freq_cycles += p.shape[0]
            acc.freq_samples += float(p.sum())

    def _publish(self) -> MeterValue:
        """Close the open publish interval."""
        acc, self._acc = self._acc, _Interval()
        self._open += 1
        if acc.samples == 0:
            return MeterValue(energy_wh=self.energy_wh, power_w=0.0)
        vrms = np.sqrt(np.maximum(acc.svv, 0.0) / acc.samples)
        irms = np.sqrt(np.maximum(acc.sii, 0.0) / acc.samples)
        power = float(acc.svi.sum()) / acc.samples
        apparent = float((vrms * irms).sum())
        freq = acc.freq_cycles * self._rate / acc.freq_samples if acc.freq_cycles else 0.0
        return MeterValue(
            energy_wh=self.energy_wh,
            power_w=power,
            voltage_v=tuple(float(x) for x in vrms),
            current_a=tuple(float(x) for x in irms),
            frequency_hz=freq,
            power_factor=power / apparent if apparent > 1e-6 else 0.0,
        )
