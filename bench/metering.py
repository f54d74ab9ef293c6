"""Benchmark: CPU cost of one board's metering loop at 10 kHz x 6 channels, and its accuracy.

Blocks are generated before timing (generation is reported separately). The baseline is a plain
numpy RMS of all six channels over the same blocks, measured in the same run. Prints one JSON
object as the last line. `--seconds 3600` runs the full simulated hour (slower than 45 s).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from evse.metering import Metering
from hal.base import SampleBlock
from hal.waveform import WaveformSource

__all__ = ["main"]


def _generate(
    source: WaveformSource,
    start: float,
    seconds: float,
    block_s: float,
    current: tuple[float, float, float],
    pf: float,
) -> list[SampleBlock]:
    """Pre-generate the blocks a sampler would hand the metering loop."""
    n = round(block_s * source.rate_hz)
    count = round(seconds / block_s)
    return [source.block(start + k * block_s, n, current, pf) for k in range(count)]


def _baseline(blocks: list[SampleBlock]) -> float:
    """CPU seconds of a plain numpy RMS of the six channels per block."""
    t0 = time.process_time()
    for b in blocks:
        np.sqrt(np.mean(b.voltage * b.voltage, axis=1))
        np.sqrt(np.mean(b.current * b.current, axis=1))
    return time.process_time() - t0


def main() -> None:
    """Run the benchmark and print its JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=10_000, help="samples/s per channel")
    parser.add_argument(
        "--seconds", type=float, default=900.0, help="simulated seconds (3600: the full hour)"
    )
    parser.add_argument("--block", type=float, default=0.1, help="block length in seconds")
    args = parser.parse_args()
    current, pf = (16.0, 16.0, 16.0), 0.97
    chunk_s = min(args.seconds, 120.0)  # generate in chunks so a long run fits in memory

    gen_cpu = metering_cpu = baseline_cpu = 0.0
    wall0 = time.perf_counter()
    metering = Metering(args.rate, publish_interval_s=1.0)
    source = WaveformSource(rate_hz=args.rate, seed=42)
    published = 0
    done = 0.0
    while done < args.seconds:
        span = min(chunk_s, args.seconds - done)
        t0 = time.process_time()
        blocks = _generate(source, done, span, args.block, current, pf)
        gen_cpu += time.process_time() - t0
        baseline_cpu += _baseline(blocks)
        t0 = time.process_time()
        for b in blocks:
            published += len(metering.feed(b))
        metering_cpu += time.process_time() - t0
        done += span
        del blocks
    wall = time.perf_counter() - wall0

    analytic_wh = 3 * 230.0 * current[0] * pf * args.seconds / 3600.0
    result = {
        "rate_hz": args.rate,
        "channels": 6,
        "simulated_s": args.seconds,
        "block_s": args.block,
        "cpu_fraction_per_board": metering_cpu / args.seconds,
        "realtime_factor": args.seconds / metering_cpu,
        "energy_error_pct": 100.0 * abs(metering.energy_wh - analytic_wh) / analytic_wh,
        "published_values": published,
        "generation_cpu_fraction": gen_cpu / args.seconds,
        "baseline_numpy_rms_cpu_fraction": baseline_cpu / args.seconds,
        "ratio_vs_numpy_rms": metering_cpu / baseline_cpu,
        "wall_s": wall,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
