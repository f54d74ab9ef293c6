"""Fixtures for the aggregator tests: keys, bundles, a 3-board station on loopback gRPC,
a real aiohttp HTTP server and a real pyftpdlib FTP server (both on 127.0.0.1:0)."""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

from chargeport.bundle import generate_keypair, load_private_key, sign_bundle
from chargeport.v1 import link_pb2_grpc
from main_node.remote_board import RemoteBoardSystem
from satellite.board_service import BoardServicer
from satellite.board_system import LocalBoardSystem
from system_aggregator.aggregator import SystemAggregator

TARGET = "chargeport-board"
OLD = "1.0.0"


@dataclass
class Keys:
    key: Ed25519PrivateKey
    pub: Path
    other_key: Ed25519PrivateKey  # not trusted by anyone
    other_pub: Path


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    pub = generate_keypair(tmp_path / "fw.key")
    other = generate_keypair(tmp_path / "other.key")
    return Keys(
        load_private_key(tmp_path / "fw.key"), pub, load_private_key(tmp_path / "other.key"), other
    )


def make_bundle(
    directory: Path,
    key: Ed25519PrivateKey,
    version: str = "2.0.0",
    target: str = TARGET,
    size: int = 300_000,
    name: str = "fw.bundle",
) -> Path:
    payload = directory / f"{name}.payload"
    payload.write_bytes(os.urandom(size))
    out = directory / name
    sign_bundle(payload, key, version, target, out, created=1_700_000_000.0)
    payload.unlink()
    return out


@dataclass
class Station:
    local: LocalBoardSystem
    satellites: list[LocalBoardSystem]
    remotes: list[RemoteBoardSystem]
    servers: list[grpc.aio.Server]
    channels: list[grpc.aio.Channel]
    aggregator: SystemAggregator
    addresses: list[str]
    statuses: list[str] = field(default_factory=list)

    @property
    def boards(self) -> list[LocalBoardSystem]:
        return [*self.satellites, self.local]

    async def record(self, status: str) -> None:
        self.statuses.append(status)


async def serve(board: LocalBoardSystem) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    link_pb2_grpc.add_BoardServicer_to_server(BoardServicer(board), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


def board(
    tmp_path: Path, serial: str, role: str, keys: Keys, target: str = TARGET
) -> LocalBoardSystem:
    return LocalBoardSystem(serial, role, tmp_path / serial, [keys.pub], target, version=OLD)


@pytest.fixture
async def station(tmp_path: Path, keys: Keys) -> AsyncIterator[Station]:
    local = board(tmp_path, "MAIN-1", "main", keys)
    sats = [board(tmp_path, f"SAT-{i}", "satellite", keys) for i in (1, 2)]
    servers, channels, remotes, addresses = [], [], [], []
    for sat in sats:
        server, port = await serve(sat)
        addresses.append(f"127.0.0.1:{port}")
        channel = grpc.aio.insecure_channel(addresses[-1])
        servers.append(server)
        channels.append(channel)
        remotes.append(RemoteBoardSystem(channel, sat.serial, timeout_s=5.0))
    agg = SystemAggregator(
        local, remotes, trusted_keys=[keys.pub], target=TARGET, work_dir=tmp_path / "work",
        station_id="ST-1", restart_timeout_s=5.0, poll_s=0.01,
    )  # fmt: skip
    st = Station(local, sats, remotes, servers, channels, agg, addresses)
    try:
        yield st
    finally:
        await agg.aclose()
        for channel in channels:
            await channel.close()
        for server in servers:
            await server.stop(None)


# ------------------------------------------------------------------ HTTP


@dataclass
class HttpServer:
    url: str
    files: Path
    uploads: Path
    gets: int = 0
    fail_uploads: int = 0  # answer 503 to this many uploads first
    upload_attempts: int = 0


@pytest.fixture
async def http_server(tmp_path: Path) -> AsyncIterator[HttpServer]:
    files = tmp_path / "www"
    uploads = tmp_path / "http-uploads"
    files.mkdir()
    uploads.mkdir()
    state = HttpServer("", files, uploads)

    async def get(request: web.Request) -> web.StreamResponse:
        state.gets += 1
        path = files / request.match_info["name"]
        if not path.exists():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    async def truncated(request: web.Request) -> web.StreamResponse:
        # Announce the whole bundle, send half, then drop the connection.
        state.gets += 1
        path = files / request.match_info["name"]
        data = path.read_bytes()
        resp = web.StreamResponse(headers={"Content-Length": str(len(data))})
        await resp.prepare(request)
        await resp.write(data[: len(data) // 2])
        assert request.transport is not None
        request.transport.close()
        return resp

    async def put(request: web.Request) -> web.Response:
        state.upload_attempts += 1
        if state.fail_uploads > 0:
            state.fail_uploads -= 1
            return web.Response(status=503)
        with (uploads / request.match_info["name"]).open("wb") as out:
            async for chunk in request.content.iter_chunked(65536):
                out.write(chunk)
        return web.Response(status=201)

    async def post(request: web.Request) -> web.Response:
        state.upload_attempts += 1
        reader = await request.multipart()
        async for part in reader:
            if getattr(part, "name", None) == "file":
                name = Path(part.filename or "upload").name  # type: ignore[union-attr]
                with (uploads / name).open("wb") as out:
                    while chunk := await part.read_chunk():  # type: ignore[union-attr]
                        out.write(chunk)
        return web.Response(status=200)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.add_routes(
        [
            web.get("/fw/{name}", get),
            web.get("/truncated/{name}", truncated),
            web.put("/up/{name}", put),
            web.post("/form", post),
        ]
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


# ------------------------------------------------------------------ FTP


@dataclass
class FtpServer:
    url: str  # ftp://user:password@127.0.0.1:port
    root: Path


@pytest.fixture
def ftp_server(tmp_path: Path) -> Iterator[FtpServer]:
    root = tmp_path / "ftp"
    (root / "diag").mkdir(parents=True)
    authorizer = DummyAuthorizer()
    authorizer.add_user("tech", "p@ss:w0rd", str(root), perm="elradfmwMT")
    handler = type("Handler", (FTPHandler,), {"authorizer": authorizer, "banner": "test"})
    server = FTPServer(("127.0.0.1", 0), handler)
    port = server.socket.getsockname()[1]
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)
        server.close_all()

    thread = threading.Thread(target=loop, name="ftpd", daemon=True)
    thread.start()
    try:
        # '@' and ':' in the password are percent-encoded, as in a real OCPP location.
        yield FtpServer(f"ftp://tech:p%40ss%3Aw0rd@127.0.0.1:{port}", root)
    finally:
        stop.set()
        thread.join(timeout=5)
