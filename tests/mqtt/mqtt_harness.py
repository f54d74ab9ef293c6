"""Test harness: mosquitto as a child process and a paho probe client that records messages."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"
WAIT_S = 10.0  # generous upper bound for a loaded 2-core machine; never asserted on


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Broker:
    """mosquitto as a child process; `restart()` brings it back on the same port."""

    def __init__(
        self,
        workdir: Path,
        *,
        users: dict[str, str] | None = None,
        acl: str | None = None,
        tls: tuple[Path, Path, Path] | None = None,
    ) -> None:
        """`users`: a password file made with `mosquitto_passwd -b`; `acl`: an acl_file's text
        (lines before any `user` apply to anonymous clients); `tls`: (ca, cert, key) PEMs for
        a TLS-only listener."""
        self.host = "127.0.0.1"
        self.port = free_port()
        self._conf = workdir / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "log_dest stderr"]
        # Stay the test's user: dropping to `mosquitto` could not read the 0600 files below.
        lines.append(f"user {getpass.getuser()}")
        if users is not None:
            passwd = workdir / "mosquitto.passwd"
            passwd.touch(mode=0o600)
            for user, password in users.items():
                subprocess.run(
                    [MOSQUITTO_PASSWD, "-b", str(passwd), user, password],
                    check=True, capture_output=True,
                )  # fmt: skip
            lines.append(f"password_file {passwd}")
        if acl is not None:
            acl_file = workdir / "mosquitto.acl"
            acl_file.write_text(acl)
            lines.append(f"acl_file {acl_file}")
        if tls is not None:
            ca, cert, key = tls
            lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
        # Anonymous clients may connect; what they may do is the ACL's business.
        lines.append("allow_anonymous true")
        self._conf.write_text("\n".join(lines) + "\n")
        self._tls = tls
        self._log = workdir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(self._conf)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + WAIT_S
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self._log.read_text()[-500:]}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


class Probe:
    """A test-side MQTT client: records every message, and publishes."""

    def __init__(
        self,
        broker: Broker,
        loop: asyncio.AbstractEventLoop,
        *,
        username: str = "",
        password: str = "",
        ca_file: Path | None = None,
    ) -> None:
        self._loop = loop
        self.messages: list[tuple[str, bytes, bool]] = []
        self._changed = asyncio.Event()
        self._connected = asyncio.Event()
        self._acks: dict[int, asyncio.Future[int]] = {}
        # MQTT 5: the broker answers a QoS 1 publish it refuses (ACL) with a reason code.
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"probe-{free_port()}",
            protocol=mqtt.MQTTv5,
        )
        if username:
            self.client.username_pw_set(username, password or None)
        if ca_file is not None:
            self.client.tls_set(ca_certs=str(ca_file))
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.reconnect_delay_set(1, 2)
        self.client.connect_async(broker.host, broker.port)

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe("#", qos=1)
        self._loop.call_soon_threadsafe(self._connected.set)

    def _on_publish(self, client: mqtt.Client, _: Any, mid: int, rc: Any, props: Any) -> None:
        self._loop.call_soon_threadsafe(self._acked, mid, int(rc.value))

    def _acked(self, mid: int, code: int) -> None:
        future = self._acks.setdefault(mid, self._loop.create_future())
        if not future.done():
            future.set_result(code)

    async def publish_acked(self, topic: str, payload: str | bytes) -> int:
        """Publish at QoS 1 and return the broker's PUBACK reason code (0 = accepted,
        135 = not authorized: the ACL refused it and no subscriber will ever get it)."""
        info = self.client.publish(topic, payload, qos=1)
        future = self._acks.setdefault(info.mid, self._loop.create_future())
        async with asyncio.timeout(WAIT_S):
            return await future

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        item = (msg.topic, bytes(msg.payload), bool(msg.retain))
        self._loop.call_soon_threadsafe(self._record, item)

    def _record(self, item: tuple[str, bytes, bool]) -> None:
        self.messages.append(item)
        self._changed.set()

    async def connected(self) -> None:
        async with asyncio.timeout(WAIT_S):
            await self._connected.wait()

    def publish(self, topic: str, payload: str | bytes) -> None:
        self.client.publish(topic, payload, qos=1)

    def json(self, topic: str) -> list[Any]:
        """Every JSON payload seen on `topic`, oldest first."""
        return [json.loads(p) for t, p, _ in self.messages if t == topic and p]

    async def wait_for(
        self, topic: str, predicate: Callable[[Any], bool] = lambda _: True, start: int = 0
    ) -> Any:
        """The first message on `topic` (index >= start) whose JSON payload satisfies predicate."""
        async with asyncio.timeout(WAIT_S):
            seen = start
            while True:
                while seen < len(self.messages):
                    topic_, payload, _ = self.messages[seen]
                    seen += 1
                    if topic_ == topic:
                        with contextlib.suppress(ValueError):
                            value = json.loads(payload) if payload[:1] in b"{[" else payload
                            if predicate(value):
                                return value
                self._changed.clear()
                await self._changed.wait()
