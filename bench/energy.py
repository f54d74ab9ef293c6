"""Energy manager: latency, fairness, relay wear and the stale-mains fail-safe (FakePorts).

- `event_to_all_limits`: a port event to new limits on every affected port; baseline in the
  same run: the bare hop (port event -> subscriber task -> set_limit on one port).
- `starved_guns`: guns that never got current over 2 simulated hours (ManualClock), 4 guns on a
  20 A site (three fit at 6 A); baseline: the same run with rotation switched off.
- `switches_per_hour`: contactor operations (offer 0 <-> >= 6 A) per gun and hour, 4 guns on a
  40 A site whose mains reading is noisy around the 4 x 6 A threshold; baseline: no hysteresis,
  no minimum pause or on time.
- `stale_fallback_s`: real time from the last mains reading until every port has the fallback
  limit, with `mains_max_age_s` = 1 s (goal: <= age + 1 s).
Prints one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import time
from typing import Any

from chargeport.clock import ManualClock, RealClock
from chargeport.config import EnergyConfig
from chargeport.fake_port import FakePort
from chargeport.port import PortInfo, SessionEvent, SessionEventType
from main_node.energy import EnergyManager, PortDemand, allocate

__all__ = ["main"]


class TimedPort(FakePort):
    """Records when set_limit was last called and wakes a waiter."""

    waiter: asyncio.Event | None = None
    sent_at = 0.0
    last: float | None = None

    async def set_limit(self, amps: float, phases: int, valid_for_s: float = 0.0) -> None:
        await super().set_limit(amps, phases, valid_for_s)
        self.calls.clear()
        self.history.clear()
        self.sent_at = time.perf_counter()
        self.last = amps
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


class CountingPort(FakePort):
    """Counts offer switches (0 <-> >= 6 A) and whether the port was ever offered current."""

    on = False
    switches = 0
    served = False

    async def set_limit(self, amps: float, phases: int, valid_for_s: float = 0.0) -> None:
        await super().set_limit(amps, phases, valid_for_s)
        self.calls.clear()
        self.history.clear()
        if (amps > 0) != self.on:
            self.on = amps > 0
            self.switches += 1
        self.served = self.served or self.on


async def spin(n: int = 40) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def simulate(
    config: EnergyConfig, hours: float, step_s: float, mains: Any = None
) -> list[CountingPort]:
    """Four charging guns under `config` for `hours` of ManualClock time."""
    clock = ManualClock()
    ports = {c: CountingPort(PortInfo(c, f"S{c}", "1", 32.0, 3), clock=clock) for c in range(1, 5)}
    mgr = EnergyManager(ports, config, clock)
    await mgr.start()
    for p in ports.values():
        await p.authorize("TAG")
        p.plug_in()
        p.ev_ready()
        await spin()
    t = 0.0
    while t < hours * 3600:
        if mains is not None:
            mgr.set_mains_reading(mains(t))
        clock.advance(step_s)
        t += step_s
        await spin()
    await mgr.stop()
    return list(ports.values())


async def bench_starved(rotation: bool) -> int:
    config = EnergyConfig(site_limit_a=20.0, rotation_s=600.0 if rotation else 1e12)
    ports = await simulate(config, 2.0, config.refresh_s)
    return sum(not p.served for p in ports)


async def bench_switches(hysteresis: bool) -> float:
    rng = random.Random(7)

    def mains(t: float) -> tuple[float, float, float]:
        # Building load ~15 A: meter noise (sigma 1.5 A) and a slow half-hour swing of 2 A.
        other = 15.0 + rng.gauss(0.0, 1.5) + 2.0 * math.sin(2 * math.pi * t / 1800.0)
        load = max(other, 0.0)
        return (load, load, load)

    if hysteresis:
        config = EnergyConfig(site_limit_a=40.0)
    else:
        config = EnergyConfig(site_limit_a=40.0, hysteresis_a=0.0, min_pause_s=0.0, min_on_s=0.0)
    hours = 1.0
    ports = await simulate(config, hours, 1.0, mains)
    return max(p.switches for p in ports) / hours


async def bench_stale(max_age_s: float) -> float:
    ports = make_ports(4)
    fallback = 10.0
    config = EnergyConfig(site_limit_a=64.0, mains_max_age_s=max_age_s, mains_fallback_a=fallback)
    mgr = EnergyManager(ports, config, RealClock())
    await mgr.start()
    for p in ports.values():
        p.emit(SessionEvent(SessionEventType.AUTHORIZED, "s"))
    mgr.set_mains_reading((0.0, 0.0, 0.0))
    while set(mgr.allocation().values()) != {16.0}:
        await asyncio.sleep(0.01)
    t0 = time.perf_counter()
    mgr.set_mains_reading((0.0, 0.0, 0.0))  # the last reading
    while True:
        waiter = asyncio.Event()
        for p in ports.values():
            p.waiter = waiter
        if sum(p.last or 0.0 for p in ports.values()) <= fallback + 1e-9:
            break
        await waiter.wait()
    took = max(p.sent_at for p in ports.values()) - t0
    await mgr.stop()
    return took


def pct(samples: list[float], q: float) -> float:
    return sorted(samples)[min(len(samples) - 1, int(q * len(samples)))] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--ports", type=int, default=4)
    parser.add_argument("--stale-age", type=float, default=1.0)
    args = parser.parse_args()
    manager = asyncio.run(bench_manager(args.rounds, args.ports))
    baseline = asyncio.run(bench_baseline(args.rounds))
    starved = asyncio.run(bench_starved(rotation=True))
    starved_baseline = asyncio.run(bench_starved(rotation=False))
    switches = asyncio.run(bench_switches(hysteresis=True))
    switches_baseline = asyncio.run(bench_switches(hysteresis=False))
    stale = asyncio.run(bench_stale(args.stale_age))
    result: dict[str, Any] = {
        "ports": args.ports,
        "rounds": args.rounds,
        "event_to_all_limits_p50_ms": round(pct(manager, 0.5), 4),
        "event_to_all_limits_p99_ms": round(pct(manager, 0.99), 4),
        "event_to_all_limits_max_ms": round(max(manager) * 1e3, 4),
        "baseline_hop_p50_ms": round(pct(baseline, 0.5), 4),
        "ratio_p50_vs_baseline": round(statistics.median(manager) / statistics.median(baseline), 2),
        "allocate_us": round(bench_allocate(args.ports, 0.5), 2),
        "starved_guns": starved,
        "starved_guns_no_rotation": starved_baseline,
        "switches_per_hour": round(switches, 2),
        "switches_per_hour_no_hysteresis": round(switches_baseline, 2),
        "stale_max_age_s": args.stale_age,
        "stale_fallback_s": round(stale, 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
