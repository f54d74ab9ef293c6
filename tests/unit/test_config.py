"""Config validation: every mistake is one line naming the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from chargeport.config import ConfigError, MainConfig, SatelliteConfig, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_defaults_load(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), MainConfig)
    assert config.port.max_current_a == 32.0
    assert config.link.mdns_interfaces == ["127.0.0.1"]


def test_int_is_accepted_for_float(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[energy]\nsite_limit_a = 40\n"), MainConfig)
    assert config.energy.site_limit_a == 40.0


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[station]\nidd = 'x'\n", "station.idd: unknown key"),
        ("[port]\nmax_current_a = 'x'\n", "port.max_current_a: expected a number"),
        ("[port]\nphases = 2\n", "port.phases: expected 1 or 3"),
        ("[port]\nhal = 'gpio'\n", "port.hal: expected one of 'sim', 'serial'"),
        ("[port]\nmax_current_a = 100\n", "port.max_current_a: expected 6 to 80 A"),
        ("[[satellites]]\nserial = 'S1'\nconnector = 1\n", "already used by the local port"),
        (
            "[[satellites]]\nserial='S1'\nconnector=2\n[[satellites]]\nserial='S1'\nconnector=3\n",
            "satellites[1].serial: 'S1' is listed twice",
        ),
        ("[[satellites]]\nserial='S1'\nconnector=2\naddress='nohost'\n", "expected 'host:port'"),
        ("[[satellites]]\nserial = 'S1'\n", "satellites[0]"),
        ("not toml = = 1", "not valid TOML"),
    ],
)
def test_bad_main_config_is_one_line(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, MainConfig)
    message = str(info.value)
    assert fragment in message
    assert message.startswith(str(path))
    assert "\n" not in message


def test_missing_required_key_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"satellites\[0\].*connector"):
        load_config(write(tmp_path, "[[satellites]]\nserial = 'S1'\n"), MainConfig)


def test_satellite_listen_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"agent\.listen: expected .host:port."):
        load_config(write(tmp_path, "[agent]\nlisten = '50051'\n"), SatelliteConfig)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml", MainConfig)


def test_satellite_may_listen_on_any_port(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[agent]\nlisten = '127.0.0.1:0'\n"), SatelliteConfig)
    assert config.agent.listen == "127.0.0.1:0"
