"""The main board signs its own port's register too: `port.meter_signing` in the main's config."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from chargeport.config import MainConfig, load_config
from chargeport_cli.cli import main
from evse.meter_key import KEY_FILE
from main_node.app import MainApp

pytestmark = pytest.mark.integration


async def test_main_makes_its_metering_key_in_the_station_state_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "main"
    config_file = tmp_path / "main.toml"
    config_file.write_text(
        f'[station]\nstate_dir = "{state}"\n'
        "[port]\nmeter_signing = true\n"
        "[link]\ninsecure = true\nmdns = false\n"
        "[dashboard]\nenabled = false\n"
    )
    app = MainApp(load_config(config_file, MainConfig))
    ready = asyncio.Event()
    running = asyncio.create_task(app.run(on_ready=lambda _: ready.set()))
    try:
        async with asyncio.timeout(30):
            await ready.wait()
        key = state / KEY_FILE
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    finally:
        app.stop.set()
        assert await running == 0
    assert main(["meter", "pubkey", "--state-dir", str(state)]) == 0
    assert capsys.readouterr().out.startswith("3059301306072a8648ce3d020106082a8648ce3d030107")
