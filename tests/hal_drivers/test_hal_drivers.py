"""HAL drivers from other packages: a real distribution (a dist-info with entry_points.txt on
sys.path, as pip leaves it) registers a board under `chargeport.hal`; the config accepts its
name, the factory opens and closes it, and mistakes are one line (docs/hal-drivers.md)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from chargeport.clock import ManualClock
from chargeport.config import ConfigError, PortConfig, SatelliteConfig, load_config
from chargeport.errors import ChargeportError
from hal.factory import open_board

REPO = Path(__file__).resolve().parents[2]

# The worked example of docs/hal-drivers.md, cut down: the vendor's "hardware" is the
# simulated board, and the driver records what it was asked to do.
DRIVER = '''
"""ACME single-port board for chargeport."""
import contextlib

from hal.sim import SimBoard

CALLS = []


@contextlib.asynccontextmanager
async def open_board(config, clock):
    CALLS.append(("open", config.serial_device))
    hardware = SimBoard(clock=clock, max_current_a=config.max_current_a, phases=config.phases)
    try:
        yield hardware.board
    finally:
        CALLS.append(("close", config.serial_device))
'''


def install(site: Path, dist: str, module: str, source: str, entry: str) -> None:
    """What `pip install` leaves behind, minus the files pip needs to uninstall."""
    (site / module).mkdir(parents=True)
    (site / module / "__init__.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[chargeport.hal]\n{entry}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    site = tmp_path / "site-packages"
    install(site, "acme-board", "acme_board", DRIVER, "acme = acme_board:open_board")
    install(
        site,
        "broken-board",
        "broken_board",
        'raise ImportError("needs libacme.so.2")\n',
        "broken = broken_board:open_board",
    )
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    yield site
    for name in ("acme_board", "broken_board"):
        sys.modules.pop(name, None)


def test_installed_driver_is_found_through_its_entry_point(site: Path) -> None:
    from hal.drivers import installed_drivers

    drivers = installed_drivers()
    assert drivers["acme"].value == "acme_board:open_board"
    assert drivers["acme"].dist is not None and drivers["acme"].dist.name == "acme-board"


def test_config_accepts_an_installed_driver_and_names_them_for_a_typo(
    site: Path, tmp_path: Path
) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[port]\nhal = "acme"\nserial_device = "/dev/ttyACME0"\n')
    assert load_config(good, SatelliteConfig).port.hal == "acme"
    bad = tmp_path / "bad.toml"
    bad.write_text('[port]\nhal = "acne"\n')
    with pytest.raises(ConfigError) as info:
        load_config(bad, SatelliteConfig)
    assert "port.hal: expected one of 'sim', 'serial' or an installed HAL driver" in str(info.value)
    assert "(acme, broken), got 'acne'" in str(info.value)


async def test_factory_opens_and_closes_the_vendors_board(site: Path) -> None:
    config = PortConfig(hal="acme", serial_device="/dev/ttyACME0", max_current_a=16.0)
    async with open_board(config, ManualClock()) as (board, sim):
        acme = sys.modules["acme_board"]
        assert acme.CALLS == [("open", "/dev/ttyACME0")]
        assert sim is None  # not our simulated board, even if the vendor's is one inside
        await board.cp.set_duty(26.7)
        assert await board.contactor.feedback() is False
    assert acme.CALLS == [("open", "/dev/ttyACME0"), ("close", "/dev/ttyACME0")]


async def test_driver_that_fails_to_import_is_one_line_naming_its_package(site: Path) -> None:
    with pytest.raises(ChargeportError) as info:
        async with open_board(PortConfig(hal="broken"), ManualClock()):
            pass
    message = str(info.value)
    assert "HAL driver 'broken' (broken_board:open_board, package broken-board) failed to load" in (
        message
    )
    assert "ImportError: needs libacme.so.2" in message and "\n" not in message


async def test_unknown_driver_at_the_factory_lists_what_is_installed(site: Path) -> None:
    with pytest.raises(
        ChargeportError, match=r"no HAL driver 'zeta' .*from packages: acme, broken"
    ):
        async with open_board(PortConfig(hal="zeta"), ManualClock()):
            pass


def test_a_fresh_interpreter_finds_the_driver_on_its_path(site: Path, tmp_path: Path) -> None:
    """As after `pip install acme-board`: nothing in chargeport was edited or told."""
    config = tmp_path / "satellite.toml"
    config.write_text('[port]\nhal = "acme"\n')
    code = textwrap.dedent(
        f"""
        import json
        from chargeport.config import SatelliteConfig, load_config
        from hal.drivers import installed_drivers
        print(json.dumps([load_config({str(config)!r}, SatelliteConfig).port.hal,
                          sorted(installed_drivers())]))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["acme", ["acme", "broken"]]
