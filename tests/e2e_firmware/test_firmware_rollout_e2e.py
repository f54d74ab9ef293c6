"""UpdateFirmware end to end with real processes (OCPP 1.6 §5.19, §4.5 FirmwareStatusNotification).

A CentralSystem in the test, a station laid out by `simulation.station.prepare` (main + two
satellites, mDNS on 127.0.0.1, mTLS), the board processes supervised like systemd, and a bundle
signed with `chargeport fw sign` served by a real aiohttp server. Each board restarts into its
new slot for real (exit code 75, the supervisor starts it again) and the main confirms the
rollout after its own restart.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from ocpp.v16 import call

from simulation.cli import fetch_state
from simulation.csms import CentralSystem
from simulation.station import SimLayout, prepare
from simulation.supervisor import ProcessSpec, Supervisor

# One station for the module (starting it is the slow part); the refused bundle goes first.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(90),
    pytest.mark.asyncio(loop_scope="module"),
]

OLD = "1.0.0"
NEW = "2.0.0"
TARGET = "chargeport-board"  # FirmwareConfig.target default, as prepare() leaves it
RESTART_EXIT_CODE = 75
TERMINAL = {"Installed", "DownloadFailed", "InstallationFailed", "InvalidSignature"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Rig:
    csms: CentralSystem
    layout: SimLayout
    supervisor: Supervisor
    dashboard: str  # http://127.0.0.1:PORT/
    www: Path  # served at `bundles`
    bundles: str
    gets: list[str]

    @property
    def serials(self) -> list[str]:
        return list(self.layout.satellite_configs)

    def fw_statuses(self) -> list[str]:
        return [p["status"] for p in self.csms.actions("FirmwareStatusNotification")]

    def slot_state(self, serial: str) -> dict[str, Any]:
        folder = "main" if serial == "main" else serial.lower()
        path = self.layout.state_dir / folder / "firmware" / "state.json"
        state: dict[str, Any] = json.loads(path.read_text())
        return state

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.layout.logs.glob("*.log"))
        )


async def wait_state(rig: Rig, ok: Any, within_s: float = 20.0) -> dict[str, Any]:
    """Poll the main's dashboard until `ok(state)`; the last state on timeout in the message."""
    last: dict[str, Any] | None = None
    async with aiohttp.ClientSession() as session:
        try:
            async with asyncio.timeout(within_s):
                while True:
                    last = await fetch_state(session, rig.dashboard) or last
                    if last is not None and ok(last):
                        return last
                    await asyncio.sleep(0.2)
        except TimeoutError:
            raise AssertionError(f"dashboard never got there: {last}\n{rig.logs()}") from None


def all_linked(state: dict[str, Any]) -> bool:
    guns = state["guns"]
    return len(guns) == 3 and all(g["link_up"] and g["boot_id"] for g in guns)


async def chargeport(*args: str) -> None:
    """Run the `chargeport` command line; it must succeed."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chargeport_cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode(errors="replace")


async def sign(rig: Rig, key: Path, name: str) -> None:
    """`chargeport fw sign`: a small payload signed into www/name."""
    payload = rig.www / f"{name}.payload"
    payload.write_bytes(os.urandom(200_000))
    await chargeport(
        "fw", "sign", "--key", str(key), "--version", NEW, "--target", TARGET,
        str(payload), "-o", str(rig.www / name),
    )  # fmt: skip


async def update_firmware(rig: Rig, name: str) -> list[str]:
    """UpdateFirmware from the CSMS; the FirmwareStatusNotifications it caused, once final."""
    seen = len(rig.fw_statuses())
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    await rig.csms.send(
        call.UpdateFirmware(location=f"{rig.bundles}/{name}", retrieve_date=now, retries=1)
    )
    try:
        await rig.csms.wait_for(lambda: TERMINAL & set(rig.fw_statuses()[seen:]), within_s=40.0)
    except TimeoutError:
        raise AssertionError(f"no final status: {rig.fw_statuses()}\n{rig.logs()}") from None
    return rig.fw_statuses()[seen:]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    tmp_path = tmp_path_factory.mktemp("e2e-fw")
    gets: list[str] = []
    www = tmp_path / "www"
    www.mkdir()

    async def get(request: web.Request) -> web.StreamResponse:
        gets.append(request.match_info["name"])
        path = www / request.match_info["name"]
        if not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    app = web.Application()
    app.add_routes([web.get("/fw/{name}", get)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    csms = CentralSystem()
    await csms.start()
    dashboard_port = _free_port()
    layout = prepare(
        tmp_path / "station",
        satellites=2,
        csms_url=csms.url,
        dashboard_port=dashboard_port,
        operator_password="pw",
        scenarios={},
        mqtt=None,
        grace_period_s=10.0,
        sample_rate_hz=1_000,  # three boards metering on two shared cores
    )
    supervisor = Supervisor(stop_timeout_s=5.0)
    boards = [(s, "satellite", c) for s, c in layout.satellite_configs.items()]
    for name, role, config in [*boards, ("main", "main", layout.main_config)]:
        supervisor.add(
            ProcessSpec(
                name=name,
                argv=[sys.executable, "-m", "chargeport_cli", role, "--config", str(config)],
                log_path=layout.logs / f"{name.lower()}.log",
                restart_delay_s=0.1,
            )
        )
    rig = Rig(
        csms, layout, supervisor, f"http://127.0.0.1:{dashboard_port}/", www,
        f"http://127.0.0.1:{http_port}/fw", gets,
    )  # fmt: skip
    try:
        await csms.wait_for(lambda: csms.actions("BootNotification"), within_s=20.0)
        await wait_state(rig, all_linked)
        crashed = {n: c.last_exit for n, c in supervisor.children.items() if c.starts != 1}
        assert not crashed, f"a board process died during start-up: {crashed}\n{rig.logs()}"
        yield rig
    finally:
        await supervisor.stop()
        await csms.stop()
        await runner.cleanup()


async def test_stranger_signature_refused_and_nothing_restarts(rig: Rig, tmp_path: Path) -> None:
    before = {
        n: (c.starts, c.last_exit, rig.slot_state(n)) for n, c in rig.supervisor.children.items()
    }
    stranger = tmp_path / "stranger.key"
    await chargeport("fw", "keygen", "--out", str(stranger))
    await sign(rig, stranger, "bad.bundle")
    # InvalidSignature is not an OCPP 1.6 core FirmwareStatus: the wire says InstallationFailed,
    # the dashboard the precise reason.
    assert await update_firmware(rig, "bad.bundle") == ["Downloading", "InstallationFailed"]
    state = await wait_state(rig, all_linked)
    assert state["firmware_status"] == "InvalidSignature"
    versions = {g["firmware_version"] for g in state["guns"]}
    assert len(versions) == 1, state
    for name, child in rig.supervisor.children.items():
        starts, last_exit, slot = before[name]
        # Nothing restarted, no slot written, nothing staged.
        assert (child.starts, child.last_exit) == (starts, last_exit), (name, rig.logs())
        assert rig.slot_state(name) == slot, name


async def test_signed_bundle_reaches_every_board_and_main_restarts_into_it(rig: Rig) -> None:
    starts = {n: c.starts for n, c in rig.supervisor.children.items()}
    boots = len(rig.csms.actions("BootNotification"))
    await sign(rig, rig.layout.signing_key, "good.bundle")
    statuses = await update_firmware(rig, "good.bundle")
    assert statuses == ["Downloading", "Downloaded", "Installing", "Installed"], rig.logs()
    assert rig.gets.count("good.bundle") == 1  # downloaded once for the whole station

    # Every board restarted itself exactly once into the new slot (exit 75, supervisor restart).
    for name in [*rig.serials, "main"]:
        child = rig.supervisor.children[name]
        assert (child.starts - starts[name], child.last_exit) == (1, RESTART_EXIT_CODE), (
            name,
            rig.logs(),
        )
        slot = rig.slot_state(name)
        assert slot["active"] == "B" and not slot["tentative"], (name, slot)
        assert slot["versions"]["B"] == NEW and slot["boot_reason"] == "FirmwareUpdate", name

    # The restarted main tells the CSMS what it runs now.
    after = rig.csms.actions("BootNotification")[boots:]
    assert [b.get("firmware_version") for b in after] == [NEW]
    # And sees every gun (its own and both satellites' after their handshake) on the new version.
    state = await wait_state(
        rig, lambda s: all_linked(s) and {g["firmware_version"] for g in s["guns"]} == {NEW}
    )
    assert state["firmware_status"] == "Installed"
