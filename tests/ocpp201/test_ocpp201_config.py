"""`ocpp.version` in the main's config: "1.6" (default) or "2.0.1"; anything else is one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from chargeport.config import ConfigError, MainConfig, load_config


def _write(tmp_path: Path, version: str | None) -> Path:
    path = tmp_path / "main.toml"
    text = (
        f'[station]\nid = "CP-1"\nserial = "MAIN-1"\nstate_dir = "{tmp_path / "state"}"\n'
        '[ocpp]\ncsms_url = "ws://127.0.0.1:9/ocpp"\n'
    )
    if version is not None:
        text += f'version = "{version}"\n'
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("version", "expected"), [(None, "1.6"), ("1.6", "1.6"), ("2.0.1", "2.0.1")]
)
def test_version_selects_the_edge(tmp_path: Path, version: str | None, expected: str) -> None:
    assert load_config(_write(tmp_path, version), MainConfig).ocpp.version == expected


def test_unknown_version_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"main\.toml: ocpp\.version: expected one of 1\.6, 2\.0\.1, got '2\.1'$"
    ):
        load_config(_write(tmp_path, "2.1"), MainConfig)
