"""What the main knows is open on a remote port, so it can close it when the satellite cannot.

Theory of operation (pure and synchronous; RemotePort feeds it and publishes what it returns):
  * `accept(body)` records every event the satellite sent (session, transaction, last meter
    value, active errors) and says whether to pass it on. A TransactionFinished or
    SessionFinished the main already synthesised is dropped: OCPP sees exactly one
    StopTransaction per transaction (OCPP 1.6 4.10) however the link behaved; so is a replayed
    start of a session or transaction the main closed (it stays closed).
  * `close_open(reason)` synthesises TransactionFinished (with the last meter value seen) and
    SessionFinished for whatever is open, and remembers their ids for the dedupe above.
  * `state_events(status)` restates a port's state (a snapshot for a main new to the board).
  * `reconcile(status, gap)` compares the main's view with a fresh status snapshot after a
    replay gap (or after closing things itself) and returns the events that make the consumers
    consistent again, plus the transaction the satellite must still be told to stop.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass

from chargeport.port import (
    CpStateChanged,
    ErrorCode,
    MeterValue,
    PortDisabledChanged,
    PortErrorEvent,
    PortEventBody,
    PortStatus,
    SessionEvent,
    SessionEventType,
    StopReason,
    TransactionData,
)

__all__ = ["Ledger", "Reconciliation"]

_REMEMBER = 64  # closed ids kept for dedupe; a replay never reaches further back than this


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What to publish, and which transaction the satellite still runs though it is closed."""

    events: list[PortEventBody]
    stop_transaction: str | None = None


class _Recent:
    """A bounded set of ids, oldest dropped first."""

    def __init__(self) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, key: str) -> None:
        self._ids[key] = None
        while len(self._ids) > _REMEMBER:
            self._ids.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self._ids


class Ledger:
    """The open session, open transaction, last meter value and active errors of one port."""

    def __init__(self) -> None:
        self.session_id: str | None = None
        self.transaction: TransactionData | None = None
        self.energy_wh: float | None = None
        self.errors: dict[ErrorCode, PortErrorEvent] = {}
        self._closed_tx = _Recent()
        self._closed_sessions = _Recent()

    @property
    def has_open(self) -> bool:
        return self.session_id is not None or self.transaction is not None

    def was_closed(self, transaction_id: str) -> bool:
        """True when the main synthesised this transaction's end."""
        return transaction_id in self._closed_tx

    def session_was_closed(self, session_id: str) -> bool:
        """True when the main synthesised this session's end."""
        return session_id in self._closed_sessions

    def accept(self, body: PortEventBody) -> bool:
        """Record one event from the satellite; False when it repeats a synthesised end."""
        if isinstance(body, MeterValue):
            self.energy_wh = body.energy_wh
        elif isinstance(body, PortErrorEvent):
            if body.active:
                self.errors[body.code] = body
            else:
                self.errors.pop(body.code, None)
        elif isinstance(body, SessionEvent):
            return self._accept_session(body)
        return True

    def _accept_session(self, body: SessionEvent) -> bool:
        kind, tx = body.type, body.transaction
        if kind is SessionEventType.SESSION_STARTED:
            if body.session_id in self._closed_sessions:
                return False  # replayed after the main closed it: it stays closed
            self.session_id = body.session_id
        elif kind is SessionEventType.TRANSACTION_STARTED and tx is not None:
            if tx.transaction_id in self._closed_tx:
                return False
            self.transaction = tx
            if self.energy_wh is None:
                self.energy_wh = tx.meter_wh
        elif kind is SessionEventType.TRANSACTION_FINISHED:
            if tx is not None and tx.transaction_id in self._closed_tx:
                return False
            self.transaction = None
        elif kind is SessionEventType.SESSION_FINISHED:
            if body.session_id in self._closed_sessions:
                return False
            self.session_id = None
            self.transaction = None
        return True

    def close_open(self, reason: StopReason) -> list[PortEventBody]:
        """End what is open, with the last meter value seen; returns the events to publish."""
        return self.close_transaction(reason) + self.close_session()

    def close_transaction(self, reason: StopReason) -> list[PortEventBody]:
        """TransactionFinished for the open transaction (if any), with the last meter value."""
        tx, self.transaction = self.transaction, None
        if tx is None:
            return []
        self._closed_tx.add(tx.transaction_id)
        energy = tx.meter_wh if self.energy_wh is None else self.energy_wh
        done = dataclasses.replace(tx, meter_wh=energy, stop_reason=reason)
        return [SessionEvent(SessionEventType.TRANSACTION_FINISHED, self.session_id or "", done)]

    def close_session(self) -> list[PortEventBody]:
        """SessionFinished for the open session (if any)."""
        sid, self.session_id = self.session_id, None
        if sid is None:
            return []
        self._closed_sessions.add(sid)
        return [SessionEvent(SessionEventType.SESSION_FINISHED, sid)]

    def forget_meter(self) -> None:
        """A new satellite boot: its meter readings start afresh."""
        self.energy_wh = None

    def reconcile(self, status: PortStatus, gap: str | None) -> Reconciliation:
        """Make the consumers agree with `status`; `gap` describes lost events (None: none)."""
        out: list[PortEventBody] = []
        if gap is not None:
            # Visible in the dashboard's fault log and as an OCPP StatusNotification info, then
            # cleared at once: a lost event is a link fact, not a port fault.
            note = f"link: {gap}; state re-read from the satellite"
            out += [
                PortErrorEvent(ErrorCode.OTHER_ERROR, note, True),
                PortErrorEvent(ErrorCode.OTHER_ERROR, note, False),
            ]
            self.errors.pop(ErrorCode.OTHER_ERROR, None)
        # The satellite ended these while we were not listening; its own events are lost, so
        # the real reason is unknown: OCPP 1.6 Reason "Other".
        if self.transaction is not None and self.transaction.transaction_id != (
            status.transaction_id
        ):
            out += self.close_transaction(StopReason.OTHER)
        if self.session_id is not None and self.session_id != status.session_id:
            out += self.close_session()
        if status.meter is not None:  # after closing: a finish carries what the main saw
            self.energy_wh = status.meter.energy_wh
        if gap is not None:
            out += self.state_events(status)
        stop = status.transaction_id
        return Reconciliation(out, stop if stop is not None and self.was_closed(stop) else None)

    def state_events(self, status: PortStatus) -> list[PortEventBody]:
        """Restate `status`: CP state, availability, limits, meter, and the faults that changed."""
        out: list[PortEventBody] = [
            CpStateChanged(status.cp_state),
            PortDisabledChanged(status.enabled),
        ]
        if status.limits is not None:
            out.append(status.limits)
        if status.meter is not None:
            out.append(status.meter)
        now_active = {e.code: e for e in status.errors if e.active}
        for code, err in list(self.errors.items()):
            if code not in now_active:
                out.append(dataclasses.replace(err, active=False))
        out += [e for c, e in now_active.items() if c not in self.errors]
        self.errors = now_active
        return out
