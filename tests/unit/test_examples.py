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


def test_example_sim_configs_are_valid() -> None:
    main = load_config(EXAMPLES / "sim-main.toml", MainConfig)
    satellite = load_config(EXAMPLES / "sim-satellite.toml", SatelliteConfig)
    assert (main.port.hal, satellite.port.hal) == ("sim", "sim")
    assert [s.serial for s in main.satellites] == [satellite.board.serial]
    # Shipped configs advertise and browse the LAN, never the wildcard address itself.
    for config in (main, satellite):
        assert config.link.mdns_interfaces == ["all"]
