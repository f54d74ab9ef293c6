"""The station-side state the OCPP session keeps: stores, per-connector facts, availability,
reservations and the typed config accessors (the non-network half of `client.OcppSession`).

Reservations (OCPP 1.6 section 5.13) live in `ReservationStore`, so they survive a restart:
the store is the truth, the ports are told to match it (at start, on ReserveNow /
CancelReservation, at expiry), and a port's own ReservationEnd is reconciled against the
port's status rather than trusted blindly (a replaced reservation ends and starts again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Mapping
from typing import Any, Protocol

from chargeport.clock import Clock
from chargeport.port import ChargePort, MeterValue, PortError, PortStatus
from main_node.ocpp.availability import AvailabilityStore
from main_node.ocpp.config_keys import ConfigStore
from main_node.ocpp.connection_timeout import PendingAuthorizations
from main_node.ocpp.connector_status import ConnectorStatus, ConnectorStatusTracker, StatusGate
from main_node.ocpp.db import StoreError, parse_datetime
from main_node.ocpp.meter_values import DEFAULT_MEASURANDS
from main_node.ocpp.reservations import (
    Reservation,
    ReservationStore,
    decide_cancel,
    decide_reserve_now,
    decide_start,
)
from main_node.ocpp.smart_charging import ProfileStore

__all__ = ["StationState"]

log = logging.getLogger(__name__)


class _ActiveTx(Protocol):
    local_tx: str
    started: float
    id_tag: str


class StationState:
    """Stores and per-connector facts shared by the session and the charge point handlers."""

    def __init__(
        self,
        ports: Mapping[int, ChargePort],
        conn: sqlite3.Connection,
        clock: Clock,
        config_defaults: Mapping[str, str] | None = None,
        *,
        boot_window_s: float = 30.0,
    ) -> None:
        self.ports = ports
        self.clock = clock
        self.conn = conn
        # Station config (TOML) supplies defaults; values the CSMS changed are persisted and win.
        self.config = ConfigStore(
            conn,
            {
                "MeterValuesSampledData": ",".join(DEFAULT_MEASURANDS),
                "MeterValuesAlignedData": ",".join(DEFAULT_MEASURANDS),
                "ReserveConnectorZeroSupported": "false",
                **(config_defaults or {}),
            },
            number_of_connectors=len(ports),
        )
        self.profiles = ProfileStore(
            conn,
            lambda cid: cid in self.active_tx,
            number_of_connectors=len(ports),
            max_current_a=max((p.info.max_current_a for p in ports.values()), default=32.0),
            transaction_of=self.ocpp_transaction_id,
        )
        self.availability = AvailabilityStore(conn, len(ports))
        self.trackers: dict[int, ConnectorStatusTracker] = {}
        self.active_tx: dict[int, Any] = {}  # connector -> client._Tx
        self.latest_meter: dict[int, MeterValue] = {}
        self.pending_tx_profile: dict[int, dict[str, Any]] = {}
        self.reservations = ReservationStore(conn)
        self.firmware_status = "Idle"
        self.diagnostics_status = "Idle"
        # When statuses go out (boot window, MinimumStatusDuration) and ConnectionTimeOut.
        self.status_gate = StatusGate(clock.time() + boot_window_s)
        self._status_wake = asyncio.Event()
        self.pending_auth = PendingAuthorizations()
        self._auth_wake = asyncio.Event()
        self._ping_wake = asyncio.Event()
        self.pongs = 0  # websocket pongs the CSMS returned (WebSocketPingInterval)

    def now(self) -> float:
        return self.clock.time()

    # ------------------------------------------------------------ config

    def config_str(self, key: str, default: str) -> str:
        try:
            return self.config.value(key)
        except Exception:  # an unknown key: the default stands
            return default

    def config_int(self, key: str, default: int) -> int:
        try:
            return int(self.config_str(key, str(default)))
        except ValueError:
            return default

    def config_bool(self, key: str, default: bool) -> bool:
        return self.config_str(key, "true" if default else "false") == "true"

    def _interval(self, key: str, default: int) -> float:
        """An interval key in seconds (the session shrinks it by its time scale)."""
        return float(self.config_int(key, default))

    def wake_for_key(self, key: str) -> None:
        """A ChangeConfiguration of `key` applies at once: wake the loop that reads it."""
        if key == "MinimumStatusDuration":
            self._status_wake.set()
        elif key == "ConnectionTimeOut":
            self._auth_wake.set()
        elif key == "WebSocketPingInterval":
            self._ping_wake.set()

    def pong_received(self) -> None:
        self.pongs += 1

    # ------------------------------------------------------------ transactions

    def transaction_start(self, connector_id: int) -> float | None:
        tx: _ActiveTx | None = self.active_tx.get(connector_id)
        return None if tx is None else tx.started

    def ocpp_transaction_id(self, connector_id: int) -> int | None:
        """The CSMS's transactionId of the transaction running on a connector, when known."""
        tx: _ActiveTx | None = self.active_tx.get(connector_id)
        return None if tx is None else self.journal_tx_id(tx.local_tx)

    def connector_of_transaction(self, transaction_id: int) -> int | None:
        for cid, tx in self.active_tx.items():
            if self.journal_tx_id(tx.local_tx) == transaction_id:
                return int(cid)
        return None

    def journal_tx_id(self, local_tx: str) -> int | None:
        raise NotImplementedError  # the session knows the journal

    def install_pending_tx_profile(self, cid: int) -> None:
        """A TxProfile that came with RemoteStartTransaction applies to the new transaction."""
        profile = self.pending_tx_profile.pop(cid, None)
        if profile is not None and self.profiles.set(cid, profile, self.now()) != "Accepted":
            log.warning("TxProfile from RemoteStartTransaction rejected on connector %d", cid)

    # ------------------------------------------------------------ availability (section 5.2)

    async def async_change_availability(self, connector_id: int, operative: bool) -> str:
        """ChangeAvailability: persisted; Scheduled while a transaction runs on a target."""
        kind = "Operative" if operative else "Inoperative"
        result = self.availability.request(connector_id, kind, set(self.active_tx))
        await self._apply({**result.apply, **result.changes})  # a repeat is applied again
        return result.status

    def operative(self, cid: int) -> bool:
        return self.availability.effective(cid) == "Operative"

    async def apply_persisted_availability(self, cid: int) -> None:
        """At start: a connector stored Inoperative is disabled again (persisted, section 5.2)."""
        if not self.operative(cid):
            await self._apply({cid: "Inoperative"})

    async def apply_scheduled_availability(self, cid: int) -> None:
        """A transaction ended: apply the change that was Scheduled for it."""
        busy = set(self.active_tx)
        await self._apply(self.availability.transaction_ended(cid, busy))

    async def _apply(self, changes: Mapping[int, str]) -> None:
        for cid, state in sorted(changes.items()):
            if cid == 0:
                self.status_changed(0)
                continue
            port = self.ports.get(cid)
            if port is None:
                continue
            try:
                if state == "Operative":
                    await port.enable()
                else:
                    await port.disable()
            except PortError as exc:
                log.warning("availability change on connector %d failed: %s", cid, exc)

    def status_changed(self, cid: int) -> None:
        raise NotImplementedError  # the session sends StatusNotification

    # ------------------------------------------------------------ when statuses go out (4.9)

    def status_held(self, cid: int) -> bool:
        """True while `cid`'s board has not linked yet within the boot window: say nothing."""
        tracker = self.trackers.get(cid)
        if tracker is None or not self.status_gate.booting(tracker.linked_once, self.now()):
            return False
        self.status_gate.hold(cid)
        self._status_wake.set()
        return True

    def status_moved(self, cid: int) -> None:
        """A port event changed `cid`'s status: send it once it has held (MinimumStatusDuration)."""
        if self.status_held(cid):
            return
        self.status_gate.min_duration_s = self._interval("MinimumStatusDuration", 0)
        if self.status_gate.changed(cid, self.status_of(cid), self.now()):
            self.status_changed(cid)
        self._status_wake.set()

    async def async_status_loop(self) -> None:
        """Send the statuses that have held long enough, and those the boot window released."""
        while True:
            self.status_gate.min_duration_s = self._interval("MinimumStatusDuration", 0)
            for cid in self.status_gate.due(self.now()):
                self.status_changed(cid)
            self._status_wake.clear()
            deadline = self.status_gate.next_deadline()
            await self._sleep_until(self._status_wake, deadline)

    async def _sleep_until(self, wake: asyncio.Event, deadline: float | None) -> None:
        """Wait for `wake` or the clock to reach `deadline` (None = only `wake`)."""
        wait = 3600.0 if deadline is None else (deadline - self.now()) / self.clock.speed
        if wait <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await wake.wait()

    # ------------------------------------------------------------ reservations (section 5.13)

    def status_of(self, connector_id: int) -> ConnectorStatus:
        raise NotImplementedError  # the session derives statuses

    def reservations_changed(self) -> None:
        """Hook: the earliest expiry may have moved (the session re-arms its timer)."""

    def _statuses(self) -> dict[int, str]:
        return {cid: self.status_of(cid).status for cid in [0, *sorted(self.ports)]}

    async def async_reserve_now(
        self,
        connector_id: int,
        expiry: str,
        id_tag: str,
        reservation_id: int,
        parent_id_tag: str | None,
    ) -> str:
        """ReserveNow: decide from the store, reserve the port, then persist (section 5.13)."""
        now = self.now()
        try:
            expiry_s = parse_datetime(expiry)
        except ValueError:
            return "Rejected"
        held = self.reservations.all()
        status = decide_reserve_now(
            connector_id, expiry_s, reservation_id, self._statuses(), held, now
        )
        if status != "Accepted":
            return status
        previous = next((r for r in held if r.reservation_id == reservation_id), None)
        if previous is not None:
            # A ReserveNow with a known reservationId replaces that reservation (section 5.13).
            await self._release(previous)
        try:
            await self.ports[connector_id].reserve(reservation_id, id_tag, expiry_s)
        except PortError as exc:
            log.warning("reservation on connector %d refused: %s", connector_id, exc)
            if previous is not None:
                self._forget(previous.reservation_id)
            return "Rejected"
        status = self.reservations.reserve_now(
            connector_id, expiry_s, id_tag, reservation_id, parent_id_tag, self._statuses(), now
        )
        if status != "Accepted":  # the statuses moved meanwhile: keep port and store alike
            await self._release(Reservation(reservation_id, connector_id, id_tag, None, expiry_s))
        self.reservations_changed()
        return status

    async def async_cancel_reservation(self, reservation_id: int) -> str:
        """CancelReservation (section 5.3): the store decides; the port is told to match."""
        held = self.reservations.all()
        status = decide_cancel(reservation_id, held, self.now())
        if status == "Accepted":
            await self._release(next(r for r in held if r.reservation_id == reservation_id))
            self._forget(reservation_id)
            self.reservations_changed()
        return status

    async def async_expire_reservations(self) -> list[Reservation]:
        """Drop reservations whose expiry passed; their ports end them (ReservationEnd)."""
        gone = self.reservations.expire(self.now())
        for reservation in gone:
            log.info("reservation %d expired", reservation.reservation_id)
            await self._release(reservation)
        return gone

    async def apply_persisted_reservations(self, cid: int, snapshot: PortStatus | None) -> None:
        """At start: a stored reservation the port does not hold is placed on it again."""
        if snapshot is None:
            return  # the port is unreachable; its reservation stays stored
        for r in self.reservations.active(self.now()):
            if r.connector_id != cid or snapshot.reservation_id == r.reservation_id:
                continue
            try:
                await self.ports[cid].reserve(r.reservation_id, r.id_tag, r.expiry)
            except PortError as exc:
                log.warning("stored reservation %d not restored: %s", r.reservation_id, exc)
                self._forget(r.reservation_id)

    async def async_reconcile_reservation(self, cid: int) -> None:
        """The port ended a reservation: forget those it no longer holds."""
        try:
            status = await self.ports[cid].status()
        except PortError:
            return
        for r in self.reservations.all():
            if r.connector_id == cid and r.reservation_id != status.reservation_id:
                self._forget(r.reservation_id)
        self.reservations_changed()

    def reservation_used(self, reservation_id: int | None) -> None:
        """A transaction started on a reservation: it is consumed (section 5.13)."""
        if reservation_id is not None:
            self._forget(reservation_id)
            self.reservations_changed()

    def reservation_check(
        self, cid: int, id_tag: str, parent_id_tag: str | None = None
    ) -> tuple[bool, int | None]:
        """May `id_tag` (child of `parent_id_tag`) start on `cid`, and the reservation it
        redeems (section 5.13). Without `parent_id_tag`, the parent the station knows locally
        (local list, cache) is used."""
        if parent_id_tag is None and self.reserved_for_a_parent(cid):
            parent_id_tag = self.local_parent_id_tag(id_tag)
        allowed, used = decide_start(
            cid, id_tag, parent_id_tag, self._statuses(), self.reservations.all(), self.now()
        )
        return allowed, None if used is None else used.reservation_id

    def local_parent_id_tag(self, id_tag: str) -> str | None:
        """The parentIdTag of `id_tag` as the local list or cache knows it (the session's)."""
        return None

    def reserved_for_a_parent(self, cid: int) -> bool:
        """A live reservation on `cid` or on the station names a parentIdTag (section 5.13)."""
        return any(
            r.parent_id_tag and r.connector_id in (0, cid)
            for r in self.reservations.active(self.now())
        )

    def reservation_for(self, cid: int, id_tag: str) -> int | None:
        """The reservation an id tag redeems on `cid`, if any."""
        return self.reservation_check(cid, id_tag)[1]

    def _forget(self, reservation_id: int) -> None:
        with contextlib.suppress(StoreError):
            self.reservations.remove(reservation_id)

    async def _release(self, reservation: Reservation) -> None:
        port = self.ports.get(reservation.connector_id)
        if port is None:
            return
        try:
            await port.cancel_reservation(reservation.reservation_id)
        except PortError as exc:
            # The port may have ended it already (its own expiry); the store decides.
            log.info("port kept no reservation %d: %s", reservation.reservation_id, exc)
