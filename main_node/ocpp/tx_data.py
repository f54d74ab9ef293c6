"""StopTransaction.req transactionData (OCPP 1.6 §6.49, keys §9.1.25 / §9.1.27), on disk.

Readings for the StopTransaction of a running transaction accumulate here: a Transaction.Begin
reading, one per MeterValueSampleInterval (StopTxnSampledData) and per ClockAlignedDataInterval
(StopTxnAlignedData), and the Transaction.End reading added when the transaction stops. They
live in the station database so a main restart mid-transaction keeps them; `take` hands them
over (and forgets them) inside the transaction that journals the StopTransaction.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from main_node.ocpp.db import ensure_schema, to_wire, transaction

__all__ = ["MAX_READINGS", "TxDataStore"]

# A bound on what one StopTransaction carries (a day at 60 s); the oldest periodic readings go
# first, the Transaction.Begin reading always stays.
MAX_READINGS = 1440


class TxDataStore:
    """Per-transaction readings for StopTransaction.req transactionData."""

    def __init__(self, conn: sqlite3.Connection, max_readings: int = MAX_READINGS) -> None:
        ensure_schema(conn)
        self._conn = conn
        self._max = max(2, max_readings)

    def add(self, local_tx: str, entry: dict[str, Any]) -> None:
        """Keep one MeterValue element (timestamp + sampledValue) for `local_tx`."""
        with transaction(self._conn):
            self._conn.execute(
                "INSERT INTO stop_tx_data(local_tx, entry) VALUES (?, ?)",
                (local_tx, json.dumps(to_wire(entry))),
            )
            count = self._conn.execute(
                "SELECT COUNT(*) FROM stop_tx_data WHERE local_tx = ?", (local_tx,)
            ).fetchone()[0]
            if count > self._max:
                self._conn.execute(
                    "DELETE FROM stop_tx_data WHERE id = (SELECT id FROM stop_tx_data"
                    " WHERE local_tx = ? ORDER BY id LIMIT 1 OFFSET 1)",
                    (local_tx,),
                )

    def take(self, local_tx: str) -> list[dict[str, Any]]:
        """The readings of `local_tx` in order (wire form), removed from the store."""
        with transaction(self._conn):
            rows = self._conn.execute(
                "SELECT entry FROM stop_tx_data WHERE local_tx = ? ORDER BY id", (local_tx,)
            ).fetchall()
            self._conn.execute("DELETE FROM stop_tx_data WHERE local_tx = ?", (local_tx,))
        return [json.loads(row[0]) for row in rows]

    def count(self, local_tx: str) -> int:
        """How many readings `local_tx` holds."""
        return int(
            self._conn.execute(
                "SELECT COUNT(*) FROM stop_tx_data WHERE local_tx = ?", (local_tx,)
            ).fetchone()[0]
        )
