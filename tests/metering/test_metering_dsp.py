"""Metering DSP against analytic waveforms: RMS, power, power factor, frequency, energy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from chargeport.port import MeterValue
from evse.metering import Metering
from hal.base import SampleBlock
from hal.waveform import WaveformSource


def run(
    source: WaveformSource,
    metering: Metering,
    seconds: float,
    current: tuple[float, float, float],
    pf: float,
    block_sizes: list[int],
) -> list[MeterValue]:
    """Feed `seconds` of the source through metering, cycling through `block_sizes`."""
    rate = source.rate_hz
    total = round(seconds * rate)
    done, k = 0, 0
    values: list[MeterValue] = []
    while done < total:
        n = min(block_sizes[k % len(block_sizes)], total - done)
        values += metering.feed(source.block(done / rate, n, current, pf))
        done += n
        k += 1
    return values


def test_energy_over_one_simulated_hour_within_half_percent() -> None:
    """Issue 3 accuracy criterion, run at 2 kHz (the benchmark runs the same at 10 kHz)."""
    rate, current, pf = 2_000, (16.0, 16.0, 16.0), 0.95
    source = WaveformSource(rate_hz=rate, noise_rms=0.2, seed=1)
    metering = Metering(rate, publish_interval_s=60.0)
    # Block sizes that never line up with the 40-sample mains cycle.
    values = run(source, metering, 3600.0, current, pf, [1999, 2003, 777, 3001])
    analytic_wh = 3 * 230.0 * 16.0 * pf  # W for one hour = Wh
    error = abs(metering.energy_wh - analytic_wh) / analytic_wh
    assert error < 0.005
    # No drift: what is missing is at most the first and the unfinished last cycle.
    assert analytic_wh - metering.energy_wh < 2.5 * analytic_wh / (3600 * 50)
    assert len(values) == 60
    assert values[-1].energy_wh == pytest.approx(metering.energy_wh, rel=1e-6)


@pytest.mark.parametrize("frequency", [49.8, 50.0, 50.2])
def test_frequency_tracking(frequency: float) -> None:
    """Frequency from interpolated zero crossings, within 5 mHz at 10 kHz."""
    source = WaveformSource(rate_hz=10_000, frequency_hz=frequency, seed=2)
    values = run(source, Metering(10_000), 3.0, (10.0, 10.0, 10.0), 0.99, [1000])
    assert len(values) == 3
    for v in values[1:]:
        assert v.frequency_hz == pytest.approx(frequency, abs=0.005)


def test_frequency_follows_a_step_without_losing_energy() -> None:
    """A grid frequency step mid-stream: the next interval reports the new frequency."""
    source = WaveformSource(rate_hz=10_000, frequency_hz=50.0, seed=3)
    metering = Metering(10_000, publish_interval_s=0.5)
    first = run(source, metering, 1.0, (8.0, 8.0, 8.0), 1.0, [500])
    source.frequency_hz = 49.8
    second = run_from(source, metering, 1.0, 1.0, (8.0, 8.0, 8.0))
    assert first[-1].frequency_hz == pytest.approx(50.0, abs=0.005)
    assert second[-1].frequency_hz == pytest.approx(49.8, abs=0.005)
    assert metering.energy_wh == pytest.approx(3 * 230 * 8 * 2.0 / 3600, rel=0.025)


def run_from(
    source: WaveformSource,
    metering: Metering,
    start: float,
    seconds: float,
    current: tuple[float, float, float],
) -> list[MeterValue]:
    """Continue feeding from simulated time `start`."""
    rate = source.rate_hz
    values: list[MeterValue] = []
    for k in range(round(seconds * rate) // 500):
        values += metering.feed(source.block(start + k * 500 / rate, 500, current, 1.0))
    return values


@pytest.mark.parametrize(
    ("pf", "current"),
    [
        (1.0, (16.0, 16.0, 16.0)),
        (0.9, (32.0, 0.0, 0.0)),
        (0.5, (10.0, 20.0, 5.0)),
        (0.8, (6.0, 6.0, 6.0)),
    ],
)
def test_rms_power_and_power_factor(pf: float, current: tuple[float, float, float]) -> None:
    """Per-phase Vrms/Irms, total real power P = sum V I pf, and PF = P / S."""
    source = WaveformSource(rate_hz=10_000, seed=4)
    values = run(source, Metering(10_000), 2.0, current, pf, [1234])
    v = values[-1]
    assert v.voltage_v == pytest.approx((230.0, 230.0, 230.0), abs=0.05)
    assert v.current_a == pytest.approx(current, abs=0.01)
    assert v.power_w == pytest.approx(230.0 * sum(current) * pf, rel=1e-3)
    assert v.power_factor == pytest.approx(pf, abs=2e-3)


def test_block_cuts_do_not_change_the_result() -> None:
    """Blocks cut cycles at arbitrary points (1 sample up to several cycles): same energy."""
    rate = 10_000
    source = WaveformSource(rate_hz=rate, frequency_hz=49.9, noise_rms=0.5, seed=5)
    whole = source.block(0.0, 2 * rate, (16.0, 12.0, 8.0), 0.93)
    reference = Metering(rate)
    ref_values = reference.feed(whole)
    rng = np.random.default_rng(6)
    cut = Metering(rate)
    values, pos = [], 0
    while pos < 2 * rate:
        n = int(rng.integers(1, 450))
        values += cut.feed(
            SampleBlock(
                pos / rate, rate, whole.voltage[:, pos : pos + n], whole.current[:, pos : pos + n]
            )
        )
        pos += n
    assert cut.energy_wh == pytest.approx(reference.energy_wh, rel=1e-6)
    assert [v.power_w for v in values] == pytest.approx([v.power_w for v in ref_values], rel=1e-6)


def test_phase_continuous_blocks() -> None:
    """Consecutive blocks join without a phase jump (noise off)."""
    a, b = WaveformSource(noise_rms=0.0), WaveformSource(noise_rms=0.0)
    whole = a.block(0.0, 1000, (5.0, 5.0, 5.0))
    parts = [b.block(k * 0.01, 100, (5.0, 5.0, 5.0)) for k in range(10)]
    np.testing.assert_allclose(np.hstack([p.voltage for p in parts]), whole.voltage, atol=1e-9)
    np.testing.assert_allclose(np.hstack([p.current for p in parts]), whole.current, atol=1e-9)
    # 120 degrees apart: L2 lags L1 by a third of a cycle (200 samples per cycle at 10 kHz).
    np.testing.assert_allclose(whole.voltage[1, 67:167], whole.voltage[0, 0:100], atol=12.0)


def test_dc_offset_is_removed() -> None:
    """A front-end DC offset biases neither RMS nor power (mean removed per cycle)."""
    source = WaveformSource(rate_hz=10_000, seed=7)
    metering = Metering(10_000)
    values = []
    for k in range(20):
        b = source.block(k * 0.1, 1000, (10.0, 10.0, 10.0), 1.0)
        values += metering.feed(
            SampleBlock(b.start_time, b.rate_hz, b.voltage + 7.0, b.current - 0.4)
        )
    assert values[-1].voltage_v == pytest.approx((230.0,) * 3, abs=0.05)
    assert values[-1].current_a == pytest.approx((10.0,) * 3, abs=0.01)
    assert values[-1].power_w == pytest.approx(6900.0, rel=1e-3)


def test_no_voltage_still_meters_current_and_publishes() -> None:
    """Mains absent: no zero crossings, nominal-length cycles are forced, frequency reads 0."""
    rate = 10_000
    metering = Metering(rate, publish_interval_s=0.5)
    t = np.arange(rate) / rate
    current = np.vstack([math.sqrt(2) * 3.0 * np.sin(2 * math.pi * 50 * t)] * 3)
    values = metering.feed(SampleBlock(0.0, rate, np.zeros((3, rate)), current))
    assert len(values) == 2
    assert values[-1].current_a == pytest.approx((3.0,) * 3, abs=0.01)
    assert values[-1].frequency_hz == 0.0
    assert metering.energy_wh == 0.0


def test_publish_interval_values_come_from_the_block_that_ends_them() -> None:
    """One value per interval, returned by the feed whose block reaches the interval's end."""
    source = WaveformSource(rate_hz=1_000)
    metering = Metering(1_000, publish_interval_s=0.25)
    counts = [len(metering.feed(source.block(k * 0.1, 100, (1.0, 1.0, 1.0)))) for k in range(10)]
    assert counts == [0, 0, 1, 0, 1, 0, 0, 1, 0, 1]
