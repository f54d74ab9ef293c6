"""The station's own records for the dashboard: transactions and an event log (pure, bounded).

`apply(connector, event)` folds a port event in (the event's own timestamp is used), and
`ocpp_connection(connected, t)` notes the central system coming and going. Transactions are
opened by TransactionStarted and closed by TransactionFinished (energy = stop register - start
register, the stop reason as OCPP 1.6 Reason); events are faults raised/cleared, link lost/back
and OCPP connection changes. Both lists are bounded deques: the oldest entries fall off.
`version` moves on every change so a page knows when to fetch the lists again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from chargeport.port import (
    LinkChanged,
    PortDisabledChanged,
    PortErrorEvent,
    PortEvent,
    SessionEvent,
    SessionEventType,
)

__all__ = ["EventEntry", "StationRecords", "TransactionEntry"]

MAX_TRANSACTIONS = 200
MAX_EVENTS = 500


@dataclass(slots=True)
class TransactionEntry:
    connector: int
    transaction_id: str
    id_tag: str
    start: float
    meter_start_wh: float
    stop: float | None = None
    energy_wh: float | None = None
    stop_reason: str = ""


@dataclass(frozen=True, slots=True)
class EventEntry:
    t: float
    kind: str  # "fault" | "link" | "ocpp" | "availability"
    connector: int | None  # None: the station as a whole
    text: str


class StationRecords:
    """Recent transactions and events, bounded."""

    def __init__(self, max_transactions: int = MAX_TRANSACTIONS, max_events: int = MAX_EVENTS):
        self.transactions: deque[TransactionEntry] = deque(maxlen=max_transactions)
        self.events: deque[EventEntry] = deque(maxlen=max_events)
        self._open: dict[int, TransactionEntry] = {}
        self._link: dict[int, bool] = {}
        self._ocpp: bool | None = None
        self.version = 0

    def _event(self, t: float, kind: str, connector: int | None, text: str) -> None:
        self.events.append(EventEntry(t, kind, connector, text))
        self.version += 1

    def apply(self, connector: int, event: PortEvent) -> None:
        body, t = event.body, event.timestamp
        if isinstance(body, SessionEvent) and body.transaction is not None:
            tx = body.transaction
            if body.type is SessionEventType.TRANSACTION_STARTED:
                start_wh = round(tx.meter_wh, 2)
                entry = TransactionEntry(connector, tx.transaction_id, tx.id_tag, t, start_wh)
                self._open[connector] = entry
                self.transactions.append(entry)
                self.version += 1
            elif body.type is SessionEventType.TRANSACTION_FINISHED:
                opened = self._open.pop(connector, None)
                if opened is None:  # its start came before the dashboard: energy unknown
                    entry = self._adopt(connector, t, tx.id_tag)
                else:
                    entry = opened
                    entry.energy_wh = round(max(0.0, tx.meter_wh - entry.meter_start_wh), 2)
                entry.stop = t
                entry.stop_reason = tx.stop_reason.value if tx.stop_reason else ""
                self.version += 1
        elif isinstance(body, PortErrorEvent):
            what = "raised" if body.active else "cleared"
            detail = f": {body.message}" if body.message and body.active else ""
            self._event(t, "fault", connector, f"{body.code.value} {what}{detail}")
        elif isinstance(body, LinkChanged):
            if self._link.get(connector, True) != body.connected:
                self._event(t, "link", connector, "link up" if body.connected else "link lost")
            self._link[connector] = body.connected
        elif isinstance(body, PortDisabledChanged):
            self._event(t, "availability", connector, "enabled" if body.enabled else "disabled")

    def _adopt(self, connector: int, t: float, id_tag: str) -> TransactionEntry:
        """A stop whose start we did not see (the dashboard started mid-transaction)."""
        entry = TransactionEntry(connector, "", id_tag, t, 0.0)
        self.transactions.append(entry)
        return entry

    def ocpp_connection(self, connected: bool, t: float) -> None:
        if connected != self._ocpp:
            if self._ocpp is not None or connected:
                text = "CSMS connected" if connected else "CSMS connection lost"
                self._event(t, "ocpp", None, text)
            self._ocpp = connected

    def to_json(self) -> dict[str, Any]:
        """Newest first, as a table shows them."""
        return {
            "version": self.version,
            "transactions": [asdict(tx) for tx in reversed(self.transactions)],
            "events": [asdict(ev) for ev in reversed(self.events)],
        }
