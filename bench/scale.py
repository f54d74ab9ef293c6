"""Scale benchmark: one main's link side behind 4, 8, 16 and 32 simulated satellites.

The satellites (FakePorts behind real link agents, insecure gRPC on loopback, as the issue
allows here) run in one child process and each sends meter values at `--rate` Hz. The main
side runs in this process as it does in the main: one RemotePort per satellite (handshake,
heartbeats both ways, event stream) folded into a StationView. At each size it measures:

  * main CPU per satellite (process CPU over the window / window / satellites),
  * main RSS per satellite (RSS growth from before the links to after, / satellites),
  * event latency p50/p99 (satellite clock stamp -> the main's consumer, one host clock).

`per_satellite_cpu_ratio_32_vs_4` compares the largest size with the smallest, measured in the
same run: cost per satellite that stays flat means the cost grows linearly (target <= 1.5).
Prints one JSON object last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import resource
import subprocess
import sys
import time
from typing import Any

from chargeport.port import MeterValue, PortInfo
from main_node.locator import StaticLocator
from main_node.remote_port import RemotePort
from main_node.view import StationView

SATELLITES = """
import asyncio, sys
from chargeport.fake_port import FakePort
from chargeport.port import MeterValue, PortInfo
from satellite.host import AgentHost

async def main():
    n, rate = int(sys.argv[1]), float(sys.argv[2])
    fakes, hosts = [], []
    for i in range(n):
        fake = FakePort(PortInfo(1, f"SAT-{i}", "1.0.0", 32.0, 3))
        host = AgentHost(fake, serial=f"SAT-{i}", pki_dir=None)
        await host.start()
        fakes.append(fake)
        hosts.append(host)
    print("PORTS", " ".join(str(h.port) for h in hosts), flush=True)

    async def meter(i, fake):  # each board on its own phase, as independent boards are
        await asyncio.sleep(i / (n * rate))
        energy = 0.0
        while True:
            energy += 1.0
            fake.emit(MeterValue(energy, 7000.0, (230.0,) * 3, (10.0,) * 3))
            await asyncio.sleep(1.0 / rate)

    await asyncio.gather(*(meter(i, f) for i, f in enumerate(fakes)))

asyncio.run(main())
"""


def rss_mib() -> float:
    """This process's resident set now (Linux /proc), in MiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(p / 100 * len(s)))] if s else float("nan")


async def one_size(n: int, rate: float, window_s: float) -> dict[str, float]:
    proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once; reaped in finally
        [sys.executable, "-c", SATELLITES, str(n), str(rate)], stdout=subprocess.PIPE, text=True
    )
    ports: list[RemotePort] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        tcp_ports = [int(p) for p in line.split()[1:]]
        rss_before = rss_mib()
        infos = [PortInfo(i + 2, f"SAT-{i}", "1.0.0", 32.0, 3, remote=True) for i in range(n)]
        view = StationView("bench", infos)
        latencies: list[float] = []
        measuring = False

        async def feed(connector: int, port: RemotePort) -> None:
            async for event in port.events():
                view.apply(connector, event)
                if measuring and isinstance(event.body, MeterValue):
                    latencies.append(time.time() - event.timestamp)

        for i, tcp in enumerate(tcp_ports):
            rp = RemotePort(
                f"SAT-{i}",
                i + 2,
                StaticLocator({f"SAT-{i}": ("127.0.0.1", tcp)}),
                station_id="bench",
                main_boot_id="bench-main",
                credentials=None,
            )
            ports.append(rp)
            tasks.append(asyncio.create_task(feed(i + 2, rp)))
            await rp.start()
        async with asyncio.timeout(60):
            for rp in ports:
                await rp.wait_connected()
        await asyncio.sleep(1.0)  # settle: snapshots, first limits, allocator warm-up
        rss_after = rss_mib()
        measuring = True
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(window_s)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        measuring = False
        up = sum(1 for g in view.snapshot()["guns"] if g["link_up"])
        assert up == n, f"only {up} of {n} satellites stayed linked"
        return {
            "cpu_per_sat": cpu / wall / n,
            "rss_per_sat_mib": max(0.0, rss_after - rss_before) / n,
            "event_p50_ms": pct(latencies, 50) * 1000,
            "event_p99_ms": pct(latencies, 99) * 1000,
            "events": float(len(latencies)),
        }
    finally:
        for rp in ports:
            await rp.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        proc.kill()
        proc.wait()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="4,8,16,32", help="satellite counts, comma-separated")
    ap.add_argument("--rate", type=float, default=4.0, help="meter values per second per sat")
    ap.add_argument("--window", type=float, default=3.0, help="seconds measured per size")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    logging.basicConfig(level=logging.ERROR)  # links going down at each teardown are expected
    await one_size(1, args.rate, 0.2)  # warm-up: gRPC's runtime is not a per-satellite cost
    result: dict[str, Any] = {}
    per_size: dict[int, dict[str, float]] = {}
    for n in sizes:
        per_size[n] = await one_size(n, args.rate, args.window)
        print(json.dumps({"satellites": n, **per_size[n]}), file=sys.stderr)
    for n, figures in per_size.items():
        result[f"cpu_per_sat_{n}"] = round(figures["cpu_per_sat"], 5)
        result[f"rss_per_sat_mib_{n}"] = round(figures["rss_per_sat_mib"], 3)
        result[f"event_p99_ms_{n}"] = round(figures["event_p99_ms"], 3)
    lo, hi = sizes[0], sizes[-1]
    ratio = per_size[hi]["cpu_per_sat"] / per_size[lo]["cpu_per_sat"]
    result[f"per_satellite_cpu_ratio_{hi}_vs_{lo}"] = round(ratio, 3)
    result["rate_hz_per_sat"] = args.rate
    result["window_s"] = args.window
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
