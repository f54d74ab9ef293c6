"""`chargeport sim --headless`: the whole station as separate processes, end to end.

Main + three satellites found by mDNS on 127.0.0.1, mTLS from a fresh PKI, the built-in OCPP
central system, and the default scenarios: every gun completes a session and the CSMS records
one transaction per gun whose meter readings match the energy the station measured.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def run_sim(tmp_path: Path, *extra: str) -> dict:  # type: ignore[type-arg]
    proc = subprocess.run(
        [sys.executable, "-m", "chargeport_cli", "sim", "--headless", "--dashboard-port", "0",
         "--state-dir", str(tmp_path / "state"), *extra],
        capture_output=True, text=True, timeout=150,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary: dict = json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[type-arg]
    return summary


def test_four_guns_complete_a_session_and_the_csms_records_four_transactions(
    tmp_path: Path,
) -> None:
    summary = run_sim(tmp_path, "--speed", "30", "--duration", "600", "--until-complete")
    guns = summary["guns"]
    assert [g["connector"] for g in guns] == [1, 2, 3, 4]
    for gun in guns:
        assert gun["sessions_completed"] >= 1, gun
        assert gun["faults"] == [], gun
        # Each default scenario charges for minutes at 16-32 A: tens of Wh at the very least,
        # and less than the 22 kW port could deliver in ten minutes.
        assert 50 < gun["energy_wh"] < 22_000 / 6, gun
    transactions = summary["csms"]["transactions"]
    assert sorted(t["connector_id"] for t in transactions) == [1, 2, 3, 4]
    by_connector = {g["connector"]: g for g in guns}
    for tx in transactions:
        assert tx["meter_stop"] is not None and tx["meter_stop"] > tx["meter_start"]
        measured = by_connector[tx["connector_id"]]["energy_wh"]
        assert abs((tx["meter_stop"] - tx["meter_start"]) - measured) <= 1.0  # whole Wh on OCPP


def test_bad_scenario_argument_is_one_line_and_non_zero(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "chargeport_cli", "sim", "--headless", "--scenario", "9=nope.txt"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "chargeport sim: --scenario '9=nope.txt': expected N=FILE with N from 1 to 4"
    )
