"""Energy manager latency: a port event to new limits on every affected port (FakePorts).

Baseline in the same run: the bare hop (port event -> subscriber task -> set_limit on one
port) with no manager in between. Prints one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from chargeport.clock import RealClock
from chargeport.config import EnergyConfig
from chargeport.fake_port import FakePort
from chargeport.port import PortInfo, SessionEvent, SessionEventType
from main_node.energy import EnergyManager, PortDemand, allocate

__all__ = ["main"]


class TimedPort(FakePort):
    """Records when set_limit was last called and wakes a waiter."""

    waiter: asyncio.Event | None = None
    sent_at = 0.0

    async def set_limit(self, amps: float, phases: int, valid_for_s: float = 0.0) -> None:
        await super().set_limit(amps, phases, valid_for_s)
        self.calls.clear()
        self.history.clear()
        self.sent_at = time.perf_counter()
        if self.waiter is not None:
            self.waiter.set()


def make_ports(n: int) -> dict[int, TimedPort]:
    return {c: TimedPort(PortInfo(c, f"S{c}", "1", 32.0, 3)) for c in range(1, n + 1)}


async def wait_all(ports: dict[int, TimedPort], since: float) -> float:
    while True:
        latest = min(p.sent_at for p in ports.values())
        if latest >= since:
            return max(p.sent_at for p in ports.values()) - since
        waiter = asyncio.Event()
        for p in ports.values():
            p.waiter = waiter
        await waiter.wait()


async def bench_manager(rounds: int, n: int) -> list[float]:
    ports = make_ports(n)
    # Site limit below n * 32 A: every session change moves every active port's share.
    mgr = EnergyManager(ports, EnergyConfig(site_limit_a=16.0 * n, refresh_s=60.0), RealClock())
    await mgr.start()
    for p in ports.values():
        p.emit(SessionEvent(SessionEventType.AUTHORIZED, "s"))
    while set(mgr.allocation().values()) != {16.0}:  # settle before measuring
        await asyncio.sleep(0.01)
    samples = []
    for i in range(rounds):
        kind = SessionEventType.CHARGING_RESUMED if i % 2 else SessionEventType.STOPPING_CHARGING
        t0 = time.perf_counter()
        ports[1].emit(SessionEvent(kind, "s"))
        samples.append(await wait_all(ports, t0))
    await mgr.stop()
    return samples


async def bench_baseline(rounds: int) -> list[float]:
    port = make_ports(1)[1]
    events = port.events()

    async def relay() -> None:
        async for event in events:
            if isinstance(event.body, SessionEvent):  # not the LimitsChanged echo
                await port.set_limit(16.0, 3)

    task = asyncio.create_task(relay())
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        port.emit(SessionEvent(SessionEventType.CHARGING_RESUMED, "s"))
        samples.append(await wait_all({1: port}, t0))
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return samples


def bench_allocate(n: int, seconds: float) -> float:
    demands = [PortDemand(c, True, 32.0, 3, c) for c in range(1, n + 1)]
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        allocate(60.0, demands, 6.0)
        count += 1
    return (time.perf_counter() - t0) / count * 1e6


def pct(samples: list[float], q: float) -> float:
    return sorted(samples)[min(len(samples) - 1, int(q * len(samples)))] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--ports", type=int, default=4)
    args = parser.parse_args()
    manager = asyncio.run(bench_manager(args.rounds, args.ports))
    baseline = asyncio.run(bench_baseline(args.rounds))
    result: dict[str, Any] = {
        "ports": args.ports,
        "rounds": args.rounds,
        "event_to_all_limits_p50_ms": round(pct(manager, 0.5), 4),
        "event_to_all_limits_p99_ms": round(pct(manager, 0.99), 4),
        "event_to_all_limits_max_ms": round(max(manager) * 1e3, 4),
        "baseline_hop_p50_ms": round(pct(baseline, 0.5), 4),
        "ratio_p50_vs_baseline": round(statistics.median(manager) / statistics.median(baseline), 2),
        "allocate_us": round(bench_allocate(args.ports, 0.5), 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
