"""Transactions as the CSMS sees them: Start/Stop/MeterValues journaled before sending
(OCPP 1.6 section 4.10), and the readings StopTransaction.req carries as transactionData
(section 6.49, keys 9.1.25 / 9.1.27: Transaction.Begin, periodic / clock-aligned samples,
Transaction.End).

`SessionTransactions` is a mixin of `client.OcppSession`; the hooks it declares are the
session's.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from ocpp.v16 import call

from chargeport.port import MeterValue, SessionEvent, StopReason
from chargeport.port import SessionEventType as Ev
from main_node.ocpp.db import transaction
from main_node.ocpp.journal import TransactionJournal, WriteBacklog
from main_node.ocpp.meter_values import (
    DEFAULT_MEASURANDS,
    MeterTimer,
    iso_time,
    meter_value_entry,
    meter_values_payload,
    signed_entry,
)
from main_node.ocpp.session_auth import SessionAuth
from main_node.ocpp.tx_data import TxDataStore

__all__ = ["SessionTransactions", "Tx"]


@dataclass
class Tx:
    """A running transaction: the port's id for it, when it started, who started it."""

    local_tx: str
    started: float
    id_tag: str


class SessionTransactions(SessionAuth):
    """Folds session events into journaled transaction messages and meter values."""

    journal: TransactionJournal
    backlog: WriteBacklog  # journal writes run through it: kept in memory when they fail
    tx_data: TxDataStore
    tx_ended: asyncio.Event
    _timer: MeterTimer
    _wake: asyncio.Event
    _meter_wake: asyncio.Event

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        raise NotImplementedError  # the session owns the task group

    def _post(self, payload: Any) -> None:
        raise NotImplementedError  # the session queues live CALLs

    def limits_changed(self) -> None:
        raise NotImplementedError  # the session pushes limits

    def _on_session(self, cid: int, ev: SessionEvent, ts: float) -> None:
        tx = ev.transaction
        if ev.type is Ev.TRANSACTION_STARTED and tx is not None:
            if self.journal.stopped(tx.transaction_id):
                return  # a satellite replaying a transaction that has ended here (4.10)
            if not self.journal.started(tx.transaction_id):
                payload: dict[str, Any] = {
                    "connector_id": cid,
                    "id_tag": tx.id_tag,
                    "meter_start": round(tx.meter_wh),
                    "timestamp": iso_time(ts),
                }
                if tx.reservation_id is not None:
                    payload["reservation_id"] = tx.reservation_id
                local_tx, meter_wh = tx.transaction_id, tx.meter_wh
                signed = self._signed(tx.signed_meter)

                def start() -> None:
                    if self.journal.started(local_tx):
                        return  # journaled meanwhile (a replay while this waited)
                    with transaction(self.conn):
                        self.journal.enqueue("StartTransaction", payload, cid, local_tx)
                        self._keep_reading(cid, local_tx, ts, "Transaction.Begin", meter_wh)
                        self._keep_signed(cid, local_tx, ts, "Transaction.Begin", signed)

                self.backlog.run(f"StartTransaction on connector {cid}", start)
                self.reservation_used(tx.reservation_id)
            # else: a restarted main hears a running transaction again (its satellite replays
            # it): the CSMS already has its StartTransaction, the transaction simply goes on.
            self.active_tx[cid] = Tx(tx.transaction_id, ts, tx.id_tag)
            self._timer.start(cid, self.now())
            self.install_pending_tx_profile(cid)
            self._wake.set()
            self._meter_wake.set()
            self.limits_changed()
        elif ev.type is Ev.TRANSACTION_FINISHED and tx is not None:
            if self.journal.stopped(tx.transaction_id):
                # Replayed after a main restart: stopped once already (4.10).
                if (running := self.active_tx.get(cid)) and running.local_tx == tx.transaction_id:
                    self.active_tx.pop(cid, None)
                    self._timer.stop(cid)
                return
            local_tx, meter_wh = tx.transaction_id, tx.meter_wh
            reason, id_tag = tx.stop_reason, tx.id_tag
            signed = self._signed(tx.signed_meter)

            def stop() -> None:
                if not self.journal.stopped(local_tx):
                    self._journal_stop(cid, local_tx, meter_wh, ts, reason, id_tag, signed)

            self.backlog.run(f"StopTransaction on connector {cid}", stop)
            self.active_tx.pop(cid, None)
            self.tx_ended.set()
            self.profiles.transaction_ended(cid)
            self._timer.stop(cid)
            self._wake.set()
            self.limits_changed()
            self.spawn(self.apply_scheduled_availability(cid))
        elif ev.type is Ev.RESERVATION_END:
            self.spawn(self.async_reconcile_reservation(cid))
        elif ev.type is Ev.AUTH_REQUIRED and tx is not None and tx.id_tag:
            # A locally presented id tag (RFID swipe) comes as AuthRequired with its tag.
            self.spawn(self.async_local_authorize(cid, tx.id_tag))

    def close_lost_transactions(
        self, cid: int, running: str | None, register_wh: float | None = None
    ) -> None:
        """At start: end the transactions journaled open on `cid` that its port no longer runs.

        The main's own port died with the previous process, so nobody else will report their
        end: StopTransaction with reason PowerLoss (OCPP 1.6 section 6.49 Reason). It carries
        the port's meter register at restart when the board kept it (the billing truth), else
        the last reading journaled for the transaction; never less than the journaled one.
        """
        for lost in self.journal.open_transactions(cid):
            if lost.local_tx == running:
                continue
            meter_wh = max(lost.meter_wh, register_wh or 0.0)
            self._journal_stop(
                cid, lost.local_tx, meter_wh, self.now(), StopReason.POWER_LOSS, lost.id_tag
            )
            self.tx_ended.set()
            self._wake.set()

    def _journal_stop(
        self,
        cid: int,
        local_tx: str,
        meter_wh: float,
        ts: float,
        reason: StopReason | None,
        id_tag: str,
        signed: str = "",
    ) -> None:
        """Journal StopTransaction with its transactionData, in one commit (sections 4.10, 6.49);
        `signed` (the board's OCMF end record) goes before it in a MeterValues and with it."""
        stop: dict[str, Any] = {
            "meter_stop": round(meter_wh),
            "timestamp": iso_time(ts),
            "reason": reason.value if reason else "Local",
            "id_tag": id_tag or None,
            "transaction_id": 0,  # the journal substitutes the CSMS id (section 4.10)
        }
        with transaction(self.conn):
            self._keep_reading(cid, local_tx, ts, "Transaction.End", meter_wh)
            self._keep_signed(cid, local_tx, ts, "Transaction.End", signed)
            readings = self.tx_data.take(local_tx)
            if readings:
                stop["transaction_data"] = readings
            self.journal.enqueue("StopTransaction", stop, cid, local_tx)

    def _keep_reading(
        self,
        cid: int,
        local_tx: str,
        ts: float,
        context: str,
        meter_wh: float | None = None,
        reading: MeterValue | None = None,
    ) -> None:
        """Keep a reading for StopTransaction.req transactionData (keys 9.1.25 / 9.1.27)."""
        key = "StopTxnAlignedData" if context == "Sample.Clock" else "StopTxnSampledData"
        measurands = self._measurands(key, "")
        if not measurands:
            return
        mv = (
            reading
            or self.latest_meter.get(cid)
            or MeterValue(energy_wh=meter_wh or 0.0, power_w=0.0)
        )
        if meter_wh is not None:
            # Begin / End carry the register the transaction itself started / stopped at.
            mv = dataclasses.replace(mv, energy_wh=meter_wh)
        self.tx_data.add(local_tx, meter_value_entry(ts, mv, context, measurands))

    def _signed(self, record: str) -> str:
        """The board's OCMF record when SampledDataSignReadings lets it go to the CSMS."""
        return record if record and self.config_bool("SampledDataSignReadings", True) else ""

    def _keep_signed(self, cid: int, local_tx: str, ts: float, context: str, record: str) -> None:
        """A signed record in a journaled MeterValues and in StopTransaction's transactionData
        (caller holds the database transaction); nothing when there is none."""
        if not record:
            return
        entry = signed_entry(ts, record, context)
        self.journal.enqueue("MeterValues", meter_values_payload(cid, [entry]), cid, local_tx)
        self.tx_data.add(local_tx, entry)

    def _measurands(self, key: str, default: str = ",".join(DEFAULT_MEASURANDS)) -> list[str]:
        raw = self.config_str(key, default)
        return [m.strip() for m in raw.split(",") if m.strip()]

    def send_meter_values(self, cid: int, context: str) -> None:
        """One MeterValues.req for `cid`: journaled inside a transaction, live otherwise."""
        mv = self.latest_meter.get(cid)
        if mv is None:
            return
        key = "MeterValuesAlignedData" if context == "Sample.Clock" else "MeterValuesSampledData"
        entry = meter_value_entry(self.now(), mv, context, self._measurands(key))
        tx = self.active_tx.get(cid)
        if tx is not None and context != "Trigger":
            local_tx, now = tx.local_tx, self.now()

            def journal() -> None:
                with transaction(self.conn):
                    self.journal.enqueue(
                        "MeterValues", meter_values_payload(cid, [entry]), cid, local_tx
                    )
                    # What a restarted main closes this transaction with if its port died too.
                    self.journal.note_meter(local_tx, mv.energy_wh)
                    self._keep_reading(cid, local_tx, now, context, reading=mv)

            self.backlog.run(f"MeterValues of connector {cid}", journal)
            self._wake.set()
            return
        tx_id = self.journal.transaction_id(tx.local_tx) if tx is not None else None
        self._post(call.MeterValues(**meter_values_payload(cid, [entry], tx_id)))
