"""Helpers for the link tests: a station PKI, satellites on loopback, RemotePorts, a TCP proxy."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from waiting import until as wait_until  # noqa: F401 - the shared poll helper, re-exported

from chargeport.clock import ManualClock
from chargeport.fake_port import FakePort
from chargeport.pki import channel_credentials, init_pki
from chargeport.port import PortEvent, PortInfo, SessionEvent, SessionEventType
from main_node.locator import StaticLocator
from main_node.remote_port import RemotePort
from satellite.host import AgentHost

SERIALS = [f"SAT-{i}" for i in range(1, 9)]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    init_pki(d, "station-test", SERIALS)
    return d


@pytest.fixture(scope="session")
def stranger_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another station's CA, with a main and a SAT-1 of its own."""
    d = tmp_path_factory.mktemp("stranger")
    init_pki(d, "other-station", ["SAT-1"])
    return d


def fake_port(serial: str = "SAT-1", *, enabled: bool = False) -> FakePort:
    return FakePort(PortInfo(1, serial, "2.0.0", 32.0, 3), enabled=enabled)


def sleeping_on(clock: ManualClock, n: int = 1) -> bool:
    """At least `n` tasks wait on the ManualClock: the timers `advance` should reach are armed."""
    return clock.sleepers >= n


async def next_event(sub: AsyncIterator[PortEvent], pred: Callable[[Any], bool]) -> PortEvent:
    async with asyncio.timeout(5.0):
        async for ev in sub:
            if pred(ev.body):
                return ev
    raise AssertionError("event stream ended")


class Recorder:
    """Every event a consumer of the RemotePort saw, collected in the background."""

    def __init__(self, sub: Any) -> None:
        self.events: list[PortEvent] = []
        self._task = asyncio.ensure_future(self._collect(sub))

    async def _collect(self, sub: Any) -> None:
        async for ev in sub:
            self.events.append(ev)

    def sessions(self, kind: SessionEventType) -> list[SessionEvent]:
        return [
            e.body for e in self.events if isinstance(e.body, SessionEvent) and e.body.type is kind
        ]

    async def close(self) -> None:
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task


class Link:
    """Start/stop satellites and RemotePorts; everything still running is stopped at teardown."""

    def __init__(self, pki: Path) -> None:
        self.pki = pki
        self.hosts: list[AgentHost] = []
        self.remotes: list[RemotePort] = []
        self.addresses: dict[str, tuple[str, int]] = {}

    async def satellite(
        self, port: Any, serial: str = "SAT-1", *, secure: bool = True, **kw: Any
    ) -> AgentHost:
        host = AgentHost(port, serial=serial, pki_dir=self.pki if secure else None, **kw)
        await host.start()
        self.hosts.append(host)
        self.addresses[serial] = host.address
        return host

    async def remote(
        self,
        serial: str = "SAT-1",
        *,
        connector: int = 2,
        main_boot_id: str = "main-boot-1",
        address: tuple[str, int] | None = None,
        secure: bool = True,
        credentials: Any = None,
        connect: bool = True,
        **kw: Any,
    ) -> RemotePort:
        addr = address or self.addresses[serial]
        creds = credentials or (channel_credentials(self.pki) if secure else None)
        rp = RemotePort(
            serial,
            connector,
            StaticLocator({serial: addr}),
            station_id="station-test",
            main_boot_id=main_boot_id,
            credentials=creds,
            handshake_timeout_s=2.0,
            retry_max_s=0.2,
            **kw,
        )
        self.remotes.append(rp)
        await rp.start()
        if connect:
            async with asyncio.timeout(5.0):
                await rp.wait_connected()
        return rp

    async def close(self) -> None:
        for rp in self.remotes:
            await rp.stop()
        for host in self.hosts:
            await host.stop(0)


@pytest.fixture
async def link(pki: Path) -> AsyncIterator[Link]:
    lk = Link(pki)
    try:
        yield lk
    finally:
        await lk.close()


class TcpProxy:
    """A loopback TCP proxy whose connections a test can cut, and refuse while `paused`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.paused = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return ("127.0.0.1", self.port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.paused:
            writer.close()
            return
        up_r, up_w = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_w}
        pipes = [
            asyncio.ensure_future(self._pipe(reader, up_w)),
            asyncio.ensure_future(self._pipe(up_r, writer)),
        ]
        self._tasks.update(pipes)
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for w in (writer, up_w):
            w.close()
            self._writers.discard(w)

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await r.read(65536):
                w.write(data)
                await w.drain()

    def cut(self) -> None:
        """Abort every open connection (both directions see a reset)."""
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t


@pytest.fixture
async def proxy_factory() -> AsyncIterator[Callable[[tuple[str, int]], Awaitable[TcpProxy]]]:
    proxies: list[TcpProxy] = []

    async def make(target: tuple[str, int]) -> TcpProxy:
        p = TcpProxy(target)
        await p.start()
        proxies.append(p)
        return p

    yield make
    for p in proxies:
        await p.stop()


SAT_PROC = Path(__file__).parent / "sat_proc.py"


async def spawn_satellite(pki: Path, *args: str) -> tuple[subprocess.Popen[str], int]:
    """Start tests/link/sat_proc.py (a satellite in its own process); returns it and its port.

    The caller reaps it (kill + wait in finally)."""
    proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once; reaped by the caller
        [sys.executable, str(SAT_PROC), "--pki", str(pki), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)
    assert line.startswith("LISTENING"), line
    return proc, int(line.split()[1])


async def tell(proc: subprocess.Popen[str], cmd: str) -> None:
    """Send one command line to a spawned satellite and wait for its OK."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(cmd + "\n")
    proc.stdin.flush()
    assert (await asyncio.to_thread(proc.stdout.readline)).startswith("OK")
