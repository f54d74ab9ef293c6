"""The station database: WAL + full sync, migrations by user_version, wire helpers."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from main_node.ocpp.db import (
    MIGRATIONS,
    StoreError,
    format_datetime,
    open_db,
    parse_datetime,
    to_wire,
)


def test_open_sets_wal_full_sync_and_schema(tmp_path: Path) -> None:
    """WAL with synchronous=FULL makes every commit durable (journal, OCPP 1.6 §4.10)."""
    conn = open_db(tmp_path / "s.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()
    # Reopening runs nothing twice.
    assert open_db(tmp_path / "s.db").execute("PRAGMA user_version").fetchone()[0] == len(
        MIGRATIONS
    )


def test_older_file_is_upgraded_in_place(tmp_path: Path) -> None:
    """A file written by a build with fewer migrations gets the rest and keeps its data."""
    path = tmp_path / "s.db"
    old = sqlite3.connect(path)
    old.executescript(MIGRATIONS[0] + "; PRAGMA user_version=1;")
    old.execute("INSERT INTO tx_ids VALUES ('a', 1)")
    old.commit()
    old.close()
    conn = open_db(path)
    assert conn.execute("SELECT transaction_id FROM tx_ids").fetchone()[0] == 1
    assert conn.execute("SELECT COUNT(*) FROM reservations").fetchone()[0] == 0


def test_newer_file_is_refused(tmp_path: Path) -> None:
    """A file from a newer build is not touched."""
    path = tmp_path / "s.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        open_db(path)


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (
            {"id_tag": "A", "meter_value": [{"sampled_value": []}]},
            {"idTag": "A", "meterValue": [{"sampledValue": []}]},
        ),
        ({"limit": Decimal("16.5"), "n": Decimal("3")}, {"limit": 16.5, "n": 3}),
        ({"alreadyCamel": 1}, {"alreadyCamel": 1}),
    ],
)
def test_to_wire(value: object, wire: object) -> None:
    """The ocpp package's snake_case and Decimal become OCPP JSON."""
    assert to_wire(value) == wire


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2023-11-14T22:13:20Z", 1_700_000_000.0),
        ("2023-11-14T22:13:20.000Z", 1_700_000_000.0),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000.0),
        ("2023-11-14T22:13:20", 1_700_000_000.0),  # naive = UTC
    ],
)
def test_datetimes(text: str, seconds: float) -> None:
    """OCPP dateTime (§2.1.5 RFC 3339) round trip."""
    assert parse_datetime(text) == seconds
    assert parse_datetime(format_datetime(seconds)) == seconds
    with pytest.raises(ValueError):
        parse_datetime("tomorrow")
