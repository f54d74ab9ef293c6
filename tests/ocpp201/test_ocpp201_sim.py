"""`chargeport sim --ocpp 2.0.1`: main + a satellite as processes, the built-in 2.0.1 CSMS; each
gun's RFID swipe is authorized, the transaction arrives as TransactionEvents whose Started /
Ended registers match the energy the station measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_two_guns_complete_a_session_over_ocpp_2_0_1(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "chargeport_cli", "sim", "--headless", "--dashboard-port", "0",
         "--state-dir", str(tmp_path / "state"), "--ocpp", "2.0.1", "--satellites", "1",
         "--speed", "30", "--duration", "600", "--until-complete"],
        capture_output=True, text=True, timeout=150,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    guns = {g["connector"]: g for g in summary["guns"]}
    assert sorted(guns) == [1, 2]
    transactions = summary["csms"]["transactions"]
    assert sorted(t["connector_id"] for t in transactions) == [1, 2]
    for tx in transactions:
        assert tx["reason"] == "EVDisconnected"
        assert guns[tx["connector_id"]]["sessions_completed"] >= 1
        measured = guns[tx["connector_id"]]["energy_wh"]
        assert abs((tx["meter_stop"] - tx["meter_start"]) - measured) <= 1.0


def test_unknown_ocpp_version_is_refused_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "chargeport_cli", "sim", "--headless", "--ocpp", "2.1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--ocpp: invalid choice: '2.1'" in proc.stderr
