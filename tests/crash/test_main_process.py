"""The main process under systemd's eye (issue 12): READY=1 once it runs, WATCHDOG=1 from its
event loop at half of WATCHDOG_USEC, STOPPING=1 on SIGTERM, all to a notify socket this test
binds itself (sd_notify(3)); and a component that cannot recover ends it non-zero."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import uuid
from pathlib import Path

import pytest

from chargeport.config import MainConfig, load_config
from chargeport.sdnotify import SdNotifier, watchdog_period
from chargeport.tasks import OwnedTasks
from main_node.app import EXIT_FAILURE, MainApp

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def main_config(tmp_path: Path) -> Path:
    path = tmp_path / "main.toml"
    path.write_text(
        f'[station]\nstate_dir = "{tmp_path / "state"}"\n'
        "[link]\ninsecure = true\nmdns = false\n"
        f"[dashboard]\nport = {free_port()}\n"
    )
    return path


class NotifySocket:
    """A unix datagram socket standing in for systemd's; `next()` is the next notification."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.setblocking(False)

    async def next(self, within_s: float = 20.0) -> set[str]:
        async with asyncio.timeout(within_s):
            data = await asyncio.get_running_loop().sock_recv(self.sock, 4096)
        return set(data.decode().split("\n"))

    async def until(self, field: str, within_s: float = 20.0) -> set[str]:
        async with asyncio.timeout(within_s):
            while field not in (message := await self.next(within_s)):
                pass
        return message

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(params=["path", "abstract"])
def notify_socket(request: pytest.FixtureRequest, tmp_path: Path) -> NotifySocket:
    address = (
        str(tmp_path / "notify.sock")
        if request.param == "path"
        else f"@chargeport-test-{uuid.uuid4().hex}"
    )
    sock = NotifySocket(address)
    request.addfinalizer(sock.close)
    return sock


def test_watchdog_period_is_half_of_watchdog_usec_and_only_for_its_pid() -> None:
    assert watchdog_period({"WATCHDOG_USEC": "3000000"}, 42) == 1.5
    assert watchdog_period({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "42"}, 42) == 1.5
    assert watchdog_period({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "7"}, 42) is None
    assert watchdog_period({}, 42) is None
    assert watchdog_period({"WATCHDOG_USEC": "junk"}, 42) is None


async def test_notifier_without_a_socket_is_a_no_op_and_a_dead_socket_is_not_fatal(
    tmp_path: Path,
) -> None:
    assert SdNotifier.from_env({}).notify("READY=1") is False
    assert SdNotifier(str(tmp_path / "nobody-listens")).notify("READY=1") is False


async def _started_main(config: Path, env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as err:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chargeport_cli",
            "main",
            "--config",
            str(config),
            env={**os.environ, **env},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=err,
            cwd=ROOT,
        )


async def test_real_main_tells_systemd_ready_keeps_the_watchdog_fed_and_says_stopping(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    env = {"NOTIFY_SOCKET": notify_socket.address, "WATCHDOG_USEC": "400000"}
    proc = await _started_main(main_config(tmp_path), env, tmp_path / "main.log")
    try:
        ready = await notify_socket.until("READY=1", within_s=60.0)
        assert any(f.startswith("STATUS=") for f in ready)
        for _ in range(3):  # every 0.2 s from the loop, while it runs
            assert "WATCHDOG=1" in await notify_socket.next(within_s=10.0)
        proc.send_signal(signal.SIGTERM)
        await notify_socket.until("STOPPING=1")
        async with asyncio.timeout(30):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_task_that_cannot_recover_ends_the_main_with_exit_failure(
    tmp_path: Path,
) -> None:
    """Any owned task of the main's process that dies for good (here one of a component's
    OwnedTasks) ends the process non-zero, for systemd to restart it."""
    app = MainApp(load_config(main_config(tmp_path), MainConfig))
    ready = asyncio.Event()
    running = asyncio.create_task(app.run(on_ready=lambda _: ready.set()))
    component = OwnedTasks(logging.getLogger("test.component"))

    async def dies() -> None:
        raise RuntimeError("unrecoverable")

    async with asyncio.timeout(60):
        await ready.wait()
        component.spawn(dies(), "component-loop")
        assert await running == EXIT_FAILURE
    assert app.failure is not None and "component-loop" in app.failure


async def test_real_satellite_tells_systemd_ready_and_feeds_the_watchdog(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    config = tmp_path / "satellite.toml"
    config.write_text(
        f'[board]\nserial = "SAT-NOTIFY"\nstate_dir = "{tmp_path / "sat"}"\n'
        '[link]\ninsecure = true\nmdns = false\n[agent]\nlisten = "127.0.0.1:0"\n'
    )
    env = {"NOTIFY_SOCKET": notify_socket.address, "WATCHDOG_USEC": "400000"}
    with (tmp_path / "sat.log").open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chargeport_cli",
            "satellite",
            "--config",
            str(config),
            env={**os.environ, **env},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=err,
            cwd=ROOT,
        )
    try:
        await notify_socket.until("READY=1", within_s=60.0)
        assert "WATCHDOG=1" in await notify_socket.next(within_s=10.0)
        proc.send_signal(signal.SIGTERM)
        await notify_socket.until("STOPPING=1")
        async with asyncio.timeout(30):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
