"""The TransactionEvent journal (2.0.1 Part 2 E12 / E13 "offline", "retries"), on disk first.

Same rules as the 1.6 journal (`main_node.ocpp.journal`): an event is committed (fsync'd) before
anything tries to send it, events go out strictly in journal order across EVSEs, going offline
is not a failed attempt, and after MessageAttempts[TransactionEvent] CALLERRORs an event is set
aside, the retry waiting MessageAttemptInterval[TransactionEvent] x attempts. 2.0.1 needs no
id binding: the station generates the transactionId. The open transactions (id, seqNo, token)
are kept in the same commit, so a restarted main continues a satellite's transaction.

Tables live beside the 1.6 ones in the same file, created here with IF NOT EXISTS (the shared
migration list in `main_node.ocpp.db` is being changed by the 1.6 work; folding these tables
into it is a follow-up).
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from ocpp.messages import MessageType

from main_node.ocpp.db import StoreError, transaction
from main_node.ocpp201.rpc import validate
from main_node.ocpp201.tx_events import TxRecord

__all__ = ["Entry", "EventJournal"]

_TABLES = (
    """CREATE TABLE IF NOT EXISTS ocpp201_journal (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        evse INTEGER NOT NULL,
        tx_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_try REAL NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'pending'
    )""",
    "CREATE INDEX IF NOT EXISTS ocpp201_journal_state ON ocpp201_journal(state, id)",
    """CREATE TABLE IF NOT EXISTS ocpp201_open_tx (
        evse INTEGER PRIMARY KEY,
        record TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS ocpp201_board (
        evse INTEGER PRIMARY KEY,
        boot_id TEXT NOT NULL
    )""",
)


@dataclass(frozen=True)
class Entry:
    id: int
    evse: int
    tx_id: str
    payload: dict[str, Any]
    attempts: int


class EventJournal:
    """The durable FIFO of TransactionEvents and the open transaction of each EVSE."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        with transaction(conn):
            for statement in _TABLES:
                conn.execute(statement)

    def enqueue(self, evse: int, payloads: list[dict[str, Any]], open_tx: TxRecord | None) -> None:
        """Journal events of one EVSE and its open transaction, in one commit.

        Each event is checked against the 2.0.1 schema here, once: an event that could never
        be delivered must not sit at the head of the FIFO and block every later one.
        """
        for payload in payloads:
            validate(MessageType.Call, "TransactionEvent", payload)
        with transaction(self._conn):
            self._conn.executemany(
                "INSERT INTO ocpp201_journal(evse, tx_id, payload) VALUES (?,?,?)",
                [
                    (evse, str(p["transactionInfo"]["transactionId"]), json.dumps(p))
                    for p in payloads
                ],
            )
            self.save_open(evse, open_tx)

    def save_open(self, evse: int, record: TxRecord | None) -> None:
        with transaction(self._conn):
            if record is None:
                self._conn.execute("DELETE FROM ocpp201_open_tx WHERE evse = ?", (evse,))
            else:
                self._conn.execute(
                    "INSERT OR REPLACE INTO ocpp201_open_tx VALUES (?, ?)",
                    (evse, json.dumps(dataclasses.asdict(record))),
                )

    def board_linked(self, evse: int, boot_id: str) -> bool:
        """Record the boot id of the board behind an EVSE; True when it differs from the one
        recorded before (the board restarted since, taking its transaction with it)."""
        with transaction(self._conn):
            row = self._conn.execute(
                "SELECT boot_id FROM ocpp201_board WHERE evse = ?", (evse,)
            ).fetchone()
            self._conn.execute(
                "INSERT OR REPLACE INTO ocpp201_board (evse, boot_id) VALUES (?, ?)",
                (evse, boot_id),
            )
        return row is not None and str(row[0]) != boot_id

    def open_transactions(self) -> dict[int, TxRecord]:
        rows = self._conn.execute("SELECT evse, record FROM ocpp201_open_tx").fetchall()
        return {int(evse): TxRecord(**json.loads(text)) for evse, text in rows}

    def next_due(self, now: float) -> Entry | None:
        """The oldest undelivered event if it may be sent at `now` (FIFO)."""
        row = self._conn.execute(
            "SELECT id, evse, tx_id, payload, attempts, next_try FROM ocpp201_journal"
            " WHERE state = 'pending' ORDER BY id LIMIT 1"
        ).fetchone()
        if row is None or row[5] > now:
            return None
        return Entry(int(row[0]), int(row[1]), str(row[2]), json.loads(row[3]), int(row[4]))

    def mark_delivered(self, entry_id: int) -> None:
        with transaction(self._conn):
            self._conn.execute("DELETE FROM ocpp201_journal WHERE id = ?", (entry_id,))

    def mark_failed_attempt(
        self, entry_id: int, now: float, max_attempts: int, retry_interval_s: float
    ) -> bool:
        """Count a CALLERROR; False when the event is set aside after its last attempt (E13)."""
        with transaction(self._conn):
            row = self._conn.execute(
                "SELECT attempts FROM ocpp201_journal WHERE id = ? AND state = 'pending'",
                (entry_id,),
            ).fetchone()
            if row is None:
                raise StoreError(f"no pending journal entry {entry_id}")
            attempts = int(row[0]) + 1
            if attempts >= max(1, max_attempts):
                self._conn.execute(
                    "UPDATE ocpp201_journal SET attempts = ?, state = 'failed' WHERE id = ?",
                    (attempts, entry_id),
                )
                return False
            self._conn.execute(
                "UPDATE ocpp201_journal SET attempts = ?, next_try = ? WHERE id = ?",
                (attempts, now + retry_interval_s * attempts, entry_id),
            )
            return True

    def pending_count(self) -> int:
        row = self._conn.execute(
            "SELECT COUNT(*) FROM ocpp201_journal WHERE state = 'pending'"
        ).fetchone()
        return int(row[0])

    def failed_count(self) -> int:
        row = self._conn.execute(
            "SELECT COUNT(*) FROM ocpp201_journal WHERE state = 'failed'"
        ).fetchone()
        return int(row[0])
