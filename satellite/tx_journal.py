"""The satellite's transaction journal: each transaction's begin and end, on disk first.

Theory of operation. The event ring is memory and bounded; billing facts must outlive it, a
satellite restart and a link loss of any length (issue 16: not one watt-hour lost between
boards). The agent folds the port's own events into this journal:
  * TransactionStarted -> the open transaction (its begin register, signed begin record, the
    real start time and session), written and fsynced before the event goes on the link;
  * MeterValue -> the last register seen (written once it moved `step_wh`, no fsync: the page
    cache outlives a killed process), what a transaction cut by a restart ends at when the
    board cannot read its register itself;
  * TransactionFinished -> a finished record (end register, signed end, stop time), fsynced;
    the last `keep` of them stay, because a main that was down or lost events during the
    outage learns of them only from here. Few are needed: without a main the port is
    disabled after the grace, so at most the one or two sessions around an outage end unseen;
    each one is replayed to every new main (the consumers take a Start/Stop once).
`replay()` gives the records as (timestamp, SessionEvent) pairs, oldest first: the agent sends
them ahead of a snapshot, the main journals each Start/Stop once (OCPP 1.6 4.10 dedupe on the
transaction id). `interrupted()` is the transaction the previous process left open (a restart:
the agent ends it at the register with reason PowerLoss, 6.49).

The state is one small JSON file replaced atomically. An unreadable file is logged once and
the journal starts empty: a broken file must never keep the port from charging.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from chargeport.port import SessionEvent, SessionEventType, StopReason, TransactionData

__all__ = ["JOURNAL_FILE", "JournaledTx", "TxJournal"]

log = logging.getLogger(__name__)

JOURNAL_FILE = Path("link") / "tx-journal.json"
_MAX_FILE = 1024 * 1024


@dataclass(frozen=True, slots=True)
class JournaledTx:
    """One transaction as the satellite journaled it; `end` None while it runs."""

    session_id: str
    begin: TransactionData
    started_at: float
    end: TransactionData | None = None
    ended_at: float = 0.0


def _tx_to_json(tx: TransactionData) -> dict[str, Any]:
    out = asdict(tx)
    out["stop_reason"] = tx.stop_reason.value if tx.stop_reason is not None else None
    return out


def _tx_from_json(raw: dict[str, Any]) -> TransactionData:
    reason = raw.get("stop_reason")
    return TransactionData(
        transaction_id=str(raw["transaction_id"]),
        id_tag=str(raw.get("id_tag", "")),
        meter_wh=float(raw["meter_wh"]),
        reservation_id=None if raw.get("reservation_id") is None else int(raw["reservation_id"]),
        stop_reason=StopReason(reason) if reason else None,
        signed_meter=str(raw.get("signed_meter", "")),
    )


def _entry_to_json(e: JournaledTx) -> dict[str, Any]:
    return {
        "session_id": e.session_id,
        "begin": _tx_to_json(e.begin),
        "started_at": e.started_at,
        "end": _tx_to_json(e.end) if e.end is not None else None,
        "ended_at": e.ended_at,
    }


def _entry_from_json(raw: dict[str, Any]) -> JournaledTx:
    end = raw.get("end")
    return JournaledTx(
        session_id=str(raw.get("session_id", "")),
        begin=_tx_from_json(raw["begin"]),
        started_at=float(raw["started_at"]),
        end=_tx_from_json(end) if end else None,
        ended_at=float(raw.get("ended_at", 0.0)),
    )


class TxJournal:
    """The open transaction, the last finished ones and the last register, in one file."""

    def __init__(self, path: Path, *, keep: int = 8, step_wh: float = 1.0) -> None:
        self.path = path
        self.keep = max(1, keep)
        self.step_wh = step_wh
        self.open: JournaledTx | None = None
        self.finished: list[JournaledTx] = []
        self.last_wh: float | None = None
        self._saved_wh: float | None = None
        self._failing = False
        self._load()

    @classmethod
    def in_state_dir(cls, state_dir: str | Path, **kw: Any) -> TxJournal:
        return cls(Path(state_dir) / JOURNAL_FILE, **kw)

    # ------------------------------------------------------------ folding the port's events

    def started(self, session_id: str, tx: TransactionData, at: float) -> None:
        """A transaction began: journal it (fsynced) before anyone hears of it."""
        self.open = JournaledTx(session_id, tx, at)
        if self.last_wh is None or tx.meter_wh > self.last_wh:
            self.last_wh = tx.meter_wh
        self._save(durable=True)

    def finished_tx(self, tx: TransactionData, at: float) -> None:
        """A transaction ended: move it to the finished records (fsynced)."""
        o = self.open
        if o is not None and o.begin.transaction_id == tx.transaction_id:
            entry = JournaledTx(o.session_id, o.begin, o.started_at, tx, at)
            self.open = None
        elif any(e.begin.transaction_id == tx.transaction_id for e in self.finished):
            return  # already journaled
        else:  # its start left no trace here (a journal lost or from an older version)
            entry = JournaledTx("", tx, at, tx, at)
        self.finished.append(entry)
        del self.finished[: -self.keep]
        self.last_wh = max(self.last_wh or 0.0, tx.meter_wh)
        self._save(durable=True)

    def meter(self, energy_wh: float) -> None:
        """The register now reads `energy_wh`; saved once it moved `step_wh` on."""
        self.last_wh = energy_wh
        if self.open is None:
            return  # only a running transaction needs it
        if self._saved_wh is None or abs(energy_wh - self._saved_wh) >= self.step_wh:
            self._save(durable=False)

    # ------------------------------------------------------------ what it tells

    def interrupted(self) -> JournaledTx | None:
        """The transaction a previous process left open (call before the port runs one)."""
        return self.open

    def end_interrupted(self, end: TransactionData, at: float) -> None:
        """Record the end of the interrupted transaction (the caller chose the register)."""
        self.finished_tx(end, at)

    def replay(self) -> Iterator[tuple[float, SessionEvent]]:
        """Every journaled begin and end, oldest first, as the session events they were."""
        for e in [*self.finished, *([self.open] if self.open is not None else [])]:
            yield (
                e.started_at,
                SessionEvent(SessionEventType.TRANSACTION_STARTED, e.session_id, e.begin),
            )
            if e.end is not None:
                yield (
                    e.ended_at,
                    SessionEvent(SessionEventType.TRANSACTION_FINISHED, e.session_id, e.end),
                )

    # ------------------------------------------------------------ the file

    def _load(self) -> None:
        try:
            with self.path.open("rb") as f:
                raw = json.loads(f.read(_MAX_FILE))
            self.open = _entry_from_json(raw["open"]) if raw.get("open") else None
            self.finished = [_entry_from_json(e) for e in raw.get("finished", [])][-self.keep :]
            last = raw.get("last_wh")
            self.last_wh = None if last is None else float(last)
            self._saved_wh = self.last_wh
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("transaction journal %s unreadable (%s): starting empty", self.path, exc)
            self.open, self.finished, self.last_wh = None, [], None

    def _save(self, *, durable: bool) -> None:
        data = {
            "open": _entry_to_json(self.open) if self.open is not None else None,
            "finished": [_entry_to_json(e) for e in self.finished],
            "last_wh": self.last_wh,
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("w") as out:
                out.write(json.dumps(data))
                if durable:
                    out.flush()
                    os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:  # a full disk must not stop the charging; said once
            if not self._failing:
                log.warning("transaction journal not saved: %s", exc)
            self._failing = True
        else:
            self._failing = False
            self._saved_wh = self.last_wh
