"""MainApp in-process: the station status reports boards that mDNS shows but nobody configured."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request
import uuid
from pathlib import Path

import pytest

from chargeport.config import MainConfig, load_config
from main_node.app import MainApp
from satellite.advertiser import Advertiser

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def fetch_state(url: str) -> dict:  # type: ignore[type-arg]
    with urllib.request.urlopen(url + "api/state", timeout=2) as r:
        data: dict = json.load(r)  # type: ignore[type-arg]
        return data


async def test_unconfigured_board_on_mdns_is_shown_in_the_station_status(tmp_path: Path) -> None:
    stray = f"STRAY-{uuid.uuid4().hex[:6]}"
    config_file = tmp_path / "main.toml"
    config_file.write_text(
        f'[station]\nstate_dir = "{tmp_path / "main"}"\n'
        '[link]\ninsecure = true\nmdns_interfaces = ["127.0.0.1"]\n'
        f"[dashboard]\nport = {free_port()}\n"
    )
    config = load_config(config_file, MainConfig)
    app = MainApp(config)
    ready = asyncio.Event()
    running = asyncio.create_task(app.run(on_ready=lambda _: ready.set()))
    try:
        async with asyncio.timeout(30):
            await ready.wait()
            assert app.dashboard is not None
            url = app.dashboard.url
            async with Advertiser(stray, 50999, boot_id="b", firmware_version="1.0.0"):
                while not any(
                    stray in p
                    for p in (await asyncio.to_thread(fetch_state, url))["discovery_problems"]
                ):
                    await asyncio.sleep(0.1)
            state = await asyncio.to_thread(fetch_state, url)
            assert [g["connector"] for g in state["guns"]] == [1]
    finally:
        app.stop.set()
        assert await running == 0
