"""Security events on their way to the CSMS (whitepaper 1.6 ed. 3, SecurityEventNotification).

Every security event of the main is a record on the `chargeport.security` logger
(`chargeport.security_log.security_event`). `SecurityLogHandler` journals each one in SQLite as
it happens, so that events of an offline period (a refused connection is one) survive until a
connection is up; the session's forwarder sends them in order and marks each delivered once the
CSMS answered. The journal is bounded: past `MAX_PENDING` the oldest undelivered event goes,
with a log line.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass

from chargeport.security_log import LOGGER_NAME, MARKER
from main_node.ocpp.db import transaction

__all__ = ["MAX_PENDING", "SecurityEventJournal", "SecurityLogHandler", "StoredEvent"]

log = logging.getLogger(__name__)

MAX_PENDING = 1000
_TYPE_MAX, _INFO_MAX = 50, 255  # SecurityEventNotification.type string[50], techInfo [255]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS security_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    at REAL NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0
)
"""


@dataclass(frozen=True)
class StoredEvent:
    id: int
    kind: str
    detail: str
    at: float


class SecurityEventJournal:
    """Security events in the station database, undelivered ones in order."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        conn.execute(_SCHEMA)
        self.added = asyncio.Event()  # set when an event is journaled (wakes the forwarder)

    def add(self, kind: str, detail: str, at: float) -> None:
        with transaction(self._conn):
            self._conn.execute(
                "INSERT INTO security_events(kind, detail, at) VALUES (?, ?, ?)",
                (kind[:_TYPE_MAX], detail[:_INFO_MAX], at),
            )
            (pending,) = self._conn.execute(
                "SELECT COUNT(*) FROM security_events WHERE delivered = 0"
            ).fetchone()
            if pending > MAX_PENDING:
                self._conn.execute(
                    "DELETE FROM security_events WHERE id IN (SELECT id FROM security_events "
                    "WHERE delivered = 0 ORDER BY id LIMIT ?)",
                    (pending - MAX_PENDING,),
                )
                log.warning("security event journal full: %d oldest dropped", pending - MAX_PENDING)
            # Delivered events are in the logs already; keep only the last few hundred here.
            self._conn.execute(
                "DELETE FROM security_events WHERE delivered = 1 AND id < "
                "(SELECT COALESCE(MAX(id), 0) - 500 FROM security_events)"
            )
        self.added.set()

    def next(self) -> StoredEvent | None:
        row = self._conn.execute(
            "SELECT id, kind, detail, at FROM security_events WHERE delivered = 0 ORDER BY id"
        ).fetchone()
        return None if row is None else StoredEvent(int(row[0]), row[1], row[2], float(row[3]))

    def delivered(self, event_id: int) -> None:
        with transaction(self._conn):
            self._conn.execute("UPDATE security_events SET delivered = 1 WHERE id = ?", (event_id,))

    def all(self) -> list[tuple[str, str, bool]]:
        """(kind, detail, delivered) of every event kept, oldest first."""
        rows = self._conn.execute(
            "SELECT kind, detail, delivered FROM security_events ORDER BY id"
        ).fetchall()
        return [(str(k), str(d), bool(s)) for k, d, s in rows]


class SecurityLogHandler(logging.Handler):
    """Journals each `chargeport.security` record that names its kind; thread-safe."""

    def __init__(
        self,
        journal: SecurityEventJournal,
        loop: asyncio.AbstractEventLoop,
        now: Callable[[], float],
    ) -> None:
        super().__init__(logging.INFO)
        self._journal = journal
        self._loop = loop
        self._now = now
        self._thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        kind = getattr(record, "security_event", None)
        if not isinstance(kind, str):
            return
        detail = record.getMessage()
        prefix = f"{MARKER} {kind}: "
        if detail.startswith(prefix):
            detail = detail[len(prefix) :]
        if threading.get_ident() == self._thread:
            self._store(kind, detail)
        else:  # a worker thread (firmware verification runs in one): hop to the loop
            self._loop.call_soon_threadsafe(self._store, kind, detail)

    def _store(self, kind: str, detail: str) -> None:
        try:
            self._journal.add(kind, detail, self._now())
        except sqlite3.Error as exc:
            log.error("security event %s not journaled: %s", kind, exc)

    def attach(self) -> None:
        logger = logging.getLogger(LOGGER_NAME)
        if logger.getEffectiveLevel() > logging.WARNING:
            logger.setLevel(logging.WARNING)  # security events are never filtered away
        logger.addHandler(self)

    def detach(self) -> None:
        logging.getLogger(LOGGER_NAME).removeHandler(self)
