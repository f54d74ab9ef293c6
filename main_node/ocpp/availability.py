"""Per-connector availability (OCPP 1.6 §5.2 ChangeAvailability), persisted across restarts.

Theory of operation: every connector 0..N has a stored state (Operative/Inoperative) and
maybe a pending one. A request for a connector with a running transaction that would make it
Inoperative is answered Scheduled and applied when the transaction ends (§5.2). Connector 0
stands for the whole charge point: a request for it writes through to every connector, and
the charge point's own state follows once no connector is waiting any more. A connector is
effectively Inoperative when its own state or connector 0's is. Requesting the state a
connector is already in is Accepted (§5.2).

Decisions come back as data: the status to answer, the connectors whose *effective*
availability changed now (to report with StatusNotification), and the effective state of
every connector the request settled now (`apply`): the caller pushes those to the ports
every time, so a repeated Inoperative is applied again (idempotently) even when the store
already said Inoperative and a board forgot it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal

from main_node.ocpp.db import ensure_schema, transaction

__all__ = ["AvailabilityResult", "AvailabilityStore", "AvailabilityType"]

AvailabilityType = Literal["Operative", "Inoperative"]
_TYPES = ("Operative", "Inoperative")


@dataclass(frozen=True)
class AvailabilityResult:
    """ChangeAvailability.conf status plus the effective changes to apply now."""

    status: Literal["Accepted", "Rejected", "Scheduled"]
    changes: dict[int, AvailabilityType] = field(default_factory=dict)
    apply: dict[int, AvailabilityType] = field(default_factory=dict)  # connectors >= 1


class AvailabilityStore:
    """Operative/Inoperative for connectors 0..N with scheduled changes."""

    def __init__(self, conn: sqlite3.Connection, number_of_connectors: int) -> None:
        ensure_schema(conn)
        self._conn = conn
        self.number_of_connectors = number_of_connectors
        self._state: dict[int, AvailabilityType] = {
            c: "Operative" for c in range(number_of_connectors + 1)
        }
        self._pending: dict[int, AvailabilityType] = {}
        for connector_id, state, pending in conn.execute(
            "SELECT connector_id, state, pending FROM availability"
        ):
            if connector_id in self._state and state in _TYPES:
                self._state[connector_id] = state
                if pending in _TYPES:
                    self._pending[connector_id] = pending

    def effective(self, connector_id: int) -> AvailabilityType:
        """The availability the connector has now."""
        if self._state[0] == "Inoperative":
            return "Inoperative"
        return self._state[connector_id]

    def all_effective(self) -> dict[int, AvailabilityType]:
        """Effective availability of connectors 0..N (for boot StatusNotifications)."""
        return {c: self.effective(c) for c in self._state}

    def pending(self, connector_id: int) -> AvailabilityType | None:
        """The change scheduled for after the connector's transaction, if any."""
        return self._pending.get(connector_id)

    def request(self, connector_id: int, kind: str, busy: Collection[int]) -> AvailabilityResult:
        """ChangeAvailability.req; `busy` holds the connectors with a running transaction."""
        if kind not in _TYPES or not 0 <= connector_id <= self.number_of_connectors:
            return AvailabilityResult("Rejected")
        target: AvailabilityType = "Operative" if kind == "Operative" else "Inoperative"
        before = self.all_effective()
        targets = range(1, self.number_of_connectors + 1) if connector_id == 0 else [connector_id]
        scheduled = False
        settled: list[int] = []
        for c in targets:
            if target == "Inoperative" and c in busy and self._state[c] != target:
                # §5.2: a transaction in progress is not interrupted; change after it ends.
                self._pending[c] = target
                scheduled = True
            else:
                self._state[c] = target
                self._pending.pop(c, None)
                settled.append(c)
        if connector_id == 0:
            if scheduled:
                self._pending[0] = target
            else:
                self._state[0] = target
                self._pending.pop(0, None)
        self._save()
        return AvailabilityResult(
            "Scheduled" if scheduled else "Accepted",
            self._diff(before),
            {c: self.effective(c) for c in settled},
        )

    def settle(self, busy: Collection[int]) -> dict[int, AvailabilityType]:
        """Apply scheduled changes of connectors no longer busy (after a transaction, at boot)."""
        before = self.all_effective()
        for c in [c for c in self._pending if c != 0 and c not in busy]:
            self._state[c] = self._pending.pop(c)
        if 0 in self._pending and not any(c in self._pending for c in self._state if c != 0):
            self._state[0] = self._pending.pop(0)
        self._save()
        return self._diff(before)

    def transaction_ended(
        self, connector_id: int, busy: Collection[int]
    ) -> dict[int, AvailabilityType]:
        """The transaction on `connector_id` ended; apply what was scheduled for it."""
        return self.settle([c for c in busy if c != connector_id])

    def _diff(self, before: dict[int, AvailabilityType]) -> dict[int, AvailabilityType]:
        after = self.all_effective()
        return {c: s for c, s in after.items() if before.get(c) != s}

    def _save(self) -> None:
        with transaction(self._conn):
            self._conn.executemany(
                "INSERT OR REPLACE INTO availability(connector_id, state, pending) VALUES (?,?,?)",
                [(c, s, self._pending.get(c)) for c, s in self._state.items()],
            )
