"""The satellite process end to end (in process): config -> sim board, evse runtime, board
system, agent; a RemotePort drives it; a stop request shuts everything down."""

from __future__ import annotations

import asyncio
from pathlib import Path

from linkkit import Link

from chargeport.config import (
    AgentConfig,
    BoardConfig,
    LinkConfig,
    PortConfig,
    SatelliteConfig,
    load_config,
)
from satellite.app import run_satellite, with_scenario


async def test_satellite_app_serves_its_port_until_stopped(link: Link, tmp_path: Path) -> None:
    config = SatelliteConfig(
        board=BoardConfig(serial="SAT-1", firmware_version="4.2.0", state_dir=str(tmp_path)),
        port=PortConfig(sample_rate_hz=1000),
        link=LinkConfig(pki_dir=str(link.pki), mdns=False),
        agent=AgentConfig(listen="127.0.0.1:0", advertise=False),
    )
    stop = asyncio.Event()
    bound: list[int] = []
    app = asyncio.ensure_future(run_satellite(config, stop=stop, on_listening=bound.append))
    try:
        async with asyncio.timeout(10):
            while not bound and not app.done():
                await asyncio.sleep(0.01)
        assert bound, app.exception() if app.done() else "never listened"
        rp = await link.remote(address=("127.0.0.1", bound[0]))
        assert rp.info.firmware_version == rp.health().firmware_version != ""
        status = await rp.status()
        assert status.enabled  # start_enabled=False on the runtime; Ready enabled it
        await rp.stop()
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await app


def test_cli_scenario_overrides_the_config(tmp_path: Path) -> None:
    path = tmp_path / "sat.toml"
    path.write_text('[board]\nserial = "SAT-9"\n[link]\ninsecure = true\n')
    config = with_scenario(load_config(path, SatelliteConfig), "drive.toml")
    assert config.port.scenario == "drive.toml" and config.link.insecure
