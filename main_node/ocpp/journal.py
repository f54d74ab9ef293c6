"""Transaction-message journal: StartTransaction, StopTransaction and MeterValues, on disk first.

Theory of operation (OCPP 1.6 §4.10 "Transaction-related messages"):

- The charge point journals a message (`enqueue`) before it tries to send it; the row is
  committed and fsync'd before `enqueue` returns, so a crash or power loss loses nothing.
- Messages are delivered strictly in the order they were journaled, across all connectors:
  `next_due` only ever offers the oldest undelivered entry. While that entry waits for its
  retry time, or still needs a transactionId nobody knows yet, everything behind it waits too.
- Going offline is not a failed attempt: the entry just stays at the head. Only a response the
  CSMS could not process counts (`mark_failed_attempt`); after TransactionMessageAttempts
  of those the entry is set aside as 'failed', and the next retry waits
  TransactionMessageRetryInterval * attempts so far.
- A transaction started offline has no CSMS transactionId yet: messages carry the charge
  point's own `local_tx` instead, and the id is substituted when the entry is taken, after
  StartTransaction.conf bound it (`bind_transaction`, or automatically in `mark_delivered`).

Delivery is at-least-once: a crash between sending and `mark_delivered` sends the entry again.

- A write that fails (disk full, read-only file system, I/O error) loses nothing: the session
  runs its journal writes through a `WriteBacklog`, which keeps a failed write in memory, in
  order, with every later one behind it, until `flush` can make them (the disk works again).

- Each transaction is started and stopped once, whatever its port replays: `enqueue` records
  in the same commit that `local_tx` was started / stopped (`started`, `stopped`), so a main
  restarted mid-transaction neither repeats a StartTransaction its satellite replays nor
  forgets a transaction its own port lost with it (`open_transactions`, with the last meter
  reading journaled for it, `note_meter`).
"""

from __future__ import annotations

import collections
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from main_node.ocpp.db import StoreError, ensure_schema, to_wire, transaction

__all__ = ["TRANSACTION_ACTIONS", "Entry", "OpenTransaction", "TransactionJournal", "WriteBacklog"]

TRANSACTION_ACTIONS = frozenset({"StartTransaction", "StopTransaction", "MeterValues"})

# Stopped transactions remembered for dedupe: far more than a satellite's event ring replays.
_KEEP_STOPPED = 1000

# Actions whose payload carries the CSMS transactionId (§6.49 StopTransaction, §6.32 MeterValues).
_NEEDS_TX_ID = frozenset({"StopTransaction", "MeterValues"})


@dataclass(frozen=True)
class Entry:
    """One journaled message, payload ready to send (transactionId resolved)."""

    id: int
    action: str
    payload: dict[str, Any]
    connector_id: int
    local_tx: str | None
    attempts: int


@dataclass(frozen=True)
class OpenTransaction:
    """A transaction started here and not stopped yet, with its last journaled reading."""

    local_tx: str
    connector_id: int
    id_tag: str
    meter_wh: float


class TransactionJournal:
    """The durable FIFO of transaction-related messages (OCPP 1.6 §4.10)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        ensure_schema(conn)
        self._conn = conn

    def enqueue(
        self, action: str, payload: dict[str, Any], connector_id: int, local_tx: str | None
    ) -> int:
        """Journal one message; it is on disk when this returns. Returns the entry id."""
        if action not in TRANSACTION_ACTIONS:
            raise StoreError(f"not a transaction-related message: {action!r}")
        with transaction(self._conn):
            cursor = self._conn.execute(
                "INSERT INTO tx_journal(action, payload, connector_id, local_tx) VALUES (?,?,?,?)",
                (action, json.dumps(to_wire(payload)), connector_id, local_tx),
            )
            if local_tx is not None and action != "MeterValues":
                self._note_lifecycle(action, to_wire(payload), connector_id, local_tx)
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def _note_lifecycle(
        self, action: str, wire: dict[str, Any], connector_id: int, local_tx: str
    ) -> None:
        id_tag = str(wire.get("idTag") or "")
        if action == "StartTransaction":
            self._conn.execute(
                "INSERT OR IGNORE INTO tx_lifecycle(local_tx, connector_id, id_tag, meter_wh)"
                " VALUES (?,?,?,?)",
                (local_tx, connector_id, id_tag, float(wire.get("meterStart") or 0)),
            )
            return
        self._conn.execute(
            "INSERT INTO tx_lifecycle(local_tx, connector_id, id_tag, meter_wh, stopped)"
            " VALUES (?,?,?,?,1) ON CONFLICT(local_tx) DO UPDATE SET stopped = 1",
            (local_tx, connector_id, id_tag, float(wire.get("meterStop") or 0)),
        )
        self._conn.execute(
            "DELETE FROM tx_lifecycle WHERE stopped = 1 AND rowid NOT IN"
            " (SELECT rowid FROM tx_lifecycle WHERE stopped = 1 ORDER BY rowid DESC LIMIT ?)",
            (_KEEP_STOPPED,),
        )

    def started(self, local_tx: str) -> bool:
        """True when a StartTransaction for `local_tx` was ever journaled (even if delivered)."""
        row = self._conn.execute(
            "SELECT 1 FROM tx_lifecycle WHERE local_tx = ?", (local_tx,)
        ).fetchone()
        return row is not None

    def stopped(self, local_tx: str) -> bool:
        """True when a StopTransaction for `local_tx` was already journaled."""
        row = self._conn.execute(
            "SELECT stopped FROM tx_lifecycle WHERE local_tx = ?", (local_tx,)
        ).fetchone()
        return row is not None and bool(row[0])

    def note_meter(self, local_tx: str, meter_wh: float) -> None:
        """Remember the latest reading journaled for an open transaction (with its MeterValues)."""
        with transaction(self._conn):
            self._conn.execute(
                "UPDATE tx_lifecycle SET meter_wh = MAX(meter_wh, ?)"
                " WHERE local_tx = ? AND stopped = 0",
                (meter_wh, local_tx),
            )

    def board_linked(self, connector_id: int, boot_id: str) -> bool:
        """Record the boot id now behind `connector_id`; True when it differs from the one
        recorded before (the board restarted since, taking its transactions with it)."""
        with transaction(self._conn):
            row = self._conn.execute(
                "SELECT boot_id FROM connector_board WHERE connector_id = ?", (connector_id,)
            ).fetchone()
            self._conn.execute(
                "INSERT OR REPLACE INTO connector_board (connector_id, boot_id) VALUES (?, ?)",
                (connector_id, boot_id),
            )
        return row is not None and str(row[0]) != boot_id

    def open_transactions(self, connector_id: int) -> list[OpenTransaction]:
        """Transactions of `connector_id` started and not stopped, oldest first."""
        rows = self._conn.execute(
            "SELECT local_tx, connector_id, id_tag, meter_wh FROM tx_lifecycle"
            " WHERE connector_id = ? AND stopped = 0 ORDER BY rowid",
            (connector_id,),
        ).fetchall()
        return [OpenTransaction(str(r[0]), int(r[1]), str(r[2]), float(r[3])) for r in rows]

    def next_due(self, now: float) -> Entry | None:
        """The oldest undelivered entry if it may be sent at `now`, else None (FIFO, §4.10)."""
        row = self._conn.execute(
            "SELECT id, action, payload, connector_id, local_tx, attempts, next_try"
            " FROM tx_journal WHERE state = 'pending' ORDER BY id LIMIT 1"
        ).fetchone()
        if row is None or row[6] > now:
            return None
        entry_id, action, payload_text, connector_id, local_tx, attempts, _ = row
        payload: dict[str, Any] = json.loads(payload_text)
        if local_tx is not None and action in _NEEDS_TX_ID:
            transaction_id = self.transaction_id(local_tx)
            if transaction_id is None:
                # Blocked until StartTransaction.conf gives the id; order forbids skipping it.
                return None
            payload["transactionId"] = transaction_id
        return Entry(entry_id, action, payload, connector_id, local_tx, attempts)

    def mark_delivered(self, entry_id: int, response: dict[str, Any]) -> None:
        """The CSMS accepted the entry; drop it (binding the transactionId of a Start)."""
        with transaction(self._conn):
            action, local_tx, _ = self._pending_row(entry_id)
            response = to_wire(response)
            if action == "StartTransaction" and local_tx is not None:
                transaction_id = response.get("transactionId")
                if isinstance(transaction_id, int):
                    # Same commit as the delete: a crash cannot leave Stop without its id.
                    self.bind_transaction(local_tx, transaction_id)
            self._conn.execute("DELETE FROM tx_journal WHERE id = ?", (entry_id,))

    def mark_failed_attempt(
        self, entry_id: int, now: float, max_attempts: int, retry_interval_s: float
    ) -> bool:
        """Count a failed attempt; False when attempts are exhausted and the entry is set aside.

        §4.10: retry after TransactionMessageRetryInterval * attempts so far; give up after
        TransactionMessageAttempts. A dropped StartTransaction takes the rest of its
        transaction with it, since those messages can never get a transactionId.
        """
        with transaction(self._conn):
            action, local_tx, attempts = self._pending_row(entry_id)
            attempts += 1
            if attempts >= max(1, max_attempts):
                self._conn.execute(
                    "UPDATE tx_journal SET attempts = ?, state = 'failed' WHERE id = ?",
                    (attempts, entry_id),
                )
                if action == "StartTransaction" and local_tx is not None:
                    self._fail_unbound(local_tx)
                return False
            self._conn.execute(
                "UPDATE tx_journal SET attempts = ?, next_try = ? WHERE id = ?",
                (attempts, now + retry_interval_s * attempts, entry_id),
            )
            return True

    def bind_transaction(self, local_tx: str, transaction_id: int) -> None:
        """Record the CSMS transactionId for a local transaction (StartTransaction.conf)."""
        with transaction(self._conn):
            self._conn.execute(
                "INSERT INTO tx_ids(local_tx, transaction_id) VALUES (?, ?)"
                " ON CONFLICT(local_tx) DO UPDATE SET transaction_id = excluded.transaction_id",
                (local_tx, transaction_id),
            )

    def transaction_id(self, local_tx: str) -> int | None:
        """The CSMS transactionId bound to `local_tx`, if StartTransaction.conf came."""
        row = self._conn.execute(
            "SELECT transaction_id FROM tx_ids WHERE local_tx = ?", (local_tx,)
        ).fetchone()
        return None if row is None else int(row[0])

    def local_tx(self, transaction_id: int) -> str | None:
        """The local transaction a CSMS transactionId belongs to (e.g. RemoteStopTransaction)."""
        row = self._conn.execute(
            "SELECT local_tx FROM tx_ids WHERE transaction_id = ? ORDER BY rowid DESC LIMIT 1",
            (transaction_id,),
        ).fetchone()
        return None if row is None else str(row[0])

    def pending_count(self) -> int:
        """Entries not yet delivered nor set aside."""
        return int(
            self._conn.execute(
                "SELECT COUNT(*) FROM tx_journal WHERE state = 'pending'"
            ).fetchone()[0]
        )

    def failed_entries(self) -> list[Entry]:
        """Entries set aside after exhausting their attempts, oldest first (for diagnostics)."""
        rows = self._conn.execute(
            "SELECT id, action, payload, connector_id, local_tx, attempts"
            " FROM tx_journal WHERE state = 'failed' ORDER BY id"
        ).fetchall()
        return [Entry(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5]) for r in rows]

    def purge_failed(self) -> int:
        """Delete entries set aside as failed; returns how many."""
        with transaction(self._conn):
            cursor = self._conn.execute("DELETE FROM tx_journal WHERE state = 'failed'")
        return cursor.rowcount

    def _fail_unbound(self, local_tx: str) -> None:
        if self.transaction_id(local_tx) is None:
            self._conn.execute(
                "UPDATE tx_journal SET state = 'failed' WHERE state = 'pending' AND local_tx = ?",
                (local_tx,),
            )

    def _pending_row(self, entry_id: int) -> tuple[str, str | None, int]:
        row = self._conn.execute(
            "SELECT action, local_tx, attempts FROM tx_journal WHERE id = ? AND state = 'pending'",
            (entry_id,),
        ).fetchone()
        if row is None:
            raise StoreError(f"no pending journal entry {entry_id}")
        return str(row[0]), row[1], int(row[2])


class WriteBacklog:
    """Writes that the database refused, kept in memory in their order until it takes them.

    `run(what, work)` makes the write now, unless earlier writes still wait (they must land
    first: §4.10 order) or it fails with `sqlite3.OperationalError` (disk full, read-only, I/O
    error); then it waits here and `fault` says why. `flush` retries the waiting writes, oldest
    first. Each `work` is one SQLite transaction, or safe to run again after a partial run.
    """

    def __init__(self, on_fault: Callable[[], None] | None = None) -> None:
        self._waiting: collections.deque[tuple[str, Callable[[], object]]] = collections.deque()
        self._on_fault = on_fault
        self.fault: str | None = None

    def run(self, what: str, work: Callable[[], object]) -> bool:
        """Write now if possible; True when written, False when kept for `flush`."""
        if self._waiting:
            self._waiting.append((what, work))
            return False
        try:
            work()
        except sqlite3.OperationalError as exc:
            self._waiting.append((what, work))
            self.note_fault(exc)
            return False
        return True

    def note_fault(self, exc: sqlite3.Error) -> None:
        """Record a storage fault (also one met by a read) and tell the owner."""
        self.fault = str(exc) or type(exc).__name__
        if self._on_fault is not None:
            self._on_fault()

    def flush(self) -> bool:
        """Retry the waiting writes in order; True when none is left (the fault is over)."""
        while self._waiting:
            _, work = self._waiting[0]
            try:
                work()
            except sqlite3.OperationalError as exc:
                self.fault = str(exc) or type(exc).__name__
                return False
            self._waiting.popleft()
        self.fault = None
        return True

    def waiting(self) -> list[str]:
        """What each waiting write is, oldest first (for the log and the tests)."""
        return [what for what, _ in self._waiting]

    def __len__(self) -> int:
        return len(self._waiting)
