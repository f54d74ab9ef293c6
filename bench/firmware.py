"""Firmware rollout benchmark: a signed 64 MiB bundle to 3 satellites over loopback gRPC.

Each satellite is its own process (BoardServicer + LocalBoardSystem, verifying and writing its
inactive slot). The baseline, measured in the same run against the same processes, is a raw TCP
copy shaped like the rollout: one reader, the same chunk size, a bounded queue per receiver,
3 receivers fed concurrently that sha256 and write what they get (as a board verifies). Rounds
alternate rollout and raw copy; the best of each is kept (the shared 2-core host is noisy).
`throughput_mib_s` is the transfer phase (until every board reported Installed), comparable
to the raw copy; `rollout_s` adds activation and confirmation. The main's peak resident memory
(the kernel's VmHWM, reset before each rollout) must stay small: the image streams.

Both sides run without TLS by default: the figure is the link's own cost, and encryption costs
the same per byte on either side. `--tls` gives both mTLS (the product's link, certificates
from chargeport.pki; the raw copy over ssl sockets with the same certificates; Python's ssl
hands over one 16 KiB record per recv, so that baseline also pays a per-record Python loop).

Prints one JSON object (last line): throughput_mib_s, raw_tcp_mib_s, ratio_vs_raw_tcp,
peak_rss_growth_mib, rollout_s; also stream_s, cpu_s / raw_cpu_s (CPU seconds of the main
and the satellites, best round) and cpu_ratio_vs_raw_tcp: on the shared 2-core host the link is
CPU-bound, and CPU per byte is far steadier than wall time when other work runs.
`--size-mib N`, `--rounds N`, `--tls`, `--tune-malloc`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import queue
import resource
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc

from chargeport import pki
from chargeport.bundle import generate_keypair, load_private_key, sign_bundle
from system_aggregator.aggregator import CHUNK as STREAM_CHUNK
from system_aggregator.aggregator import QUEUE_DEPTH

TARGET = "chargeport-board"
SERIAL = "SAT"  # every bench satellite presents the same certificate
CHUNK = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
# glibc returns freed 1 MiB message buffers to the kernel (heap trim above 2x the dynamic mmap
# threshold) and faults fresh zeroed pages in for the next message: ~32k page faults per board
# per 64 MiB, about a third of a satellite's CPU. Serving 1 MiB from the heap and trimming only
# above 8 MiB keeps them. A deployment setting (the service's environment), not code.
MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=2097152:glibc.malloc.trim_threshold=8388608"


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of this process and `pids` (the satellites) so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    total = own.ru_utime + own.ru_stime
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (proc(5))
    return total


def reset_peak_rss() -> None:
    """Restart the kernel's peak-RSS count (VmHWM) from the current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_bytes() -> int:
    """The peak resident set since the last `reset_peak_rss` (exact, no sampling)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def raw_server_context(pki_dir: Path) -> ssl.SSLContext:
    """The raw copy's receiver TLS: the satellite certificate, client certificates required."""
    pair = pki.satellite_pair(pki_dir, SERIAL)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki.ca_cert_path(pki_dir))
    ctx.load_cert_chain(pair.cert, pair.key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def raw_client_context(pki_dir: Path) -> ssl.SSLContext:
    """The raw copy's sender TLS: trusts the station CA, presents the main certificate."""
    pair = pki.main_pair(pki_dir)
    ctx = ssl.create_default_context(cafile=pki.ca_cert_path(pki_dir))
    ctx.load_cert_chain(pair.cert, pair.key)
    return ctx


# ------------------------------------------------------------------ satellite process


async def satellite(state_dir: Path, pub: Path, pki_dir: Path | None) -> None:
    from chargeport.v1 import link_pb2_grpc
    from satellite.board_service import BoardServicer
    from satellite.board_system import LocalBoardSystem

    board = LocalBoardSystem(SERIAL, "satellite", state_dir, [pub], TARGET, version="1.0.0")
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 8 * CHUNK)])
    link_pb2_grpc.add_BoardServicer_to_server(BoardServicer(board), server)  # type: ignore[no-untyped-call]
    if pki_dir is None:
        grpc_port = server.add_insecure_port("127.0.0.1:0")
    else:
        creds = pki.server_credentials(pki_dir, SERIAL)
        grpc_port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()

    listener = socket.create_server(("127.0.0.1", 0))
    raw_port = listener.getsockname()[1]
    tls = None if pki_dir is None else raw_server_context(pki_dir)

    def receive() -> None:
        # Like a board: hash every byte (sha256, as the bundle verifier does) and write it.
        # Blocking socket + recv_into in a thread: the fastest plain-Python receiver.
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # listener closed
            if tls is not None:
                conn = tls.wrap_socket(conn, server_side=True)
            digest = hashlib.sha256()
            with conn, (state_dir / "raw.bin").open("wb") as out:
                while n := conn.recv_into(buf):
                    digest.update(view[:n])
                    out.write(view[:n])
                if isinstance(conn, ssl.SSLSocket):
                    conn.unwrap()  # answer close_notify; the reply below goes in the clear
                conn.sendall(b"OK")

    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    print(f"{grpc_port} {raw_port}", flush=True)
    await asyncio.to_thread(sys.stdin.read)  # until the bench closes our stdin
    listener.shutdown(socket.SHUT_RDWR)
    listener.close()
    await server.stop(None)


# ------------------------------------------------------------------ main side


def raw_copy(
    path: Path, ports: list[int], pki_dir: Path | None, pids: list[int]
) -> tuple[float, float]:
    """The baseline, shaped like the rollout: one reader, the same chunks, a bounded queue per
    receiver and all receivers fed concurrently; receivers hash and write like a board."""
    conns = [socket.create_connection(("127.0.0.1", p)) for p in ports]
    if pki_dir is not None:  # handshakes before the clock starts, as the gRPC channels connect
        ctx = raw_client_context(pki_dir)
        conns = [ctx.wrap_socket(c, server_hostname=SERIAL) for c in conns]
    queues = [queue.Queue[bytes | None](QUEUE_DEPTH) for _ in conns]

    def read() -> None:
        with path.open("rb") as f:
            while chunk := f.read(STREAM_CHUNK):
                for q in queues:
                    q.put(chunk)
        for q in queues:
            q.put(None)

    def send(conn: socket.socket, q: queue.Queue[bytes | None]) -> None:
        while (chunk := q.get()) is not None:
            conn.sendall(chunk)
        if isinstance(conn, ssl.SSLSocket):
            conn.unwrap()  # close_notify: the receiver sees the end of the stream
        conn.shutdown(socket.SHUT_WR)
        assert conn.recv(2) == b"OK"
        conn.close()

    cpu0 = cpu_seconds(pids)
    t0 = time.perf_counter()
    threads = [threading.Thread(target=read)]
    threads += [threading.Thread(target=send, args=cq) for cq in zip(conns, queues, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, cpu_seconds(pids) - cpu0


class _Timed:
    """A board that notes when its install stream ended (Installed): the transfer phase."""

    def __init__(self, board: Any, installed: list[float]) -> None:
        self._board = board
        self._installed = installed
        self.serial = board.serial

    async def install_firmware(self, bundle: Any, total_size: int) -> AsyncIterator[Any]:
        async for progress in self._board.install_firmware(bundle, total_size):
            yield progress
        self._installed.append(time.perf_counter())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._board, name)


async def rollout(
    path: Path, pub: Path, ports: list[int], work: Path, pki_dir: Path | None, pids: list[int]
) -> tuple[float, float, int, float]:
    from chargeport.bundle import verify_file
    from main_node.remote_board import RemoteBoardSystem
    from system_aggregator.aggregator import SystemAggregator

    if pki_dir is None:
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{p}") for p in ports]
    else:
        creds = pki.channel_credentials(pki_dir)
        options = pki.channel_options(SERIAL)
        channels = [grpc.aio.secure_channel(f"127.0.0.1:{p}", creds, options) for p in ports]
    installed: list[float] = []
    remotes = [_Timed(RemoteBoardSystem(c, f"SAT-{i}"), installed) for i, c in enumerate(channels)]
    agg = SystemAggregator(
        remotes[-1], remotes[:-1], trusted_keys=[pub], target=TARGET, work_dir=work, poll_s=0.01
    )
    from chargeport.bundle import load_public_key

    manifest = verify_file(path, [load_public_key(pub)], TARGET)  # the main verifies first
    await asyncio.gather(*(r.info() for r in remotes))  # channels connected
    base = rss_bytes()
    reset_peak_rss()
    cpu0 = cpu_seconds(pids)
    t0 = time.perf_counter()
    try:
        await agg.rollout(path, manifest)
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds(pids) - cpu0
        streamed = max(installed) - t0
        peak = peak_rss_bytes()
        infos = await asyncio.gather(*(r.info() for r in remotes))
        assert {i.firmware_version for i in infos} == {"2.0.0"}, infos
    finally:
        for c in channels:
            await c.close()
    return streamed, elapsed, max(0, peak - base), cpu


def _ports(proc: subprocess.Popen[str]) -> tuple[int, int]:
    assert proc.stdout is not None
    grpc_port, raw_port = map(int, proc.stdout.readline().split())
    return grpc_port, raw_port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    parser.add_argument(
        "--dir",
        default=shm,
        help="scratch directory (default tmpfs: measure the link, not the disk)",
    )
    parser.add_argument("--tls", action="store_true", help="mTLS for gRPC and the raw copy")
    parser.add_argument(
        "--tune-malloc",
        action="store_true",
        help=f"run every process with GLIBC_TUNABLES={MALLOC_TUNABLES}",
    )
    parser.add_argument(
        "--satellite", nargs=2, metavar=("STATE_DIR", "PUB"), help=argparse.SUPPRESS
    )
    parser.add_argument("--pki", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tune_malloc and os.environ.get("GLIBC_TUNABLES") != MALLOC_TUNABLES:
        # Tunables are read at exec: restart this process (satellites inherit the variable).
        env = {**os.environ, "GLIBC_TUNABLES": MALLOC_TUNABLES}
        os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]], env)
    if args.satellite:
        asyncio.run(satellite(Path(args.satellite[0]), Path(args.satellite[1]), args.pki))
        return
    with tempfile.TemporaryDirectory(prefix="bench-fw-", dir=args.dir) as tmp:
        d = Path(tmp)
        pub = generate_keypair(d / "fw.key")
        payload = d / "payload.bin"
        with payload.open("wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(CHUNK))
        bundle = d / "fw.bundle"
        sign_bundle(payload, load_private_key(d / "fw.key"), "2.0.0", TARGET, bundle)
        payload.unlink()
        size_mib = bundle.stat().st_size / CHUNK
        pki_dir = None
        tls_args: list[str] = []
        if args.tls:
            pki_dir = d / "pki"
            pki.init_pki(pki_dir, "bench", [SERIAL])
            tls_args = ["--pki", str(pki_dir)]
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--satellite", str(d / f"sat{i}"), str(pub), *tls_args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(3)
        ]
        try:
            ports = [_ports(p) for p in procs]
            pids = [p.pid for p in procs]
            # Interleaved rounds, best of each: the shared 2-core machine is noisy.
            runs, raws = [], []
            for _ in range(args.rounds):
                grpc_ports = [g for g, _ in ports]
                work = d / "work"
                runs.append(asyncio.run(rollout(bundle, pub, grpc_ports, work, pki_dir, pids)))
                raws.append(raw_copy(bundle, [r for _, r in ports], pki_dir, pids))
            stream_s = min(t for t, _, _, _ in runs)
            rollout_s = min(t for _, t, _, _ in runs)
            growth = max(g for _, _, g, _ in runs)
            rollout_cpu = min(c for _, _, _, c in runs)
            raw_s = min(t for t, _ in raws)
            raw_cpu = min(c for _, c in raws)
        finally:
            for p in procs:
                p.stdin.close()  # type: ignore[union-attr]
            for p in procs:
                p.wait(timeout=10)
        throughput = size_mib / stream_s
        raw = size_mib / raw_s
        print(
            json.dumps(
                {
                    "throughput_mib_s": round(throughput, 1),
                    "raw_tcp_mib_s": round(raw, 1),
                    "ratio_vs_raw_tcp": round(throughput / raw, 3),
                    "peak_rss_growth_mib": round(growth / CHUNK, 1),
                    "rollout_s": round(rollout_s, 2),
                    "stream_s": round(stream_s, 2),
                    "cpu_s": round(rollout_cpu, 2),
                    "raw_cpu_s": round(raw_cpu, 2),
                    "cpu_ratio_vs_raw_tcp": round(raw_cpu / rollout_cpu, 3),
                    "size_mib": round(size_mib, 1),
                    "boards": 3,
                    "tls": args.tls,
                    "malloc_tuned": os.environ.get("GLIBC_TUNABLES") == MALLOC_TUNABLES,
                    "max_rss_mib": round(
                        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
                    ),
                }
            )
        )


if __name__ == "__main__":
    main()
