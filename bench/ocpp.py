"""OCPP benchmark: main CPU/RSS with 4 connectors charging at MeterValueSampleInterval=1, and
the time to drain 1,000 journaled transaction messages after a reconnect.

The CSMS runs in a child process so the numbers are the main's alone. Baselines from the same
run: CPU of the same session with idle connectors, and 1,000 bare `ocpp` CALLs (no journal).
The same figures for the OCPP 2.0.1 edge (TxUpdatedInterval=1, 1,000 journaled
TransactionEvents) come as `ocpp201_*`, each also as a ratio to the 1.6 figure of this run
(goal: within 1.2x). Each edge runs in its own process, so RSS is its own.
Prints one JSON object as the last line. `--seconds N` lengthens the measuring windows.
"""

# ruff: noqa: E402  (the sys.path fix below must run before `ocpp` is imported)
from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the `ocpp` package; keep its folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse
import asyncio
import contextlib
import json
import resource
import socket
import subprocess
import tempfile
import time

import websockets
from ocpp.v16 import ChargePoint, call
from websockets.typing import Subprotocol

from chargeport.fake_port import FakePort
from chargeport.port import MeterValue, PortInfo
from main_node.ocpp.client import OcppSession, SessionOptions
from main_node.ocpp.db import open_db
from main_node.ocpp.meter_values import meter_value_entry, meter_values_payload
from main_node.ocpp201.device_model import MEASURANDS, VarKey
from main_node.ocpp201.session import Options201, Session201


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _popen_csms(port: int, module: str = "simulation.csms") -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", module, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _csms(port: int, module: str = "simulation.csms") -> subprocess.Popen[bytes]:
    proc = _popen_csms(port, module)
    for _ in range(200):
        with contextlib.suppress(OSError):
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return proc
        await asyncio.sleep(0.05)
    raise RuntimeError("CSMS did not start")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(10)


async def _window(
    session: OcppSession | Session201, ports: dict[int, FakePort], seconds: float, charging: bool
) -> float:
    cpu0, t0 = _cpu(), time.monotonic()
    energy = 0.0
    while time.monotonic() - t0 < seconds:
        if charging:
            energy += 3.0
            for port in ports.values():
                port.emit(MeterValue(energy, 11000.0, (230.0,) * 3, (16.0,) * 3, 50.0, 30.0))
        await asyncio.sleep(1.0)
    return (_cpu() - cpu0) / (time.monotonic() - t0)


async def _bare_calls(url: str, n: int, payload: call.MeterValues) -> float:
    async with websockets.connect(url + "/BARE", subprotocols=[Subprotocol("ocpp1.6")]) as ws:
        cp = ChargePoint("BARE", ws)
        reader = asyncio.create_task(cp.start())
        t0 = time.monotonic()
        for _ in range(n):
            await cp.call(payload)
        elapsed = time.monotonic() - t0
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
            await reader
    return elapsed


async def run(seconds: float) -> dict[str, float]:
    port = _free_port()
    url = f"ws://127.0.0.1:{port}/ocpp"
    proc = await _csms(port)
    tmp = tempfile.TemporaryDirectory()
    conn = open_db(Path(tmp.name) / "bench.sqlite")
    ports = {c: FakePort(PortInfo(c, f"S{c}", "1", 32.0, 3)) for c in range(1, 5)}
    session = OcppSession(
        SessionOptions(url=url, station_id="BENCH", backoff_initial_s=0.05, backoff_max_s=0.2),
        ports,
        conn,
    )
    session.config.change("MeterValueSampleInterval", "1")
    session.config_changed("MeterValueSampleInterval")
    task = asyncio.create_task(session.run())
    try:
        await asyncio.wait_for(session.connected.wait(), 10)
        idle_cpu = await _window(session, ports, seconds, charging=False)
        for p in ports.values():
            await p.authorize("TAG-OK")
            p.plug_in()
            p.ev_ready()
        busy_cpu = await _window(session, ports, seconds, charging=True)
        rss = _rss_mib()
        # Drain: the CSMS goes away, 1,000 transaction messages pile up, it comes back.
        _stop(proc)
        while session.online:
            await asyncio.sleep(0.02)
        tx = session.active_tx[1]
        entry = meter_value_entry(
            time.time(), MeterValue(1.0, 1.0), "Sample.Periodic", ["Energy.Active.Import.Register"]
        )
        payload = meter_values_payload(1, [entry])
        while session.journal.pending_count() < 1000:
            session.journal.enqueue("MeterValues", payload, 1, tx.local_tx)
        queued = session.journal.pending_count()
        t0 = time.monotonic()
        proc = await _csms(port)
        while session.journal.pending_count() > 0:
            await asyncio.sleep(0.01)
        drain = (time.monotonic() - t0) * 1000 / queued
        bare = await _bare_calls(
            url,
            1000,
            call.MeterValues(
                connector_id=1,
                meter_value=[{"timestamp": entry["timestamp"], "sampledValue": [{"value": "1"}]}],
                transaction_id=1,
            ),
        )
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        conn.close()
        tmp.cleanup()
        _stop(proc)
    return {
        "main_cpu_fraction": round(busy_cpu, 4),
        "main_cpu_idle_fraction": round(idle_cpu, 4),
        "main_cpu_ratio_vs_idle": round(busy_cpu / idle_cpu, 2) if idle_cpu else 0.0,
        "main_rss_mib": round(rss, 1),
        "drain_1000_s": round(drain, 3),
        "bare_1000_calls_s": round(bare, 3),
        "drain_ratio_vs_bare": round(drain / bare, 2) if bare else 0.0,
    }


async def run201(seconds: float) -> dict[str, float]:
    """The 2.0.1 edge: CPU with 4 guns charging, RSS, drain of 1,000 TransactionEvents."""
    port = _free_port()
    url = f"ws://127.0.0.1:{port}/ocpp"
    module = "simulation.csms201"
    proc = await _csms(port, module)
    tmp = tempfile.TemporaryDirectory()
    conn = open_db(Path(tmp.name) / "bench.sqlite")
    ports = {c: FakePort(PortInfo(c, f"S{c}", "1", 32.0, 3)) for c in range(1, 5)}
    session = Session201(
        Options201(url=url, station_id="BENCH", backoff_initial_s=0.05, backoff_max_s=0.2),
        ports,
        conn,
    )
    interval = VarKey("SampledDataCtrlr", "TxUpdatedInterval")
    session.device.set(interval, "1")  # as MeterValueSampleInterval=1 for 1.6
    task = asyncio.create_task(session.run())
    try:
        await asyncio.wait_for(session.connected.wait(), 10)
        for p in ports.values():
            await p.authorize("TAG-OK")
            p.plug_in()
            p.ev_ready()
        busy_cpu = await _window(session, ports, seconds, charging=True)
        rss = _rss_mib()
        _stop(proc)
        while session.online:
            await asyncio.sleep(0.02)
        # Like the 1.6 drain's MeterValues: one energy register reading per message.
        session.device.set(VarKey("SampledDataCtrlr", "TxUpdatedMeasurands"), MEASURANDS[0])
        while session.journal.pending_count() < 1000:
            session.sample(1, "MeterValuePeriodic", "Sample.Periodic")
        queued = session.journal.pending_count()
        t0 = time.monotonic()
        proc = await _csms(port, module)
        while session.journal.pending_count() > 0:
            await asyncio.sleep(0.01)
        drain = (time.monotonic() - t0) * 1000 / queued
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        conn.close()
        tmp.cleanup()
        _stop(proc)
    return {
        "ocpp201_main_cpu_fraction": round(busy_cpu, 4),
        "ocpp201_main_rss_mib": round(rss, 1),
        "ocpp201_drain_1000_s": round(drain, 3),
    }


def _child(edge: str, seconds: float) -> dict[str, float]:
    """Run one edge in a process of its own (its RSS is then its own); its JSON line."""
    out = subprocess.run(
        [sys.executable, __file__, "--edge", edge, "--seconds", str(seconds)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def _ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each CPU window")
    parser.add_argument("--edge", choices=("1.6", "2.0.1"), help="measure one edge only")
    args = parser.parse_args()
    if args.edge == "1.6":
        print(json.dumps(asyncio.run(run(args.seconds))))
        return
    if args.edge == "2.0.1":
        print(json.dumps(asyncio.run(run201(args.seconds))))
        return
    figures = _child("1.6", args.seconds)
    v201 = _child("2.0.1", args.seconds)
    figures.update(v201)
    figures["ocpp201_cpu_ratio_vs_16"] = _ratio(
        v201["ocpp201_main_cpu_fraction"], figures["main_cpu_fraction"]
    )
    figures["ocpp201_rss_ratio_vs_16"] = _ratio(
        v201["ocpp201_main_rss_mib"], figures["main_rss_mib"]
    )
    figures["ocpp201_drain_ratio_vs_16"] = _ratio(
        v201["ocpp201_drain_1000_s"], figures["drain_1000_s"]
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
