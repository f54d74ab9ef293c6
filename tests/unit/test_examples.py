"""The shipped example configs load and validate (a user copies them first)."""

from __future__ import annotations

from pathlib import Path

from chargeport.config import MainConfig, SatelliteConfig, load_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_example_main_config_is_valid() -> None:
    config = load_config(EXAMPLES / "main.toml", MainConfig)
    assert [s.connector for s in config.satellites] == [2, 3, 4]
    assert config.port.hal == "serial"


def test_example_satellite_config_is_valid() -> None:
    config = load_config(EXAMPLES / "satellite.toml", SatelliteConfig)
    assert config.board.serial == "SAT-0001"
