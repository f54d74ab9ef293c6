"""`chargeport satellite` / `chargeport main` with hal = "serial": a wrong serial device or link
key file is one line on stderr naming the key to fix, and a non-zero exit (no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

KEY_HEX = bytes(range(32)).hex()


def satellite_toml(tmp: Path, port: str) -> str:
    return f"""
[board]
serial = "SAT-0042"
state_dir = "{tmp / "sat"}"
[port]
{port}
[link]
insecure = true
mdns = false
[agent]
listen = "127.0.0.1:0"
advertise = false
"""


def main_toml(tmp: Path, port: str) -> str:
    return f"""
[station]
state_dir = "{tmp / "main"}"
[port]
{port}
[link]
insecure = true
mdns = false
[dashboard]
enabled = false
"""


@pytest.fixture
def silent_tty() -> Iterator[str]:
    """A serial device that exists but has no MCU behind it (a pty nobody answers on)."""
    master, slave = os.openpty()
    try:
        yield os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


def run_cli(role: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chargeport_cli", role, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """The stderr lines that are not log records; there must be exactly one."""
    assert "Traceback" not in proc.stderr, proc.stderr
    return [
        line
        for line in proc.stderr.splitlines()
        if line.strip() and " INFO " not in line and " WARNING " not in line
    ]


MISSING_DEV = 'hal = "serial"\nserial_device = "{dev}"\nlink_key_file = "{key}"'
NO_DEV_KEY = 'hal = "serial"\nlink_key_file = "{key}"'
NO_KEY_FILE_KEY = 'hal = "serial"\nserial_device = "{dev}"'
MISSING_KEY_FILE = 'hal = "serial"\nserial_device = "{dev}"\nlink_key_file = "{tmp}/nope.key"'
SHORT_KEY = 'hal = "serial"\nserial_device = "{dev}"\nlink_key_file = "{short}"'

# (role, [port] body, text the one line must contain); each process start costs ~1 s on these
# two cores, so the cases are spread over the two roles (they share `hal.factory.open_board`).
CASES = [
    pytest.param("satellite", MISSING_DEV, "{dev}", id="satellite-missing-device"),
    pytest.param("main", MISSING_DEV, "{dev}", id="main-missing-device"),
    pytest.param("main", NO_DEV_KEY, "port.serial_device", id="main-no-serial-device-key"),
    pytest.param("satellite", NO_KEY_FILE_KEY, "port.link_key_file", id="satellite-no-key-file"),
    pytest.param("main", MISSING_KEY_FILE, "nope.key", id="main-missing-key-file"),
    pytest.param("satellite", SHORT_KEY, "expected 32", id="satellite-short-key"),
]


@pytest.mark.parametrize(("role", "port", "expected"), CASES)
def test_bad_serial_config_is_one_line_and_nonzero_exit(
    tmp_path: Path, role: str, port: str, expected: str
) -> None:
    key, short = tmp_path / "link.key", tmp_path / "short.key"
    key.write_text(KEY_HEX + "\n")
    short.write_text("abcd\n")
    names = {"dev": str(tmp_path / "ttyNOPE"), "key": str(key), "tmp": str(tmp_path)}
    names["short"] = str(short)
    config = tmp_path / f"{role}.toml"
    make = satellite_toml if role == "satellite" else main_toml
    config.write_text(make(tmp_path, port.format(**names)))
    proc = run_cli(role, config)
    assert proc.returncode != 0
    lines = error_lines(proc)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"chargeport {role}: ")
    assert expected.format(**names) in lines[0]


@pytest.mark.parametrize("role", ["satellite", "main"])
def test_device_with_no_mcu_answering_is_one_line(
    tmp_path: Path, silent_tty: str, role: str
) -> None:
    """The device opens but no MCU completes the link handshake (wrong port or wiring)."""
    key = tmp_path / "link.key"
    key.write_text(KEY_HEX)
    body = f'hal = "serial"\nserial_device = "{silent_tty}"\nlink_key_file = "{key}"'
    config = tmp_path / f"{role}.toml"
    config.write_text((satellite_toml if role == "satellite" else main_toml)(tmp_path, body))
    proc = run_cli(role, config)
    assert proc.returncode != 0
    lines = error_lines(proc)
    assert len(lines) == 1, proc.stderr
    assert "no handshake answer" in lines[0] and silent_tty in lines[0]
