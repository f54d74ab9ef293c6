"""Transactions as OCPP 2.0.1 TransactionEvents (2.0.1 Part 2 section E), a pure core.

Theory of operation: one `EvseTx` per EVSE folds the port's session events into
TransactionEvent payloads (wire form, ready to journal). The transaction starts at the first
event named by TxStartPoint (E01: EVConnected = cable plugged in, Authorized = the port's
authorization, PowerPathClosed / EnergyTransfer = charging started) and ends at the first
named by TxStopPoint (E06); the port's own end of its transaction (a remote stop, a
deauthorisation, a reset) always ends it. The station generates the transactionId
(`new_id`, injected); `seqNo` counts the messages of the transaction from 0 (E01.FR.16 /
E07.FR.03 in spirit: the CSMS can see a gap). Time and ids are passed in; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from chargeport.port import MeterValue, SessionEventType, StopReason, TransactionData
from main_node.ocpp.db import format_datetime
from main_node.ocpp.meter_values import sampled_values

__all__ = ["EvseTx", "TxPoints", "TxRecord", "meter_value", "stopped_reason"]

Ev = SessionEventType

# The port events at which each TxStartPoint / TxStopPoint value holds (Part 2 E, table
# "TxStartPoint values"). EnergyTransfer ends when charging pauses or finishes.
_START_AT: dict[str, frozenset[Ev]] = {
    "EVConnected": frozenset({Ev.SESSION_STARTED}),
    "Authorized": frozenset({Ev.AUTHORIZED, Ev.TRANSACTION_STARTED}),
    "PowerPathClosed": frozenset({Ev.CHARGING_STARTED}),
    "EnergyTransfer": frozenset({Ev.CHARGING_STARTED, Ev.CHARGING_RESUMED}),
}
_STOP_AT: dict[str, frozenset[Ev]] = {
    "EVConnected": frozenset({Ev.SESSION_FINISHED}),
    "Authorized": frozenset({Ev.DEAUTHORIZED, Ev.TRANSACTION_FINISHED}),
    "PowerPathClosed": frozenset({Ev.CHARGING_FINISHED, Ev.TRANSACTION_FINISHED}),
    "EnergyTransfer": frozenset(
        {Ev.CHARGING_PAUSED_EV, Ev.CHARGING_PAUSED_EVSE, Ev.CHARGING_FINISHED}
    ),
}
# What each port event is, as a TriggerReason (2.0.1 Part 2 section 3.x TriggerReasonEnumType).
_TRIGGER: dict[Ev, str] = {
    Ev.SESSION_STARTED: "CablePluggedIn",
    Ev.AUTHORIZED: "Authorized",
    Ev.TRANSACTION_STARTED: "Authorized",
    Ev.CHARGING_STARTED: "ChargingStateChanged",
    Ev.CHARGING_RESUMED: "ChargingStateChanged",
    Ev.CHARGING_PAUSED_EV: "ChargingStateChanged",
    Ev.CHARGING_PAUSED_EVSE: "ChargingStateChanged",
    Ev.CHARGING_FINISHED: "ChargingStateChanged",
    Ev.STOPPING_CHARGING: "ChargingStateChanged",
    Ev.DEAUTHORIZED: "Deauthorized",
    Ev.TRANSACTION_FINISHED: "StopAuthorized",
    Ev.SESSION_FINISHED: "EVCommunicationLost",
}
_CHARGING_STATE: dict[Ev, str] = {
    Ev.SESSION_STARTED: "EVConnected",
    Ev.TRANSACTION_STARTED: "EVConnected",
    Ev.CHARGING_STARTED: "Charging",
    Ev.CHARGING_RESUMED: "Charging",
    Ev.CHARGING_PAUSED_EV: "SuspendedEV",
    Ev.CHARGING_PAUSED_EVSE: "SuspendedEVSE",
    Ev.CHARGING_FINISHED: "EVConnected",
    Ev.SESSION_FINISHED: "Idle",
}
# StopReason (the port's, 1.6 values) -> ReasonEnumType (2.0.1).
_REASON = {
    StopReason.LOCAL: "Local",
    StopReason.REMOTE: "Remote",
    StopReason.EV_DISCONNECTED: "EVDisconnected",
    StopReason.HARD_RESET: "ImmediateReset",
    StopReason.SOFT_RESET: "Reboot",
    StopReason.POWER_LOSS: "PowerLoss",
    StopReason.REBOOT: "Reboot",
    StopReason.EMERGENCY_STOP: "EmergencyStop",
    StopReason.DE_AUTHORIZED: "DeAuthorized",
    StopReason.UNLOCK_COMMAND: "Other",
    StopReason.OTHER: "Other",
}
_STOP_TRIGGER = {
    StopReason.REMOTE: "RemoteStop",
    StopReason.EV_DISCONNECTED: "EVCommunicationLost",
    StopReason.HARD_RESET: "ResetCommand",
    StopReason.SOFT_RESET: "ResetCommand",
    StopReason.DE_AUTHORIZED: "Deauthorized",
    StopReason.UNLOCK_COMMAND: "UnlockCommand",
    StopReason.POWER_LOSS: "AbnormalCondition",
    StopReason.EMERGENCY_STOP: "AbnormalCondition",
}


def stopped_reason(reason: StopReason | None) -> str:
    return _REASON.get(reason, "Other") if reason is not None else "Local"


@dataclass(frozen=True)
class TxPoints:
    """TxStartPoint and TxStopPoint (TxCtrlr), as configured."""

    start: frozenset[str] = frozenset({"PowerPathClosed"})
    stop: frozenset[str] = frozenset({"EVConnected", "Authorized"})

    def starts(self, kind: Ev) -> bool:
        return any(kind in _START_AT.get(p, frozenset()) for p in self.start)

    def stops(self, kind: Ev) -> bool:
        if kind is Ev.TRANSACTION_FINISHED:
            return True  # the port ended its transaction: nothing is authorized any more
        return any(kind in _STOP_AT.get(p, frozenset()) for p in self.stop)


def _sampled(mv: MeterValue, context: str, measurands: Iterable[str]) -> list[dict[str, Any]]:
    """1.6-style sampled values (shared builder) in 2.0.1 form: numbers, unitOfMeasure."""
    out = []
    for sv in sampled_values(mv, context, measurands):
        item: dict[str, Any] = {"value": float(sv["value"]), "context": sv["context"]}
        item["measurand"] = sv["measurand"]
        if "phase" in sv:
            item["phase"] = sv["phase"]
        if "location" in sv:
            item["location"] = sv["location"]
        if "unit" in sv:
            item["unitOfMeasure"] = {"unit": "Celsius" if sv["unit"] == "Celsius" else sv["unit"]}
        out.append(item)
    return out


def meter_value(
    ts: float, mv: MeterValue, context: str, measurands: Iterable[str]
) -> dict[str, Any] | None:
    """One MeterValueType (2.0.1 section 2.x), or None when no measurand gives a value."""
    values = _sampled(mv, context, measurands)
    return {"timestamp": format_datetime(ts), "sampledValue": values} if values else None


@dataclass
class TxRecord:
    """The transaction open on an EVSE (persisted by the session)."""

    tx_id: str
    seq: int = 0
    started: float = 0.0
    id_token: dict[str, Any] | None = None
    token_sent: bool = False
    remote_start_id: int | None = None
    port_tx: str | None = None
    charging_state: str = "EVConnected"


@dataclass
class EvseTx:
    """One EVSE's transaction state; `on_event` returns the TransactionEvents to journal."""

    evse_id: int
    new_id: Callable[[], str]
    tx: TxRecord | None = None
    pending_token: dict[str, Any] | None = None  # authorized before the transaction started
    pending_remote: int | None = None  # remoteStartId of a RequestStartTransaction (F01)
    pending_reservation: int | None = None  # the reservation the authorization used (H03)
    ended: list[TxRecord] = field(default_factory=list)

    def _event(
        self,
        kind: str,
        trigger: str,
        now: float,
        offline: bool,
        meter: dict[str, Any] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        assert self.tx is not None
        info: dict[str, Any] = {"transactionId": self.tx.tx_id}
        info["chargingState"] = self.tx.charging_state
        if self.tx.remote_start_id is not None and kind == "Started":
            info["remoteStartId"] = self.tx.remote_start_id
        if "stoppedReason" in extra:
            info["stoppedReason"] = extra.pop("stoppedReason")
        payload: dict[str, Any] = {
            "eventType": kind,
            "timestamp": format_datetime(now),
            "triggerReason": trigger,
            "seqNo": self.tx.seq,
            "transactionInfo": info,
            "evse": {"id": self.evse_id, "connectorId": 1},
        }
        if offline:
            payload["offline"] = True
        if self.tx.id_token is not None and not self.tx.token_sent:
            payload["idToken"] = self.tx.id_token
            self.tx.token_sent = True
        if meter is not None:
            payload["meterValue"] = [meter]
        payload.update(extra)
        self.tx.seq += 1
        return payload

    def authorize(self, id_token: dict[str, Any], remote_start_id: int | None = None) -> None:
        """An IdToken the station accepted for this EVSE (Authorize, local list, remote start)."""
        self.pending_token = id_token
        self.pending_remote = remote_start_id

    def on_event(
        self,
        kind: Ev,
        data: TransactionData | None,
        points: TxPoints,
        now: float,
        offline: bool,
        begin: dict[str, Any] | None = None,
        end: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Fold one port session event in; `begin` / `end` are the meter values to attach."""
        out: list[dict[str, Any]] = []
        if data is not None and data.id_tag and self.pending_token is None:
            self.pending_token = {"idToken": data.id_tag, "type": "ISO14443"}
        if (
            data is not None
            and data.reservation_id is not None
            and kind is not Ev.TRANSACTION_FINISHED
        ):
            self.pending_reservation = data.reservation_id
        trigger = _TRIGGER.get(kind)
        if self.tx is None:
            if kind in (Ev.SESSION_FINISHED, Ev.DEAUTHORIZED):
                self.pending_token = None  # the authorization ended without a transaction
                self.pending_remote = None
                self.pending_reservation = None
                return out
            if trigger is None or not points.starts(kind):
                return out
            self.tx = TxRecord(self.new_id(), started=now)
            self.tx.remote_start_id = self.pending_remote
            if self.pending_remote is not None:
                trigger = "RemoteStart"
            self.tx.charging_state = _CHARGING_STATE.get(kind, "EVConnected")
            self._take_token(data)
            out.append(self._event("Started", trigger, now, offline, begin, **self._reserved()))
            return out
        if data is not None and self.tx.port_tx is None and kind is Ev.TRANSACTION_STARTED:
            self.tx.port_tx = data.transaction_id
        if points.stops(kind):
            reason = data.stop_reason if data is not None else None
            if kind is Ev.SESSION_FINISHED:
                reason = StopReason.EV_DISCONNECTED
            stop_trigger = _STOP_TRIGGER.get(reason, trigger) if reason else trigger
            self.tx.charging_state = _CHARGING_STATE.get(kind, self.tx.charging_state)
            if kind is Ev.TRANSACTION_FINISHED:
                self.tx.charging_state = "EVConnected"
            out.append(
                self._event(
                    "Ended",
                    stop_trigger or "StopAuthorized",
                    now,
                    offline,
                    end,
                    stoppedReason=stopped_reason(reason),
                )
            )
            self.ended.append(self.tx)
            self.tx = None
            self.pending_token = None
            self.pending_remote = None
            self.pending_reservation = None
            return out
        state = _CHARGING_STATE.get(kind)
        token_new = self.tx.id_token is None and self.pending_token is not None
        self._take_token(data)
        if state is not None and state != self.tx.charging_state:
            self.tx.charging_state = state
            out.append(self._event("Updated", trigger or "ChargingStateChanged", now, offline))
        elif token_new:
            out.append(self._event("Updated", "Authorized", now, offline, **self._reserved()))
        return out

    def _reserved(self) -> dict[str, Any]:
        """reservationId for the event that first knows it (H03), once."""
        if self.pending_reservation is None:
            return {}
        reservation, self.pending_reservation = self.pending_reservation, None
        return {"reservationId": reservation}

    def _take_token(self, data: TransactionData | None) -> None:
        assert self.tx is not None
        if self.tx.id_token is None and self.pending_token is not None:
            self.tx.id_token = self.pending_token
        if data is not None and data.transaction_id and self.tx.port_tx is None:
            self.tx.port_tx = data.transaction_id

    def updated(
        self, trigger: str, now: float, offline: bool, meter: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """An Updated event (periodic / clock-aligned meter values, TriggerMessage)."""
        if self.tx is None:
            return None
        return self._event("Updated", trigger, now, offline, meter)

    def end_lost(
        self, now: float, offline: bool, end: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """The board restarted and took the transaction with it: Ended, PowerLoss."""
        if self.tx is None:
            return None
        payload = self._event(
            "Ended", "AbnormalCondition", now, offline, end, stoppedReason="PowerLoss"
        )
        self.ended.append(self.tx)
        self.tx = None
        self.pending_token = self.pending_reservation = self.pending_remote = None
        return payload

    def restore(self, record: TxRecord) -> None:
        self.tx = replace(record)
