"""A newcomer's config mistakes: each is one line naming the file, the key and the fix, and the
process exits with EX_CONFIG (78) so systemd shows a configuration error, not a crash loop."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from chargeport_cli.cli import EX_CONFIG

MAIN = '[station]\nstate_dir = "{state}"\n[link]\ninsecure = true\n[dashboard]\nenabled = false\n'
SATELLITE = '[board]\nserial = "{serial}"\nstate_dir = "{state}"\n[link]\ninsecure = true\n'


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chargeport_cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr  # one line, no traceback
    return lines[0]


def test_state_dir_that_is_a_file_is_one_line_and_ex_config(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("not a folder")
    config = tmp_path / "main.toml"
    config.write_text(MAIN.format(state=blocker))
    proc = run("main", "--config", str(config))
    assert proc.returncode == EX_CONFIG
    assert one_line(proc) == (
        f"chargeport main: station.state_dir: {blocker} is a file, not a folder; "
        "point station.state_dir at a folder"
    )


def test_satellite_state_dir_that_cannot_be_created(tmp_path: Path) -> None:
    config = tmp_path / "satellite.toml"
    config.write_text(SATELLITE.format(serial="SAT-0001", state="/proc/chargeport-nope/state"))
    proc = run("satellite", "--config", str(config))
    assert proc.returncode == EX_CONFIG
    line = one_line(proc)
    assert line.startswith("chargeport satellite: board.state_dir: cannot create ")
    assert line.endswith("point board.state_dir elsewhere")


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A read-only tmpfs (root can write through chmod 0500, not through a ro mount)."""
    mnt = tmp_path / f"ro-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mnt)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True, check=False)


def test_read_only_state_dir_is_one_line_and_ex_config(tmp_path: Path, read_only_dir: Path) -> None:
    config = tmp_path / "main.toml"
    config.write_text(MAIN.format(state=read_only_dir))
    proc = run("main", "--config", str(config))
    assert proc.returncode == EX_CONFIG
    assert one_line(proc).startswith(
        f"chargeport main: station.state_dir: {read_only_dir} is not writable (Read-only file "
        "system); give this user write access"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[ocpp]\ncsms_url = "http://csms.example/ocpp"\n',
            "ocpp.csms_url: expected a ws:// or wss:// URL (OCPP-J runs over WebSocket), "
            "got 'http://csms.example/ocpp'",
        ),
        (
            '[[satellites]]\nserial = ""\nconnector = 2\n',
            "satellites[0].serial: empty; give the serial on the board's sticker",
        ),
    ],
)
def test_main_config_mistakes_name_key_and_fix(tmp_path: Path, text: str, expected: str) -> None:
    config = tmp_path / "main.toml"
    config.write_text(text)
    proc = run("main", "--config", str(config))
    assert proc.returncode == EX_CONFIG
    assert one_line(proc) == f"chargeport main: {config}: {expected}"


def test_non_utf8_config_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "main.toml"
    config.write_bytes('[station]\nid = "Station Süd"\n'.encode("latin-1"))
    proc = run("main", "--config", str(config))
    assert proc.returncode == EX_CONFIG
    assert one_line(proc) == (
        f"chargeport main: {config}: not UTF-8 text (byte 0xfc on line 2); save the file as UTF-8"
    )


def test_empty_satellite_serial_names_the_serial_not_a_missing_pem(tmp_path: Path) -> None:
    config = tmp_path / "satellite.toml"
    config.write_text('[board]\nserial = ""\n')
    proc = run("satellite", "--config", str(config))
    assert proc.returncode == EX_CONFIG
    assert one_line(proc) == (
        f"chargeport satellite: {config}: board.serial: empty; give the serial on the "
        "board's sticker"
    )


def test_version_flag() -> None:
    proc = run("--version")
    assert proc.returncode == 0
    assert proc.stdout.startswith("chargeport ")
