"""Firmware and diagnostics progress per board on the dashboard, in a real Chromium.

A real rollout: the aggregator streams a signed 3 MiB bundle to the main board (in-process) and
two satellite boards behind real loopback gRPC servers, each wrapped in `TrackedBoard`; the page
follows over the WebSocket until every board's row reads 100 %. Then a diagnostics collection
fills the diagnostics rows the same way."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from playwright.async_api import async_playwright

from chargeport.board import BoardSystem
from chargeport.bundle import (
    generate_keypair,
    load_private_key,
    load_trusted_keys,
    sign_bundle,
    verify_file,
)
from chargeport.clock import RealClock
from chargeport.fake_port import FakePort
from chargeport.port import PortInfo
from chargeport.v1 import link_pb2_grpc
from main_node.dashboard import Dashboard
from main_node.progress import FIRMWARE, ProgressTracker, TrackedBoard
from main_node.remote_board import RemoteBoardSystem
from main_node.view import StationView
from satellite.board_service import BoardServicer
from satellite.board_system import LocalBoardSystem
from system_aggregator.aggregator import SystemAggregator

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
TARGET, OLD, NEW = "chargeport-board", "1.0.0", "2.0.0"
ROWS_AT_100 = """(sel) => {
    const rows = [...document.querySelectorAll(sel + ' tbody tr')];
    return rows.length === 3 && rows.every(r => r.dataset.percent === '100');
}"""


@dataclass
class Rig:
    aggregator: SystemAggregator
    dashboard: Dashboard
    tracker: ProgressTracker
    bundle: Path
    pub: Path


async def serve(board: LocalBoardSystem) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    link_pb2_grpc.add_BoardServicer_to_server(BoardServicer(board), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    pub = generate_keypair(tmp_path / "fw.key")
    payload = tmp_path / "payload"
    payload.write_bytes(os.urandom(3 * 1024 * 1024))
    bundle = tmp_path / "fw.bundle"
    sign_bundle(payload, load_private_key(tmp_path / "fw.key"), NEW, TARGET, bundle, created=1.0)

    def make(serial: str, role: str) -> LocalBoardSystem:
        return LocalBoardSystem(serial, role, tmp_path / serial, [pub], TARGET, version=OLD)

    local = make("MAIN-1", "main")
    sats = [make(f"SAT-{i}", "satellite") for i in (1, 2)]
    servers, channels, remotes = [], [], []
    for sat in sats:
        server, port = await serve(sat)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        servers.append(server)
        channels.append(channel)
        remotes.append(RemoteBoardSystem(channel, sat.serial, timeout_s=5.0))
    tracker = ProgressTracker()
    clock = RealClock()
    boards: list[BoardSystem] = [
        TrackedBoard(r, r.serial, tracker, clock.monotonic) for r in remotes
    ]
    agg = SystemAggregator(
        TrackedBoard(local, local.serial, tracker, clock.monotonic), boards,
        trusted_keys=[pub], target=TARGET, work_dir=tmp_path / "work", station_id="ST-1",
        restart_timeout_s=5.0, poll_s=0.01,
    )  # fmt: skip
    ports = {c: FakePort(PortInfo(c, f"SN{c}", OLD, 32.0, 3)) for c in (1, 2, 3)}
    dash = Dashboard(StationView("ST-1", [p.info for p in ports.values()]), ports, port=0,
                     progress=tracker)  # fmt: skip
    await dash.start()
    try:
        yield Rig(agg, dash, tracker, bundle, pub)
    finally:
        await dash.stop()
        await agg.aclose()
        for channel in channels:
            await channel.close()
        for server in servers:
            await server.stop(None)


async def test_rollout_and_diagnostics_progress_reach_100_percent_per_board(
    rig: Rig, tmp_path: Path
) -> None:
    agg, dash, tracker = rig.aggregator, rig.dashboard, rig.tracker
    partial: list[int] = []  # percents seen below 100 on the way (bytes really moved)
    tracker.add_listener(
        lambda: partial.extend(
            r.done * 100 // r.total for r in tracker.jobs[FIRMWARE].values() if 0 < r.done < r.total
        )
    )
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        try:
            page = await browser.new_page()
            await page.goto(dash.url)
            await page.wait_for_selector("section.gun >> nth=2")
            assert await page.locator("#fw-progress tbody tr").count() == 0

            manifest = verify_file(rig.bundle, load_trusted_keys([rig.pub]), TARGET, OLD)
            await agg.rollout(rig.bundle, manifest)
            await page.wait_for_function(ROWS_AT_100, arg="#fw-progress")
            text = await page.inner_text("#fw-progress")
            for serial in ("MAIN-1", "SAT-1", "SAT-2"):
                assert serial in text
            assert "3.0 MiB / 3.0 MiB" in text and "done" in text
            assert partial and min(partial) < 100

            await agg.collect_diagnostics(tmp_path / "diag.tar.gz", None, None)
            await page.wait_for_function(ROWS_AT_100, arg="#diag-progress")
            assert "Collected" in await page.inner_text("#diag-progress")
        finally:
            await browser.close()
