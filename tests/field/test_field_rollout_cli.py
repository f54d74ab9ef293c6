"""`chargeport rollout`: a technician rolls firmware out to a running station from a terminal,
with progress per board, through the main's dashboard (login, POST /api/firmware, /ws).

A real dashboard over real HTTP and websocket; behind its `update_firmware` seam a rollout that
reports progress the way TrackedBoard does, so the progress reaching 100 % is the test."""

from __future__ import annotations

import asyncio
import io

import pytest
from rich.console import Console

from chargeport.fake_port import FakePort
from chargeport.port import PortInfo
from main_node.dashboard import Dashboard
from main_node.progress import FIRMWARE, ProgressTracker
from main_node.rollout_cli import RolloutRefused, rollout
from main_node.view import StationView

pytestmark = pytest.mark.integration

SIZE = 300_000
BOARDS = ("MAIN-1", "SAT-1", "SAT-2")


async def station(result: str) -> tuple[Dashboard, list[str]]:
    ports = {1: FakePort(PortInfo(1, "MAIN-1", "1.0.0", 32.0, 3))}
    view = StationView("ST-1", [p.info for p in ports.values()])
    progress = ProgressTracker()
    asked: list[str] = []

    async def update_firmware(location: str) -> None:
        asked.append(location)
        view.set_status(firmware="Downloading")
        for board in BOARDS:
            progress.start(FIRMWARE, board, 0.0, SIZE)
        for step in range(1, 11):
            await asyncio.sleep(0.02)
            for board in BOARDS:
                done = SIZE * step // 10
                progress.update(
                    FIRMWARE, board, "Installing", done, SIZE, step / 10, finished=done == SIZE
                )
        view.set_status(firmware=result)

    dash = Dashboard(
        view, ports, port=0, operator_password="s3cret-pass", progress=progress,
        update_firmware=update_firmware,
    )  # fmt: skip
    await dash.start()
    return dash, asked


async def test_rollout_shows_every_board_reach_100_percent_and_exits_on_installed() -> None:
    dash, asked = await station("Installed")
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=False)
    try:
        status = await rollout(dash.url, "s3cret-pass", "https://fw.example/cp-1.2.0.cpfw", console)
    finally:
        await dash.stop()
    assert status == "Installed"
    assert asked == ["https://fw.example/cp-1.2.0.cpfw"]
    text = out.getvalue()
    for board in BOARDS:
        assert board in text
    assert "300.0/300.0 kB" in text  # every board's bytes, all of them
    assert "(3/3 boards)" in text


async def test_a_failed_rollout_is_reported_as_such() -> None:
    dash, _ = await station("InstallationFailed")
    try:
        status = await rollout(
            dash.url, "s3cret-pass", "https://fw.example/x", Console(file=io.StringIO())
        )
    finally:
        await dash.stop()
    assert status == "InstallationFailed"


async def test_wrong_password_is_refused_before_anything_starts() -> None:
    dash, asked = await station("Installed")
    try:
        with pytest.raises(RolloutRefused, match="login refused"):
            await rollout(dash.url, "wrong", "https://fw.example/x", Console(file=io.StringIO()))
    finally:
        await dash.stop()
    assert asked == []
