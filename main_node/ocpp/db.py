"""The SQLite file behind the OCPP stores: open, migrate, transact, and wire-value helpers.

Every store (journal, auth, smart charging, config keys, availability, reservations,
StopTransaction readings) keeps its tables in one file. The schema is a single ordered list
of migrations; `PRAGMA user_version` records how many have run, so a newer build upgrades an
older file in place and an older build refuses a newer file instead of corrupting it.

The connection runs in autocommit mode; writes go through `transaction()`, which wraps them in
`BEGIN IMMEDIATE` … `COMMIT`. With WAL and `synchronous=FULL` a commit is fsync'd before it
returns, which is what lets the journal promise "enqueued means on disk" (OCPP 1.6 §4.10).
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from main_node.errors import MainNodeError

__all__ = [
    "MIGRATIONS",
    "StoreError",
    "ensure_schema",
    "format_datetime",
    "open_db",
    "parse_datetime",
    "to_wire",
    "transaction",
]


class StoreError(MainNodeError):
    """A persistence problem or a misuse of a store (unknown entry, newer schema, bad file)."""


# Ordered; index + 1 is the user_version after the step. Append only, never edit a step
# that has shipped. The comment names the module that owns the tables.
MIGRATIONS: tuple[str, ...] = (
    # 1: journal.py — transaction-related messages, in enqueue order (id is monotonic).
    """
    CREATE TABLE tx_journal (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        action TEXT NOT NULL,
        payload TEXT NOT NULL,
        connector_id INTEGER NOT NULL,
        local_tx TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_try REAL NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'pending'
    );
    CREATE INDEX tx_journal_state ON tx_journal(state, id);
    CREATE TABLE tx_ids (
        local_tx TEXT PRIMARY KEY,
        transaction_id INTEGER NOT NULL
    );
    """,
    # 2: auth.py — local authorization list and authorization cache.
    """
    CREATE TABLE auth_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE auth_list (id_key TEXT PRIMARY KEY, id_tag TEXT NOT NULL, info TEXT NOT NULL);
    CREATE TABLE auth_cache (
        id_key TEXT PRIMARY KEY,
        id_tag TEXT NOT NULL,
        info TEXT NOT NULL,
        stored_at REAL NOT NULL
    );
    """,
    # 3: smart_charging.py — installed charging profiles.
    """
    CREATE TABLE charging_profiles (
        profile_id INTEGER PRIMARY KEY,
        connector_id INTEGER NOT NULL,
        purpose TEXT NOT NULL,
        stack_level INTEGER NOT NULL,
        profile TEXT NOT NULL,
        received_at REAL NOT NULL
    );
    """,
    # 4: config_keys.py — values changed by ChangeConfiguration.
    """
    CREATE TABLE config_values (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 5: availability.py — per-connector availability and scheduled changes.
    """
    CREATE TABLE availability (
        connector_id INTEGER PRIMARY KEY,
        state TEXT NOT NULL,
        pending TEXT
    );
    """,
    # 6: reservations.py — reservations with their expiry.
    """
    CREATE TABLE reservations (
        reservation_id INTEGER PRIMARY KEY,
        connector_id INTEGER NOT NULL,
        id_tag TEXT NOT NULL,
        parent_id_tag TEXT,
        expiry REAL NOT NULL
    );
    """,
    # 7: tx_data.py — readings kept for StopTransaction.req transactionData (§4.10, §9.1).
    """
    CREATE TABLE stop_tx_data (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        local_tx TEXT NOT NULL,
        entry TEXT NOT NULL
    );
    CREATE INDEX stop_tx_data_tx ON stop_tx_data(local_tx, id);
    """,
    # 8: journal.py — which transactions were started / stopped, across restarts (§4.10).
    """
    CREATE TABLE tx_lifecycle (
        local_tx TEXT PRIMARY KEY,
        connector_id INTEGER NOT NULL,
        id_tag TEXT NOT NULL,
        meter_wh REAL NOT NULL,
        stopped INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX tx_lifecycle_open ON tx_lifecycle(connector_id, stopped);
    """,
    # 9: journal.py — the boot id of the board behind each connector, as last linked.
    """
    CREATE TABLE connector_board (
        connector_id INTEGER PRIMARY KEY,
        boot_id TEXT NOT NULL
    );
    """,
)


def open_db(path: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) the station database with WAL, full sync and the current schema."""
    try:
        # check_same_thread=False: the caller may open on one thread and use it on the loop's;
        # it must still use the connection from one thread at a time.
        if str(path) != ":memory:":
            # 0600 before SQLite opens it (its -wal/-shm files take the database's mode):
            # the queue holds id tags and the CSMS's configuration (issue 14).
            Path(path).touch(mode=0o600)
            Path(path).chmod(0o600)
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is fsync'd at every commit, so an enqueued message survives power loss.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=5000")
        ensure_schema(conn)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open OCPP database {path}: {exc}") from exc
    return conn


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Run the migrations this file has not seen yet; refuse a file from a newer build."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise StoreError(
            f"database schema version {version} is newer than this build ({len(MIGRATIONS)})"
        )
    for number in range(version + 1, len(MIGRATIONS) + 1):
        with transaction(conn):
            for statement in MIGRATIONS[number - 1].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block as one write transaction, committed (and fsync'd) on exit."""
    if conn.in_transaction:
        # Nested use joins the outer transaction; the outer block commits.
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        # Also when COMMIT itself fails (disk full): a transaction left open would swallow
        # every later write into a commit that never comes.
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


_CAMEL = re.compile(r"_([a-z])")


def to_wire(value: Any) -> Any:
    """Normalise a payload to OCPP JSON form: camelCase keys, Decimal -> float.

    The `ocpp` package hands handlers snake_case keys, and parses SetChargingProfile floats
    as Decimal; stores keep the wire form so json round-trips and both spellings work.
    """
    if isinstance(value, dict):
        return {
            _CAMEL.sub(lambda m: m.group(1).upper(), str(k)): to_wire(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [to_wire(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def parse_datetime(text: str) -> float:
    """OCPP dateTime (RFC 3339, 'Z' or offset; naive taken as UTC) -> unix seconds."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"not an OCPP dateTime: {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def format_datetime(seconds: float) -> str:
    """Unix seconds -> OCPP dateTime in UTC with a 'Z' suffix."""
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    text = moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")
