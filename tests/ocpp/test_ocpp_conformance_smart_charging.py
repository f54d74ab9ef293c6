"""A TxProfile's transactionId must be the transaction on its connector (OCPP 1.6 section
3.13.4 / 5.16.2): otherwise SetChargingProfile is Rejected."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from main_node.ocpp.db import open_db
from main_node.ocpp.smart_charging import ProfileStore

RUNNING = {1: 501, 3: 503}  # connector -> the CSMS's transactionId running there


def _profile(transaction_id: int | None) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "chargingProfileId": 9,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": {
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 8.0}],
        },
    }
    if transaction_id is not None:
        profile["transactionId"] = transaction_id
    return profile


CASES = [
    ("its own transaction: Accepted", 1, 501, "Accepted"),
    ("no transactionId: the running one, Accepted", 1, None, "Accepted"),
    ("another connector's transaction: Rejected", 1, 503, "Rejected"),
    ("an unknown transaction: Rejected", 3, 999, "Rejected"),
    ("no transaction on the connector: Rejected", 2, None, "Rejected"),
]


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    db = open_db(tmp_path / "db.sqlite")
    yield db
    db.close()


@pytest.mark.parametrize(
    ("name", "connector", "transaction_id", "status"), CASES, ids=[c[0] for c in CASES]
)
def test_tx_profile_transaction_id_ocpp16_3_13_4(
    conn: sqlite3.Connection, name: str, connector: int, transaction_id: int | None, status: str
) -> None:
    store = ProfileStore(
        conn,
        lambda cid: cid in RUNNING,
        number_of_connectors=4,
        transaction_of=RUNNING.get,
    )
    assert store.set(connector, _profile(transaction_id), 0.0) == status
    assert (store.limit(connector, 1.0) == 8.0) == (status == "Accepted")
    # Whatever was decided, no other connector is limited by it.
    assert all(store.limit(c, 1.0) is None for c in (1, 2, 3, 4) if c != connector)
