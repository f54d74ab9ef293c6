"""Benchmark: resident memory of the main and of one satellite process, idle and while charging,
and the cold start time of `chargeport sim --headless` until all four guns are Available.

Two station runs (real time, 10 kHz metering, as on a board): one where no EV ever arrives
(idle) and one where an EV plugs in at once on every gun and charges (charging). RSS is VmRSS
from /proc/PID/status, sampled several times after the station has settled; the largest
sample counts. The baseline is a bare `python -c "import grpc, numpy"` process measured in the
same run (`*_vs_baseline` ratios).

"Available" (cold start): the dashboard's GET /api/state answers, every satellite's gun shows
"Available" with its link up and a boot id (its handshake reached Ready and the port was
enabled), every gun has no active error and has reported at least one meter value (its event
stream reaches the view). The main's own port is enabled from boot, before the view subscribes,
so its headline may still read "Unknown"; that counts as available when the rest holds.

`chart_history_mib`: the dashboard's chart ring (main_node/history.py) filled with one hour of
1 Hz samples for four guns, measured as the RSS it adds to a fresh interpreter that already
imported it (the ring is preallocated; the fill must not grow it); target under 2 MiB.

Prints one JSON object as the last line. `--samples N` samples RSS longer.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
NEVER_PLUGS = ROOT / "examples" / "scenarios" / "never-plugs.txt"
# The tags the built-in CSMS accepts (simulation.cli.SIM_TAGS), one per gun.
TAGS = ("04A1B2C3", "04D4E5F6", "04778899", "04AABBCC")
SATELLITE_TARGET_MIB, MAIN_TARGET_MIB = 60.0, 120.0
CHART_TARGET_MIB = 2.0
# In a child process: RSS before the ring exists, after a full hour for four guns, its bytes.
CHART_CODE = """
import gc, sys
from pathlib import Path
from main_node.history import HistoryRing

def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
gc.collect()
before = rss()
ring = HistoryRing([1, 2, 3, 4], capacity=3600)
for t in range(3600):
    for gun in (1, 2, 3, 4):
        ring.record(gun, 1.7e9 + t, 11040.0 + t % 7, (16.0, 15.9, 16.1), 1000.0 + t * 3.07)
gc.collect()
print(before, rss(), ring.nbytes)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rss_mib(pid: int) -> float:
    """Resident set size of `pid` from /proc (VmRSS, kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with open(task / "children") as f:
            out += [int(c) for c in f.read().split()]
    return out


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def _fetch_state(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url + "api/state", timeout=2) as r:
            data: dict[str, Any] = json.loads(r.read())
            return data
    except (urllib.error.URLError, OSError, ValueError):
        return None


def all_available(state: dict[str, Any] | None, guns: int = 4) -> bool:
    """Every gun available (see the module docstring for what that means)."""
    if state is None or len(state["guns"]) < guns:
        return False
    for g in state["guns"]:
        headline_ok = g["state"] == "Available" or (not g["remote"] and g["state"] == "Unknown")
        if not (
            headline_ok
            and g["link_up"]
            and g["boot_id"]
            and g["enabled"]
            and not g["active_errors"]
            and g["history"]
        ):
            return False
    return True


def all_charging(state: dict[str, Any] | None, guns: int = 4) -> bool:
    """Every gun in a transaction with the contactor closed and power flowing."""
    if state is None or len(state["guns"]) < guns:
        return False
    return all(g["state"] == "Charging" and g["power_w"] > 1000.0 for g in state["guns"])


def _wait(url: str, predicate: Callable[[dict[str, Any] | None], bool], timeout_s: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if predicate(_fetch_state(url)):
            return time.monotonic() - t0
        time.sleep(0.1)
    raise RuntimeError(f"the station did not get there within {timeout_s:.0f} s")


def _measure_station(
    work: Path, scenarios: dict[int, Path], until: str, samples: int
) -> dict[str, float]:
    """Start the sim; once all guns are available (idle) or charging, sample two RSS."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    argv = [sys.executable, "-m", "chargeport_cli", "sim", "--headless", "--duration", "100000"]
    argv += ["--dashboard-port", str(port), "--state-dir", str(work / until)]
    for gun, path in scenarios.items():
        argv += ["--scenario", f"{gun}={path}"]
    t0 = time.monotonic()
    sim = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    children: list[int] = []
    try:
        _wait(url, all_charging if until == "charging" else all_available, 60.0)
        ready_s = time.monotonic() - t0
        time.sleep(2.0)  # settle: caches warm, first meter values and OCPP calls done
        children = _children(sim.pid)
        main_pid = next(p for p in children if "main" in _cmdline(p))
        sat_pid = min(p for p in children if "satellite" in _cmdline(p))  # the first started
        main_rss = sat_rss = 0.0
        for _ in range(samples):
            main_rss, sat_rss = max(main_rss, rss_mib(main_pid)), max(sat_rss, rss_mib(sat_pid))
            time.sleep(0.5)
        if until == "charging" and not all_charging(_fetch_state(url)):
            raise RuntimeError("a gun stopped charging while memory was sampled")
        return {"ready_s": ready_s, "main_rss_mib": main_rss, "sat_rss_mib": sat_rss}
    finally:
        sim.send_signal(signal.SIGINT)  # the sim stops its board processes cleanly
        try:
            sim.wait(timeout=20)
        except subprocess.TimeoutExpired:
            sim.kill()
            sim.wait()
        for pid in children:  # belt and braces: nothing of ours may outlive the bench
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def baseline_rss_mib() -> float:
    """RSS of a bare interpreter that imported grpc and numpy (the floor of any board process)."""
    code = "import grpc, numpy, sys; print('ready', flush=True); sys.stdin.read()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        return rss_mib(proc.pid)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)


def chart_history() -> tuple[float, int]:
    """(RSS MiB the filled chart ring adds, its array bytes), measured in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", CHART_CODE], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.split()
    before, after, nbytes = (int(x) for x in out)
    return (after - before) / (1024 * 1024), nbytes


def _charging_scenarios(folder: Path) -> dict[int, Path]:
    """One EV per gun that plugs in soon, swipes an accepted tag and charges for an hour."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[int, Path] = {}
    for gun, tag in enumerate(TAGS, start=1):
        path = folder / f"charge-{gun}.txt"
        # The pause before the swipe: the main's own port is running before the station
        # listens to it, and a swipe in that window is lost (as with the default gun1.txt).
        steps = f"sleep 3\nplugin\nsleep 2\nauth {tag}\nwait_pwm\ndraw_power_regulated 16,3\n"
        path.write_text(steps + "sleep 3600\n")
        out[gun] = path
    return out


def main() -> None:
    """Run the benchmark and print its JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4, help="RSS samples, 0.5 s apart")
    args = parser.parse_args()
    wall0 = time.monotonic()
    baseline = baseline_rss_mib()
    chart_mib, chart_bytes = chart_history()
    with tempfile.TemporaryDirectory(prefix="chargeport-footprint-") as tmp:
        work = Path(tmp)
        idle = _measure_station(work, dict.fromkeys(range(1, 5), NEVER_PLUGS), "idle", args.samples)
        charging = _measure_station(
            work, _charging_scenarios(work / "scenarios"), "charging", args.samples
        )
    result = {
        "satellite_rss_idle_mib": round(idle["sat_rss_mib"], 1),
        "satellite_rss_charging_mib": round(charging["sat_rss_mib"], 1),
        "main_rss_idle_mib": round(idle["main_rss_mib"], 1),
        "main_rss_charging_mib": round(charging["main_rss_mib"], 1),
        "cold_start_s": round(idle["ready_s"], 2),
        "all_charging_s": round(charging["ready_s"], 2),
        "baseline_rss_mib": round(baseline, 1),
        "satellite_vs_baseline": round(charging["sat_rss_mib"] / baseline, 2),
        "main_vs_baseline": round(charging["main_rss_mib"] / baseline, 2),
        "satellite_target_met": max(idle["sat_rss_mib"], charging["sat_rss_mib"])
        < SATELLITE_TARGET_MIB,
        "main_target_met": max(idle["main_rss_mib"], charging["main_rss_mib"]) < MAIN_TARGET_MIB,
        "chart_history_mib": round(chart_mib, 2),
        "chart_history_array_mib": round(chart_bytes / (1024 * 1024), 2),
        "chart_history_vs_main": round(chart_mib / charging["main_rss_mib"], 4),
        "chart_target_met": chart_mib < CHART_TARGET_MIB,
        "bench_wall_s": round(time.monotonic() - wall0, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
