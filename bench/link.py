"""Link benchmark on loopback (mTLS): command round trip through RemotePort, event latency,
baselines (bare grpc.aio bidi ping-pong with the same TLS, raw asyncio TCP echo), the time
to detect a kill -9'd satellite and to recover once it is back, and the time to declare a
SIGSTOPped (hung) satellite down. Prints one JSON object last.

Targets (issue 2): command p50 within 1.5x the bare bidi ping-pong; event p99 under 2 ms.
Target (issue 11): detect_hang_s <= link.liveness_s (2 s by default).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from chargeport.fake_port import FakePort
from chargeport.pki import (
    channel_credentials,
    channel_options,
    init_pki,
    server_credentials,
)
from chargeport.port import LinkChanged, MeterValue, PortInfo
from main_node.locator import StaticLocator
from main_node.remote_port import RemotePort
from satellite.host import AgentHost

SATELLITE = """
import asyncio, sys
from chargeport.fake_port import FakePort
from chargeport.port import PortInfo
from satellite.host import AgentHost
async def main():
    host = AgentHost(FakePort(PortInfo(1, "SAT-B", "1.0.0", 32.0, 3), enabled=False),
                     serial="SAT-B", pki_dir=sys.argv[1], listen=sys.argv[2])
    print("LISTENING", await host.start(), flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(p / 100 * len(s)))] * 1e6


def remote(serial: str, addr: tuple[str, int], pki: Path, **kw: Any) -> RemotePort:
    return RemotePort(
        serial,
        2,
        StaticLocator({serial: addr}),
        station_id="bench",
        main_boot_id="bench-main",
        credentials=channel_credentials(pki),
        **kw,
    )


async def bench_port(pki: Path, n: int) -> dict[str, float]:
    fake = FakePort(PortInfo(1, "SAT-1", "1.0.0", 32.0, 3), enabled=False)
    host = AgentHost(fake, serial="SAT-1", pki_dir=pki)
    await host.start()
    rp = remote("SAT-1", host.address, pki)
    await rp.start()
    try:
        async with asyncio.timeout(10):
            await rp.wait_connected()
        for _ in range(200):  # warm-up
            await rp.enable()
        cmd: list[float] = []
        for _ in range(n):
            t0 = time.perf_counter()
            await rp.enable()  # already enabled: the round trip alone
            cmd.append(time.perf_counter() - t0)
        sub = rp.events()
        ev: list[float] = []
        for i in range(n // 2):
            t0 = time.perf_counter()
            fake.meter(float(i), 1.0)
            async for e in sub:
                if isinstance(e.body, MeterValue):
                    break
            ev.append(time.perf_counter() - t0)
        return {
            "cmd_rtt_p50_us": pct(cmd, 50),
            "cmd_rtt_p99_us": pct(cmd, 99),
            "event_p50_us": pct(ev, 50),
            "event_p99_us": pct(ev, 99),
        }
    finally:
        await rp.stop()
        await host.stop(0)


async def bench_bidi(pki: Path, n: int) -> float:
    async def echo(requests: Any, context: Any) -> Any:
        async for r in requests:
            yield r

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.stream_stream_rpc_method_handler(echo)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_secure_port("127.0.0.1:0", server_credentials(pki, "SAT-1"))
    await server.start()
    try:
        async with grpc.aio.secure_channel(
            f"127.0.0.1:{port}", channel_credentials(pki), options=channel_options("SAT-1")
        ) as ch:
            call = ch.stream_stream("/bench.Echo/Echo")()
            samples: list[float] = []
            for i in range(n + 200):
                t0 = time.perf_counter()
                await call.write(b"x" * 32)
                await call.read()
                if i >= 200:
                    samples.append(time.perf_counter() - t0)
            await call.done_writing()
            return pct(samples, 50)
    finally:
        await server.stop(0)


async def bench_tcp(n: int) -> float:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while data := await r.read(1024):
            w.write(data)
        w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    r, w = await asyncio.open_connection("127.0.0.1", port)
    samples: list[float] = []
    for i in range(n + 200):
        t0 = time.perf_counter()
        w.write(b"x" * 32)
        await r.readexactly(32)
        if i >= 200:
            samples.append(time.perf_counter() - t0)
    w.close()
    await w.wait_closed()
    server.close()
    await server.wait_closed()
    return pct(samples, 50)


async def spawn(pki: Path, listen: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once; reaped in finally
        [sys.executable, "-c", SATELLITE, str(pki), listen], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)
    return proc, int(line.split()[1])


async def bench_kill(pki: Path) -> tuple[float, float]:
    procs: list[subprocess.Popen[str]] = []
    rp: RemotePort | None = None
    try:
        proc, port = await spawn(pki, "127.0.0.1:0")
        procs.append(proc)
        rp = remote("SAT-B", ("127.0.0.1", port), pki, retry_max_s=0.2)
        sub = rp.events()
        await rp.start()
        async with asyncio.timeout(10):
            await rp.wait_connected()
        t0 = time.perf_counter()
        proc.kill()
        async with asyncio.timeout(10):
            async for e in sub:
                if isinstance(e.body, LinkChanged) and not e.body.connected:
                    break
        detect = time.perf_counter() - t0
        proc.wait()
        proc2, _ = await spawn(pki, f"127.0.0.1:{port}")
        procs.append(proc2)
        t1 = time.perf_counter()
        async with asyncio.timeout(10):
            await rp.wait_connected()
        return detect, time.perf_counter() - t1
    finally:
        if rp is not None:
            await rp.stop()
        for p in procs:
            p.kill()
            p.wait()
            if p.stdout is not None:
                p.stdout.close()


async def bench_hang(pki: Path, liveness_s: float) -> float:
    """SIGSTOP the satellite: its sockets stay open, only the missing heartbeats tell."""
    proc: subprocess.Popen[str] | None = None
    rp: RemotePort | None = None
    try:
        proc, port = await spawn(pki, "127.0.0.1:0")
        rp = remote("SAT-B", ("127.0.0.1", port), pki, retry_max_s=0.2, liveness_s=liveness_s)
        sub = rp.events()
        await rp.start()
        async with asyncio.timeout(10):
            await rp.wait_connected()
        t0 = time.perf_counter()
        os.kill(proc.pid, signal.SIGSTOP)
        async with asyncio.timeout(30):
            async for e in sub:
                if isinstance(e.body, LinkChanged) and not e.body.connected:
                    break
        return time.perf_counter() - t0
    finally:
        if rp is not None:
            await rp.stop()
        if proc is not None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2000, help="round trips per measurement")
    ap.add_argument("--liveness", type=float, default=2.0, help="link.liveness_s for the hang")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pki = Path(tmp)
        init_pki(pki, "bench", ["SAT-1", "SAT-B"])
        result = await bench_port(pki, args.n)
        result["grpc_bidi_p50_us"] = await bench_bidi(pki, args.n)
        result["tcp_echo_p50_us"] = await bench_tcp(args.n)
        result["detect_kill_s"], result["recover_s"] = await bench_kill(pki)
        result["detect_hang_s"] = await bench_hang(pki, args.liveness)
    result["detect_hang_vs_liveness_ratio"] = result["detect_hang_s"] / args.liveness
    result["cmd_vs_bidi_p50_ratio"] = result["cmd_rtt_p50_us"] / result["grpc_bidi_p50_us"]
    result["bidi_vs_tcp_p50_ratio"] = result["grpc_bidi_p50_us"] / result["tcp_echo_p50_us"]
    result["event_p99_vs_2ms_target"] = result["event_p99_us"] / 2000.0
    result["event_vs_25ms_poll_ratio"] = result["event_p50_us"] / 25000.0
    result = {k: round(v, 3) for k, v in result.items()}
    result["samples"] = args.n
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
