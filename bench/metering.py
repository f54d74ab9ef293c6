"""Benchmark: CPU cost of one board's metering loop at 10 kHz x 6 channels, and its accuracy.

Blocks are generated before timing (generation is reported separately). The baseline is a plain
numpy RMS of all six channels over the same blocks, measured in the same run. Prints one JSON
object as the last line. `--seconds 3600` runs the full simulated hour (slower than 45 s).

OCMF signing (issue 16): the same blocks also go through a second metering loop that signs a
record of its register at each transaction's begin and end and once on demand in between (a
transaction every `--session` simulated seconds), with the page counters persisted as on the
board; its CPU is compared with the unsigned loop's (chunks alternate which runs first). The
cost of one record (build, sign, persist) is measured on its own over `--records` records.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np

from evse.meter_key import SigningMeter
from evse.metering import Metering
from evse.ocmf import MeterIdentity, OcmfMeter, Reading, ReadingReason, UserAssignment
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


_IDENTITY = MeterIdentity("chargeport", "BENCH-1", "0.0.0", "chargeport", "internal", "BENCH-1")
_USER = UserAssignment.from_id_tag("BENCH-TAG")


class _SignedLoop:
    """A metering loop that signs its register at begin, on demand (mid-session) and end."""

    def __init__(self, rate: int, seconds: float, session_s: float, signer: SigningMeter) -> None:
        self.metering = Metering(rate, publish_interval_s=1.0)
        self._signer = signer
        self._t = 0.0
        self.records = 0
        # Every whole session inside the run: begin at its start, one on-demand reading in the
        # middle, end at its close.
        self._due = [
            (at, reason)
            for k in range(int(seconds // session_s))
            for at, reason in (
                (k * session_s, ReadingReason.BEGIN),
                ((k + 0.5) * session_s, ReadingReason.CHARGING),
                ((k + 1) * session_s, ReadingReason.END),
            )
        ][::-1]

    def feed(self, block: SampleBlock) -> int:
        published = len(self.metering.feed(block))
        self._t += block.voltage.shape[1] / block.rate_hz
        while self._due and self._due[-1][0] <= self._t + 1e-9:
            _, reason = self._due.pop()
            wh = self.metering.energy_wh
            self._signer.record(Reading(1.7e9 + self._t, wh, reason), _USER)
            self.records += 1
        return published


def _record_cost(count: int, state_dir: str) -> dict[str, float]:
    """Microseconds per record: building + signing alone, and with the counters persisted."""
    meter = OcmfMeter(_IDENTITY, SigningMeter.open(state_dir, _IDENTITY).meter.signer)
    t0 = time.process_time()
    for k in range(count):
        meter.transaction_record(Reading(1.7e9 + k, 1000.0 + k, ReadingReason.CHARGING), _USER)
    sign_only = time.process_time() - t0
    persisted = SigningMeter.open(state_dir, _IDENTITY)
    c0, w0 = time.process_time(), time.perf_counter()
    for k in range(count):
        persisted.record(Reading(1.7e9 + k, 1000.0 + k, ReadingReason.CHARGING), _USER)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return {
        "sign_us_per_record": 1e6 * sign_only / count,
        "sign_persist_cpu_us_per_record": 1e6 * cpu / count,
        "sign_persist_wall_us_per_record": 1e6 * wall / count,
    }


def main() -> None:
    """Run the benchmark and print its JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=10_000, help="samples/s per channel")
    parser.add_argument(
        "--seconds", type=float, default=900.0, help="simulated seconds (3600: the full hour)"
    )
    parser.add_argument("--block", type=float, default=0.1, help="block length in seconds")
    parser.add_argument(
        "--session", type=float, default=300.0, help="simulated seconds per signed transaction"
    )
    parser.add_argument("--records", type=int, default=300, help="records for the per-record cost")
    args = parser.parse_args()
    state = tempfile.TemporaryDirectory(prefix="bench-metering-")
    current, pf = (16.0, 16.0, 16.0), 0.97
    chunk_s = min(args.seconds, 120.0)  # generate in chunks so a long run fits in memory

    gen_cpu = metering_cpu = baseline_cpu = signed_cpu = 0.0
    wall0 = time.perf_counter()
    metering = Metering(args.rate, publish_interval_s=1.0)
    signed = _SignedLoop(
        args.rate, args.seconds, args.session, SigningMeter.open(f"{state.name}/loop", _IDENTITY)
    )
    source = WaveformSource(rate_hz=args.rate, seed=42)
    published = signed_published = 0
    done = 0.0
    while done < args.seconds:
        span = min(chunk_s, args.seconds - done)
        t0 = time.process_time()
        blocks = _generate(source, done, span, args.block, current, pf)
        gen_cpu += time.process_time() - t0
        baseline_cpu += _baseline(blocks)
        # Block by block, alternating which loop goes first, so load from others on the
        # machine falls on both alike.
        for k, b in enumerate(blocks):
            for signing in (False, True) if k % 2 == 0 else (True, False):
                t0 = time.process_time()
                if signing:
                    signed_published += signed.feed(b)
                    signed_cpu += time.process_time() - t0
                else:
                    published += len(metering.feed(b))
                    metering_cpu += time.process_time() - t0
        done += span
        del blocks
    wall = time.perf_counter() - wall0
    cost = _record_cost(args.records, f"{state.name}/cost")
    state.cleanup()
    assert signed_published == published, "both loops must publish the same values"

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
        "signed_records": signed.records,
        "cpu_fraction_per_board_signing_on": signed_cpu / args.seconds,
        "signing_on_vs_off_cpu_ratio": signed_cpu / metering_cpu,
        **cost,
        # The same ratio from the per-record cost alone (free of the machine's noise).
        "signing_cpu_share": signed.records
        * cost["sign_persist_cpu_us_per_record"]
        / 1e6
        / metering_cpu,
        "wall_s": wall,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
