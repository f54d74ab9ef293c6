"""The station-side state the OCPP session keeps: stores, per-connector facts, availability,
reservations and the typed config accessors (the non-network half of `client.OcppSession`).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from typing import Any, Protocol

from chargeport.clock import Clock
from chargeport.port import ChargePort, MeterValue, PortError
from main_node.ocpp.availability import AvailabilityStore
from main_node.ocpp.config_keys import ConfigStore
from main_node.ocpp.connector_status import ConnectorStatusTracker
from main_node.ocpp.meter_values import DEFAULT_MEASURANDS
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
        self, ports: Mapping[int, ChargePort], conn: sqlite3.Connection, clock: Clock
    ) -> None:
        self.ports = ports
        self.clock = clock
        self.config = ConfigStore(
            conn,
            {
                "MeterValuesSampledData": ",".join(DEFAULT_MEASURANDS),
                "MeterValuesAlignedData": ",".join(DEFAULT_MEASURANDS),
                "ReserveConnectorZeroSupported": "false",
            },
            number_of_connectors=len(ports),
        )
        self.profiles = ProfileStore(
            conn,
            lambda cid: cid in self.active_tx,
            number_of_connectors=len(ports),
            max_current_a=max((p.info.max_current_a for p in ports.values()), default=32.0),
        )
        self.availability = AvailabilityStore(conn, len(ports))
        self.trackers: dict[int, ConnectorStatusTracker] = {}
        self.active_tx: dict[int, Any] = {}  # connector -> client._Tx
        self.latest_meter: dict[int, MeterValue] = {}
        self.pending_tx_profile: dict[int, dict[str, Any]] = {}
        self.reservations: dict[int, tuple[int, str]] = {}  # id -> (connector, id tag)
        self.firmware_status = "Idle"
        self.diagnostics_status = "Idle"

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

    # ------------------------------------------------------------ transactions

    def transaction_start(self, connector_id: int) -> float | None:
        tx: _ActiveTx | None = self.active_tx.get(connector_id)
        return None if tx is None else tx.started

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
        await self._apply(result.changes)
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

    # ------------------------------------------------------------ reservations (section 5.13)

    def reserve(self, reservation_id: int, connector_id: int, id_tag: str = "") -> None:
        self.reservations[reservation_id] = (connector_id, id_tag)

    def reservation_connector(self, reservation_id: int) -> int | None:
        entry = self.reservations.get(reservation_id)
        return None if entry is None else entry[0]

    def reservation_for(self, cid: int, id_tag: str) -> int | None:
        """The reservation an id tag redeems on `cid`, if any."""
        for rid, (connector, tag) in self.reservations.items():
            if connector == cid and tag.casefold() == id_tag.casefold():
                return rid
        return None
