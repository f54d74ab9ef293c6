"""Files holding secrets are written 0600 whatever the umask (issue 14): PKI and firmware keys,
the sim's main.toml (which holds only the dashboard password's hash), the OCPP database and its
WAL, and the diagnostics archive of every board's logs."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from chargeport import pki
from chargeport.bundle import generate_keypair
from chargeport.config import MainConfig, load_config
from main_node.dashboard_auth import verify_password
from main_node.ocpp.db import open_db
from satellite.board_system import LocalBoardSystem
from simulation.station import prepare
from system_aggregator.aggregator import SystemAggregator


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The usual 022: files would be world-readable unless the code says otherwise."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_pki_keys_0600_even_over_an_old_0644_file(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    pki.init_pki(d, "ST", ["SAT-1"])
    keys = sorted(d.glob("*.key"))
    assert [k.name for k in keys] == ["ca.key", "main.key", "satellite-SAT-1.key"]
    assert {mode(k) for k in keys} == {0o600}
    assert mode(d) == 0o700
    (d / "main.key").chmod(0o644)  # left by an older build
    pki.init_pki(d, "ST", ["SAT-1"], force=True)
    assert mode(d / "main.key") == 0o600
    assert not list(d.glob(".*.tmp"))  # no temporary file left behind


def test_write_secret_is_atomic_and_private(tmp_path: Path) -> None:
    target = tmp_path / "secret.toml"
    target.write_text("old")
    target.chmod(0o644)
    pki.write_secret(target, "password = 'x'\n")
    assert target.read_text() == "password = 'x'\n" and mode(target) == 0o600


def test_firmware_signing_key_0600(tmp_path: Path) -> None:
    pub = generate_keypair(tmp_path / "fw.key")
    assert mode(tmp_path / "fw.key") == 0o600
    assert mode(pub) == 0o644  # the public half is meant to be shared


def test_sim_main_toml_is_private_and_holds_only_a_hash(tmp_path: Path) -> None:
    layout = prepare(
        tmp_path / "sim", satellites=1, csms_url="", dashboard_port=0,
        operator_password="hunter2-operator", scenarios={}, mqtt=("127.0.0.1", 1883),
        grace_period_s=10.0,
    )  # fmt: skip
    assert mode(layout.main_config) == 0o600
    text = layout.main_config.read_text()
    assert "hunter2-operator" not in text
    config = load_config(layout.main_config, MainConfig)
    assert verify_password("hunter2-operator", config.dashboard.operator_password_hash)
    assert config.mqtt.commands and config.mqtt.mains  # `sim --mqtt` keeps its commands on
    assert mode(layout.signing_key) == 0o600


def test_ocpp_database_and_wal_0600(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.sqlite"
    conn = open_db(path)
    try:
        conn.execute("CREATE TABLE probe (x)")
        conn.execute("INSERT INTO probe VALUES (1)")
        wal = path.with_name(path.name + "-wal")
        assert wal.exists()
        assert mode(path) == 0o600 and mode(wal) == 0o600
    finally:
        conn.close()
    path.chmod(0o644)  # a database from an older build is tightened on the next open
    open_db(path).close()
    assert mode(path) == 0o600


async def test_diagnostics_archive_0600(tmp_path: Path) -> None:
    pub = generate_keypair(tmp_path / "fw.key")
    board = LocalBoardSystem("MAIN-1", "main", tmp_path / "main", [pub], "t", version="1.0.0")
    handler = board.make_log_handler()
    handler.close()
    agg = SystemAggregator(board, [], trusted_keys=[pub], target="t", work_dir=tmp_path / "w")
    out = tmp_path / "diag.tar.gz"
    await agg.collect_diagnostics(out, None, None)
    assert mode(out) == 0o600
    await agg.aclose()
