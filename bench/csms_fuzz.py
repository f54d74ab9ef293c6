"""CSMS -> station fuzz at benchmark size (issue 12): 10,000 frames drawn from the OCPP 1.6
schemas (valid-shaped with absurd values, and broken at every layer) sent raw by a real central
system to a real station session, 25 per session.

It runs the property test `tests/ocpp/test_ocpp_csms_fuzz.py` (hypothesis) with
CHARGEPORT_FUZZ_EXAMPLES raised, so the benchmark and the test check the same rule: the session
never drops and every CALL gets exactly one answer. A failing example is a session death; the
hypothesis shrinker then reports the smallest frame batch that caused it. As a baseline in the
same run, a tenth as many sessions exchange only well-formed GetConfiguration CALLs, so
`fuzz_vs_clean_per_session_ratio` says what the bad input costs. Prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FRAMES_PER_EXAMPLE = 25  # as in the test


def run_pytest(examples: int, clean: bool) -> tuple[int, int, float]:
    """(passed, failed, seconds) of the fuzz test at `examples` hypothesis examples."""
    env = {**os.environ, "CHARGEPORT_FUZZ_EXAMPLES": str(examples)}
    if clean:
        env["CHARGEPORT_FUZZ_CLEAN"] = "1"
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
         "tests/ocpp/test_ocpp_csms_fuzz.py", "-o", "addopts="],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    took = time.monotonic() - start
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    passed = int(m.group(1)) if (m := re.search(r"(\d+) passed", tail)) else 0
    failed = int(m.group(1)) if (m := re.search(r"(\d+) failed", tail)) else 0
    if proc.returncode not in (0, 1):
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"pytest exited {proc.returncode}")
    if failed:
        print(proc.stdout[-4000:], file=sys.stderr)
    return passed, failed, took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=10_000, help="frames to send (default 10,000)")
    args = ap.parse_args()
    examples = max(1, args.frames // FRAMES_PER_EXAMPLE)
    passed, failed, fuzz_s = run_pytest(examples, clean=False)
    clean_sessions = max(1, examples // 10)  # the baseline is per session: a tenth is enough
    _, clean_failed, clean_s = run_pytest(clean_sessions, clean=True)
    print(
        json.dumps(
            {
                "frames": examples * FRAMES_PER_EXAMPLE,
                "sessions": examples,
                "session_deaths": failed,
                "clean_failures": clean_failed,
                "fuzz_s": round(fuzz_s, 1),
                "clean_s": round(clean_s, 1),
                "clean_sessions": clean_sessions,
                "fuzz_vs_clean_per_session_ratio": round(
                    (fuzz_s / examples) / (clean_s / clean_sessions), 2
                ),
                "test_passed": passed == 1 and failed == 0,
            }
        )
    )


if __name__ == "__main__":
    main()
