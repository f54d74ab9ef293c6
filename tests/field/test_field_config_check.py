"""`chargeport config check FILE` validates a config, and the files it names, without starting."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chargeport.pki import init_pki
from chargeport_cli.cli import EX_CONFIG

ROOT = Path(__file__).resolve().parents[2]


def check(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chargeport_cli", "config", "check", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


@pytest.fixture
def site(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    return tmp_path


def test_sim_examples_pass_once_the_pki_exists(site: Path) -> None:
    before = check(site, "examples/sim-main.toml")
    assert before.returncode == EX_CONFIG
    assert before.stderr.strip() == (
        "chargeport config: examples/sim-main.toml: link.pki_dir: pki/ca.pem does not exist; "
        "copy the station CA there or run `chargeport pki init`"
    )
    init_pki(site / "pki", "CP-SIM", ["SAT-SIM-1"])
    main = check(site, "examples/sim-main.toml")
    assert main.returncode == 0, main.stderr
    assert main.stdout.strip() == (
        "examples/sim-main.toml: OK (main of station CP-SIM, 2 connectors, no CSMS)"
    )
    sat = check(site, "examples/sim-satellite.toml")
    assert sat.returncode == 0, sat.stderr
    assert sat.stdout.strip() == (
        "examples/sim-satellite.toml: OK (satellite SAT-SIM-1, listens on 0.0.0.0:50061)"
    )


def test_satellite_without_its_certificate_names_the_command_to_make_it(site: Path) -> None:
    init_pki(site / "pki", "CP-SIM", [])  # the CA, but no certificate for this serial
    proc = check(site, "examples/sim-satellite.toml")
    assert proc.returncode == EX_CONFIG
    assert "issue it with `chargeport pki init --satellite SAT-SIM-1`" in proc.stderr


def test_a_wrong_value_is_one_line_and_nothing_starts(site: Path) -> None:
    bad = site / "bad.toml"
    bad.write_text('[board]\nserial = "S-1"\n[port]\nphases = 2\n')
    proc = check(site, str(bad))
    assert proc.returncode == EX_CONFIG
    assert proc.stderr.strip() == (f"chargeport config: {bad}: port.phases: expected 1 or 3, got 2")
    assert proc.stdout == ""
