"""No anonymous path changes a gun's state (issue 14, "Figures"). Every control entry point is
tried without credentials against the real thing: MQTT command topics on a mosquitto with a
password file and an ACL (and, with the default config, on an open broker); the dashboard's
POSTs without the operator password; the satellite's gRPC Link and Board services (mTLS on)
without a client certificate, in plain text, and with another station's certificate. Each row
also has a positive control (the same call with credentials works), so a refusal is proof of
the guard, not of a dead server. The test prints the matrix."""

from __future__ import annotations

import asyncio
import getpass
import json
import socket
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from chargeport.bundle import generate_keypair
from chargeport.clock import ManualClock
from chargeport.fake_port import FakePort
from chargeport.pki import channel_credentials, channel_options, init_pki, main_pair
from chargeport.port import PortInfo
from chargeport.v1 import link_pb2 as pb
from chargeport.v1 import link_pb2_grpc
from main_node.dashboard import Dashboard
from main_node.dashboard_auth import hash_password
from main_node.mqtt_api import MqttApi
from main_node.view import StationView
from satellite.board_system import LocalBoardSystem
from satellite.host import AgentHost

pytestmark = pytest.mark.integration

PREFIX, STATION = "cp", "st1"
BASE = f"{PREFIX}/{STATION}"
WAIT_S = 10.0  # an upper bound for a failing test, never asserted on
STATE_CALLS = {"enable", "disable", "set_limit", "authorize", "stop_transaction", "pause"}


@dataclass
class Row:
    entry: str
    attempt: str
    outcome: str
    changed: bool


def changed(port: FakePort, before: int) -> bool:
    return any(name in STATE_CALLS for name, _ in port.calls[before:])


def print_matrix(rows: list[Row]) -> None:
    widths = [max(len(getattr(r, f)) for r in rows) for f in ("entry", "attempt", "outcome")]
    print()
    print(f"{'entry point':<{widths[0]}}  {'anonymous attempt':<{widths[1]}}  "
          f"{'outcome':<{widths[2]}}  gun changed")  # fmt: skip
    for r in rows:
        print(f"{r.entry:<{widths[0]}}  {r.attempt:<{widths[1]}}  {r.outcome:<{widths[2]}}  "
              f"{'YES' if r.changed else 'no'}")  # fmt: skip


# ------------------------------------------------------------------ MQTT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    def __init__(self, workdir: Path, *, locked: bool) -> None:
        self.port = _free_port()
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "allow_anonymous true",
                 f"user {getpass.getuser()}"]  # fmt: skip
        if locked:
            passwd = workdir / "passwd"
            passwd.touch(mode=0o600)
            subprocess.run(["mosquitto_passwd", "-b", str(passwd), "station", "s3cret"], check=True)
            acl = workdir / "acl"
            acl.write_text(f"topic read {BASE}/#\n\nuser station\ntopic readwrite {BASE}/#\n")
            lines += [f"password_file {passwd}", f"acl_file {acl}"]
        conf = workdir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        self._log = (workdir / "mosquitto.log").open("wb")
        self.proc = subprocess.Popen(
            ["/usr/sbin/mosquitto", "-c", str(conf)], stdout=self._log, stderr=subprocess.STDOUT
        )

    async def ready(self) -> None:
        async with asyncio.timeout(WAIT_S):
            while True:
                assert self.proc.poll() is None, "mosquitto exited"
                try:
                    _, w = await asyncio.open_connection("127.0.0.1", self.port)
                    w.close()
                    return
                except OSError:
                    await asyncio.sleep(0.02)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=5)
        self._log.close()


class Client:
    """An MQTT 5 client: publish at QoS 1 and get the PUBACK reason code; record messages."""

    def __init__(self, port: int, loop: asyncio.AbstractEventLoop, user: str = "", pw: str = ""):
        self.loop = loop
        self.messages: list[tuple[str, bytes]] = []
        self.changed = asyncio.Event()
        self.acks: dict[int, asyncio.Future[int]] = {}
        self.subscribed = asyncio.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if user:
            self.c.username_pw_set(user, pw)
        self.c.on_connect = self._on_connect
        self.c.on_subscribe = self._on_subscribe
        self.c.on_message = self._on_message
        self.c.on_publish = self._on_publish
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    # paho's thread: hop into the loop only
    def _on_connect(self, c: mqtt.Client, *_: Any) -> None:
        c.subscribe(f"{BASE}/#", qos=1)

    def _on_subscribe(self, *_: Any) -> None:
        self.loop.call_soon_threadsafe(self.subscribed.set)

    def _on_message(self, c: mqtt.Client, u: Any, m: mqtt.MQTTMessage) -> None:
        self.loop.call_soon_threadsafe(self._record, m.topic, bytes(m.payload))

    def _on_publish(self, c: mqtt.Client, u: Any, mid: int, rc: Any, p: Any) -> None:
        self.loop.call_soon_threadsafe(self._acked, mid, int(rc.value))

    def _record(self, topic: str, payload: bytes) -> None:
        self.messages.append((topic, payload))
        self.changed.set()

    def _acked(self, mid: int, code: int) -> None:
        fut = self.acks.setdefault(mid, self.loop.create_future())
        if not fut.done():
            fut.set_result(code)

    async def publish(self, topic: str, payload: str) -> int:
        info = self.c.publish(topic, payload, qos=1)
        fut = self.acks.setdefault(info.mid, self.loop.create_future())
        async with asyncio.timeout(WAIT_S):
            return await fut

    async def wait(self, pred: Callable[[str, bytes], bool]) -> None:
        async with asyncio.timeout(WAIT_S):
            while not any(pred(t, p) for t, p in self.messages):
                self.changed.clear()
                await self.changed.wait()

    def acks_for(self, topic: str) -> list[dict[str, Any]]:
        return [
            json.loads(p)
            for t, p in self.messages
            if t == f"{BASE}/ack" and json.loads(p)["topic"] == topic
        ]

    async def close(self) -> None:
        self.c.disconnect()
        await asyncio.to_thread(self.c.loop_stop)


MQTT_ATTEMPTS = [
    ("connector/1/cmd/disable", ""),
    ("connector/1/cmd/enable", ""),
    ("connector/1/cmd/limit", '{"amps": 0}'),
    ("mains", '{"currents_a": [0, 0, 0]}'),
]


async def mqtt_rows(tmp_path: Path) -> list[Row]:
    rows: list[Row] = []
    loop = asyncio.get_running_loop()
    for locked in (True, False):
        workdir = tmp_path / ("locked" if locked else "open")
        workdir.mkdir()
        broker = Mosquitto(workdir, locked=locked)
        port = FakePort(PortInfo(1, "SN1", "1.0", 32.0, 3), enabled=True)
        other = FakePort(PortInfo(2, "SN2", "1.0", 32.0, 3), enabled=True)
        ports = {1: port, 2: other}
        # Locked broker: commands on, the broker's ACL keeps anonymous clients out.
        # Open broker: the default config (commands off); mains on only to have an event.
        settings: dict[str, Any] = (
            {"username": "station", "password": "s3cret", "commands": True, "mains": True}
            if locked
            else {"mains": True}
        )
        api = MqttApi("127.0.0.1", broker.port, PREFIX, STATION, ports, None, **settings)
        clients: list[Client] = []
        try:
            await broker.ready()
            await api.start()
            watcher = Client(broker.port, loop, "station", "s3cret") if locked else None
            anonymous = Client(broker.port, loop)
            clients = [c for c in (watcher, anonymous) if c is not None]
            observer = watcher or anonymous
            async with asyncio.timeout(WAIT_S):
                await observer.subscribed.wait()
            await observer.wait(lambda t, p: t == f"{BASE}/status" and p == b"online")
            before = len(port.calls)
            codes = [await anonymous.publish(f"{BASE}/{t}", p) for t, p in MQTT_ATTEMPTS]
            # An event after them, through the same station, proves they had their chance.
            if locked:
                assert watcher is not None
                await watcher.publish(f"{BASE}/connector/2/cmd/disable", "")
                await observer.wait(lambda t, p: t == f"{BASE}/ack" and b"connector/2" in p)
            else:
                await observer.wait(lambda t, p: t == f"{BASE}/ack" and b"/mains" in p)
            for (topic, _), code in zip(MQTT_ATTEMPTS, codes, strict=True):
                acks = observer.acks_for(f"{BASE}/{topic}")
                if locked:
                    outcome = "broker: PUBACK 0x87 not authorized" if code == 135 else f"rc {code}"
                    assert code == 135 and not acks, (topic, code, acks)
                elif topic == "mains":
                    outcome = f"station: {acks[0]['result']} ({acks[0]['reason'][:28]})"
                    assert acks[0]["result"] == "refused"
                else:
                    outcome = "station: not subscribed (commands = false)"
                    assert not acks
                label = "MQTT, password+ACL broker" if locked else "MQTT, open broker, defaults"
                rows.append(Row(label, f"publish {topic}", outcome, changed(port, before)))
        finally:
            for c in clients:
                await c.close()
            await api.stop()
            broker.stop()
    return rows


# ------------------------------------------------------------------ dashboard


DASHBOARD_ATTEMPTS = [
    (who, path, headers)
    for path in ("api/connectors/1/disable", "api/connectors/1/enable", "api/diagnostics")
    for who, headers in (("no password", {}), ("wrong password", {"X-Operator-Password": "x"}))
]


async def dashboard_rows() -> list[Row]:
    rows: list[Row] = []
    for configured in (True, False):
        port = FakePort(PortInfo(1, "SN1", "1.0", 32.0, 3), enabled=True)
        collected: list[str] = []

        async def collect(collected: list[str] = collected) -> str:
            collected.append("x")
            return "diag.tar.gz"

        dash = Dashboard(
            StationView("ST", [port.info]), {1: port}, port=0, collect_diagnostics=collect,
            operator_password_hash=hash_password("right") if configured else "",
            max_failures=100,  # the limiter has its own test; here every attempt gets through
        )  # fmt: skip
        await dash.start()
        label = "dashboard POST" if configured else "dashboard POST, read-only"
        try:
            async with aiohttp.ClientSession() as session:
                before = len(port.calls)
                for who, path, headers in DASHBOARD_ATTEMPTS:
                    async with session.post(dash.url + path, headers=headers) as resp:
                        status, error = resp.status, (await resp.json())["error"]
                    assert status in (401, 403), (path, status)
                    outcome = f"HTTP {status} {error[:26]}"
                    rows.append(Row(label, f"{who}: /{path}", outcome, changed(port, before)))
                assert collected == []
                if configured:  # positive control
                    headers = {"X-Operator-Password": "right"}
                    url = dash.url + "api/connectors/1/disable"
                    async with session.post(url, headers=headers) as resp:
                        assert resp.status == 200
                    assert changed(port, before)
        finally:
            await dash.stop()
    return rows


# ------------------------------------------------------------------ gRPC


async def grpc_rows(tmp_path: Path) -> list[Row]:
    station_pki, stranger_pki = tmp_path / "pki", tmp_path / "stranger"
    init_pki(station_pki, "ST", ["SAT-1"])
    init_pki(stranger_pki, "OTHER", ["SAT-1"])
    pub = generate_keypair(tmp_path / "fw.key")
    board = LocalBoardSystem(
        "SAT-1", "satellite", tmp_path / "board", [pub], "t", version="1.0.0",
        clock=ManualClock(1_800_000_000.0),
    )  # fmt: skip
    port = FakePort(PortInfo(1, "SAT-1", "1.0", 32.0, 3), enabled=True)
    host = AgentHost(port, serial="SAT-1", pki_dir=station_pki, board_system=board)
    await host.start()
    address = f"{host.address[0]}:{host.address[1]}"
    ca = (station_pki / "ca.pem").read_bytes()
    cert, key = main_pair(stranger_pki).read()
    channels: dict[str, Callable[[], grpc.aio.Channel]] = {
        "plain text": lambda: grpc.aio.insecure_channel(address),
        "TLS, no client certificate": lambda: grpc.aio.secure_channel(
            address, grpc.ssl_channel_credentials(root_certificates=ca), channel_options("SAT-1")
        ),
        "TLS, another station's cert": lambda: grpc.aio.secure_channel(
            address,
            grpc.ssl_channel_credentials(ca, private_key=key, certificate_chain=cert),
            channel_options("SAT-1"),
        ),
    }
    calls: dict[str, Callable[[grpc.aio.Channel], Awaitable[Any]]] = {
        "Link.Hello": lambda ch: link_pb2_grpc.LinkStub(ch).Hello(  # type: ignore[no-untyped-call]
            pb.HelloRequest(station_id="x", main_boot_id="evil", protocol_version=1), timeout=5
        ),
        "Link.Command disable": lambda ch: link_pb2_grpc.LinkStub(ch).Command(  # type: ignore[no-untyped-call]
            pb.CommandRequest(connector=1, disable=pb.Empty()), timeout=5
        ),
        "Board.Reset hard": lambda ch: link_pb2_grpc.BoardStub(ch).Reset(  # type: ignore[no-untyped-call]
            pb.ResetRequest(kind="hard"), timeout=5
        ),
        "Board.SetTime": lambda ch: link_pb2_grpc.BoardStub(ch).SetTime(  # type: ignore[no-untyped-call]
            pb.SetTimeRequest(time=1_900_000_000.0), timeout=5
        ),
        "Board.FirmwareControl": lambda ch: link_pb2_grpc.BoardStub(ch).FirmwareControl(  # type: ignore[no-untyped-call]
            pb.FirmwareAction(action="rollback"), timeout=5
        ),
    }
    rows: list[Row] = []
    try:
        boot_id = board.state.boot_id
        before = len(port.calls)
        for how, make in channels.items():
            channel = make()
            try:
                for name, call in calls.items():
                    with pytest.raises(grpc.aio.AioRpcError) as info:
                        await call(channel)
                    code = info.value.code()
                    assert code is grpc.StatusCode.UNAVAILABLE, (how, name, code)
                    outcome = "UNAVAILABLE (handshake refused)"
                    rows.append(Row("gRPC agent (mTLS)", f"{how}: {name}", outcome, False))
                    assert not changed(port, before)
            finally:
                await channel.close()
        assert board.state.boot_id == boot_id  # no reset happened
        assert board.now() == 1_800_000_000.0  # no time was set
        # Positive control: the station's own main certificate gets through.
        async with grpc.aio.secure_channel(
            address, channel_credentials(station_pki), channel_options("SAT-1")
        ) as ok:
            info = await link_pb2_grpc.BoardStub(ok).GetInfo(pb.Empty(), timeout=5)  # type: ignore[no-untyped-call]
            assert info.serial == "SAT-1"
    finally:
        await host.stop(0)
    return rows


async def test_no_anonymous_path_changes_a_gun(tmp_path: Path) -> None:
    rows = [*await mqtt_rows(tmp_path), *await dashboard_rows(), *await grpc_rows(tmp_path)]
    print_matrix(rows)
    assert len(rows) == 8 + 12 + 15
    assert not [r for r in rows if r.changed], [r for r in rows if r.changed]
