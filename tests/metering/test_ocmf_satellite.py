"""A satellite with `port.meter_signing = true` makes its metering key on its first start."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from chargeport.config import (
    AgentConfig,
    BoardConfig,
    ConfigError,
    LinkConfig,
    PortConfig,
    SatelliteConfig,
    load_config,
)
from chargeport_cli.cli import main
from evse.meter_key import KEY_FILE
from satellite.app import run_satellite


def _config(state: Path, signing: bool) -> SatelliteConfig:
    return SatelliteConfig(
        board=BoardConfig(serial="SAT-7", firmware_version="4.2.0", state_dir=str(state)),
        port=PortConfig(sample_rate_hz=1000, meter_signing=signing),
        link=LinkConfig(insecure=True, mdns=False),
        agent=AgentConfig(listen="127.0.0.1:0", advertise=False),
    )


async def _start_and_stop(config: SatelliteConfig) -> None:
    """Run the satellite until it listens, then stop it."""
    stop = asyncio.Event()
    bound: list[int] = []
    app = asyncio.ensure_future(run_satellite(config, stop=stop, on_listening=bound.append))
    try:
        async with asyncio.timeout(10):
            while not bound and not app.done():
                await asyncio.sleep(0.01)
        assert bound, app.exception() if app.done() else "never listened"
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await app


async def test_first_start_makes_the_key_and_restarts_keep_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _start_and_stop(_config(tmp_path, signing=True))
    key = tmp_path / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    pem = key.read_bytes()
    assert main(["meter", "pubkey", "--state-dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("3059301306072a8648ce3d020106082a8648ce3d030107")  # P-256 SPKI
    await _start_and_stop(_config(tmp_path, signing=True))  # a restart
    assert key.read_bytes() == pem


async def test_signing_off_makes_no_key(tmp_path: Path) -> None:
    await _start_and_stop(_config(tmp_path, signing=False))
    assert not (tmp_path / KEY_FILE).exists()


async def test_a_broken_key_stops_the_start_with_one_line(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).parent.mkdir(parents=True)
    (tmp_path / KEY_FILE).write_bytes(b"garbage")
    with pytest.raises(ConfigError, match=r"^port\.meter_signing: .*not a PEM private key"):
        await _start_and_stop(_config(tmp_path, signing=True))
    assert (tmp_path / KEY_FILE).read_bytes() == b"garbage"


def test_config_key(tmp_path: Path) -> None:
    path = tmp_path / "sat.toml"
    path.write_text("[port]\nmeter_signing = true\n[link]\ninsecure = true\n")
    assert load_config(path, SatelliteConfig).port.meter_signing
    path.write_text('[port]\nmeter_signing = "yes"\n')
    with pytest.raises(ConfigError, match=r"port\.meter_signing: expected true or false"):
        load_config(path, SatelliteConfig)
