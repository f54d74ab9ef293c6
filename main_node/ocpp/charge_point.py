"""The OCPP 1.6J charge point: handlers for every CALL the CSMS may send.

Handlers answer from the stores and the ports and hand anything that needs a CALL of our own
(Authorize, triggered messages, status notifications) to the `Host` (the session in
`client.py`) as work that runs *after* the CALLRESULT is on the wire: awaiting `self.call()`
inside a handler would deadlock the receive loop. Every port is treated alike; the charge
point does not know which connectors are satellites. Framing and schema checks live in
`framing.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol

import websockets
from ocpp.charge_point import camel_to_snake_case, snake_to_camel_case
from ocpp.exceptions import InternalError, OCPPError
from ocpp.messages import Call
from ocpp.v16 import ChargePoint as _V16ChargePoint
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from chargeport.board import ResetKind
from chargeport.port import ChargePort, PortError, StopReason
from main_node.ocpp.connector_status import ConnectorStatus
from main_node.ocpp.framing import (
    FrameRejected,
    as_v16,
    decode_frame,
    on,
    response_for,
    unknown_action,
    validate_call,
)
from main_node.ocpp.meter_values import parse_iso_time
from system_aggregator.api import StationSystem

__all__ = ["TRIGGERABLE", "Host", "StationChargePoint"]

log = logging.getLogger(__name__)

TRIGGERABLE = {
    "BootNotification",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "MeterValues",
    "StatusNotification",
}


class Host(Protocol):
    """What the charge point needs from the session that owns it (see client.OcppSession)."""

    ports: Mapping[int, ChargePort]
    config: Any  # main_node.ocpp.config_keys.ConfigStore
    auth: Any  # main_node.ocpp.auth.AuthStore
    profiles: Any  # main_node.ocpp.smart_charging.ProfileStore
    system: StationSystem | None

    def now(self) -> float: ...

    def config_int(self, key: str, default: int) -> int: ...

    def config_bool(self, key: str, default: bool) -> bool: ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...

    def connector_of_transaction(self, transaction_id: int) -> int | None: ...

    def transaction_start(self, connector_id: int) -> float | None: ...

    def status_of(self, connector_id: int) -> ConnectorStatus: ...

    async def async_change_availability(self, connector_id: int, operative: bool) -> str: ...

    async def async_remote_start(
        self, connector_id: int, id_tag: str, profile: dict[str, Any] | None
    ) -> None: ...

    async def async_trigger(self, message: str, connector_id: int | None) -> None: ...

    async def async_reset(self, kind: ResetKind) -> None: ...

    async def async_firmware_status(self, status: str) -> None: ...

    async def async_diagnostics_status(self, status: str) -> None: ...

    async def async_reserve_now(
        self,
        connector_id: int,
        expiry: str,
        id_tag: str,
        reservation_id: int,
        parent_id_tag: str | None,
    ) -> str: ...

    async def async_cancel_reservation(self, reservation_id: int) -> str: ...

    def reservation_check(self, cid: int, id_tag: str) -> tuple[bool, int | None]: ...

    def limits_changed(self) -> None: ...

    def config_changed(self, key: str) -> None: ...


class _AfterReply:
    """Holds status callbacks until the CALLRESULT they follow is on the wire.

    GetDiagnostics.conf must precede the DiagnosticsStatusNotification it leads to, but the
    aggregator may report Uploading before it even returns the file name (section 5.9).
    """

    def __init__(self, forward: Callable[[str], Coroutine[Any, Any, None]]) -> None:
        self._forward = forward
        self._held: list[str] | None = []

    async def report(self, status: str) -> None:
        if self._held is not None:
            self._held.append(status)
        else:
            await self._forward(status)

    async def release(self) -> None:
        held, self._held = self._held or [], None
        for status in held:
            await self._forward(status)


class StationChargePoint(_V16ChargePoint):  # type: ignore[misc]
    """`ocpp.v16.ChargePoint` with the station's handlers; one instance per connection."""

    def __init__(self, cp_id: str, connection: Any, host: Host, response_timeout: float) -> None:
        super().__init__(cp_id, connection, response_timeout=response_timeout)
        self.host = host
        self._after_response: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._answered = False  # whether the CALL being handled has had its answer

    # -------------------------------------------------------------- framing

    async def route_message(self, raw_msg: str | bytes) -> None:
        """Like the package's, but guarded: one frame can fail only itself (crash-only).

        Every CALL gets exactly one answer: its CALLRESULT, the CALLERROR for what was wrong
        with it (1.6 codes, section 4.2.3), or InternalError when handling it failed.
        """
        try:
            msg = decode_frame(raw_msg)
        except FrameRejected as rejected:
            log.warning("CSMS frame refused (%s): %.120r", rejected, raw_msg)
            if rejected.reply is not None:
                await self._send(rejected.reply)
            return
        if not isinstance(msg, Call):
            self._response_queue.put_nowait(msg)
            return
        self._after_response.clear()
        self._answered = False
        try:
            if msg.action not in self.route_map:
                raise unknown_action(msg.action)
            validate_call(msg.action, msg.payload)
            await self._handle_call(msg)
            # Work that sends CALLs of its own runs only once the CALLRESULT has gone out.
            for make in self._after_response:
                self.host.spawn(make())
        except OCPPError as error:
            log.warning("CALL %.40s refused: %s", msg.action, error)
            if not self._answered:
                await self._send(msg.create_call_error(as_v16(error)).to_json())
        except websockets.ConnectionClosed:
            raise  # the connection is gone: the session reconnects
        except Exception:
            log.exception("CALL %.40s failed", msg.action)
            if not self._answered:
                failed = InternalError(details={"cause": "handling the CALL failed"})
                await self._send(msg.create_call_error(failed).to_json())
        finally:
            self._after_response.clear()

    async def _send(self, message: str) -> None:
        if message.startswith(("[3,", "[4,")):
            self._answered = True  # route_message is the only sender of answers
        await self._connection.send(message)

    async def _get_specific_response(self, unique_id: str, timeout: float) -> Any:  # noqa: ASYNC109
        # The package's signature; see `framing.response_for` for why it is replaced.
        return await response_for(self._response_queue, unique_id, timeout)

    def _later(self, make: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._after_response.append(make)

    def _port_ok(self, connector_id: int) -> bool:
        return connector_id in self.host.ports

    # -------------------------------------------------------------- Core

    @on(Action.change_availability, skip_schema_validation=True)
    async def on_change_availability(self, connector_id: int, type: str, **_: Any) -> Any:
        if connector_id != 0 and not self._port_ok(connector_id):
            return call_result.ChangeAvailability(status="Rejected")
        status = await self.host.async_change_availability(connector_id, type == "Operative")
        return call_result.ChangeAvailability(status=status)

    @on(Action.change_configuration, skip_schema_validation=True)
    def on_change_configuration(self, key: str, value: str, **_: Any) -> Any:
        status = self.host.config.change(key, value)
        if status == "Accepted":
            self.host.config_changed(key)
        return call_result.ChangeConfiguration(status=status)

    @on(Action.get_configuration, skip_schema_validation=True)
    def on_get_configuration(self, key: list[str] | None = None, **_: Any) -> Any:
        known, unknown = self.host.config.get(key or None)
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on(Action.clear_cache, skip_schema_validation=True)
    def on_clear_cache(self, **_: Any) -> Any:
        self.host.auth.cache_clear()
        return call_result.ClearCache(status="Accepted")

    @on(Action.data_transfer, skip_schema_validation=True)
    def on_data_transfer(self, vendor_id: str, **_: Any) -> Any:
        return call_result.DataTransfer(status="UnknownVendorId")

    @on(Action.remote_start_transaction, skip_schema_validation=True)
    def on_remote_start_transaction(
        self,
        id_tag: str,
        connector_id: int | None = None,
        charging_profile: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        cid = connector_id if connector_id is not None else self._free_connector()
        if cid is None or not self._port_ok(cid):
            return call_result.RemoteStartTransaction(status="Rejected")
        if self.host.status_of(cid).status not in ("Available", "Preparing", "Reserved"):
            return call_result.RemoteStartTransaction(status="Rejected")
        if not self.host.reservation_check(cid, id_tag)[0]:  # reserved for another (5.13)
            return call_result.RemoteStartTransaction(status="Rejected")
        # Only a TxProfile may come with a remote start (OCPP 1.6 section 5.11).
        if charging_profile and charging_profile.get("charging_profile_purpose") != "TxProfile":
            return call_result.RemoteStartTransaction(status="Rejected")
        profile = snake_to_camel_case(charging_profile) if charging_profile else None
        self._later(lambda: self.host.async_remote_start(cid, id_tag, profile))
        return call_result.RemoteStartTransaction(status="Accepted")

    def _free_connector(self) -> int | None:
        for cid in sorted(self.host.ports):
            if self.host.status_of(cid).status in ("Available", "Preparing"):
                return cid
        return None

    @on(Action.remote_stop_transaction, skip_schema_validation=True)
    async def on_remote_stop_transaction(self, transaction_id: int, **_: Any) -> Any:
        cid = self.host.connector_of_transaction(transaction_id)
        if cid is None:
            return call_result.RemoteStopTransaction(status="Rejected")
        try:
            await self.host.ports[cid].stop_transaction(StopReason.REMOTE)
        except PortError as exc:
            log.warning("remote stop on connector %d failed: %s", cid, exc)
            return call_result.RemoteStopTransaction(status="Rejected")
        return call_result.RemoteStopTransaction(status="Accepted")

    @on(Action.reset, skip_schema_validation=True)
    def on_reset(self, type: str, **_: Any) -> Any:
        if self.host.system is None:
            return call_result.Reset(status="Rejected")
        kind = ResetKind.HARD if type == "Hard" else ResetKind.SOFT
        self._later(lambda: self.host.async_reset(kind))
        return call_result.Reset(status="Accepted")

    @on(Action.unlock_connector, skip_schema_validation=True)
    async def on_unlock_connector(self, connector_id: int, **_: Any) -> Any:
        if not self._port_ok(connector_id):
            return call_result.UnlockConnector(status="NotSupported")
        port = self.host.ports[connector_id]
        try:
            if self.host.transaction_start(connector_id) is not None:
                await port.stop_transaction(StopReason.UNLOCK_COMMAND)  # section 5.18
            await port.force_unlock()
        except PortError as exc:
            log.warning("unlock of connector %d failed: %s", connector_id, exc)
            return call_result.UnlockConnector(status="UnlockFailed")
        return call_result.UnlockConnector(status="Unlocked")

    # -------------------------------------------------------------- Firmware management

    @on(Action.update_firmware, skip_schema_validation=True)
    def on_update_firmware(
        self,
        location: str,
        retrieve_date: str,
        retries: int | None = None,
        retry_interval: int | None = None,
        **_: Any,
    ) -> Any:
        system = self.host.system
        if system is not None:
            when = parse_iso_time(retrieve_date)

            async def run() -> None:
                await system.update_firmware(
                    location,
                    when,
                    retries or 0,
                    float(retry_interval or 0),
                    self.host.async_firmware_status,
                )

            self._later(run)
        return call_result.UpdateFirmware()

    @on(Action.get_diagnostics, skip_schema_validation=True)
    async def on_get_diagnostics(
        self,
        location: str,
        retries: int | None = None,
        retry_interval: int | None = None,
        start_time: str | None = None,
        stop_time: str | None = None,
        **_: Any,
    ) -> Any:
        if self.host.system is None:
            return call_result.GetDiagnostics()
        gate = _AfterReply(self.host.async_diagnostics_status)
        name = await self.host.system.get_diagnostics(
            location,
            parse_iso_time(start_time) if start_time else None,
            parse_iso_time(stop_time) if stop_time else None,
            retries or 0,
            float(retry_interval or 0),
            gate.report,
        )
        self._later(gate.release)
        return call_result.GetDiagnostics(file_name=name or None)

    # -------------------------------------------------------------- Remote trigger

    @on(Action.trigger_message, skip_schema_validation=True)
    def on_trigger_message(
        self, requested_message: str, connector_id: int | None = None, **_: Any
    ) -> Any:
        if requested_message not in TRIGGERABLE:
            return call_result.TriggerMessage(status="NotImplemented")
        if connector_id is not None and connector_id != 0 and not self._port_ok(connector_id):
            return call_result.TriggerMessage(status="Rejected")
        self._later(lambda: self.host.async_trigger(requested_message, connector_id))
        return call_result.TriggerMessage(status="Accepted")

    # -------------------------------------------------------------- Reservation

    @on(Action.reserve_now, skip_schema_validation=True)
    async def on_reserve_now(
        self,
        connector_id: int,
        expiry_date: str,
        id_tag: str,
        reservation_id: int,
        parent_id_tag: str | None = None,
        **_: Any,
    ) -> Any:
        status = await self.host.async_reserve_now(
            connector_id, expiry_date, id_tag, reservation_id, parent_id_tag
        )
        return call_result.ReserveNow(status=status)

    @on(Action.cancel_reservation, skip_schema_validation=True)
    async def on_cancel_reservation(self, reservation_id: int, **_: Any) -> Any:
        status = await self.host.async_cancel_reservation(reservation_id)
        return call_result.CancelReservation(status=status)

    # -------------------------------------------------------------- Local auth list

    @on(Action.get_local_list_version, skip_schema_validation=True)
    def on_get_local_list_version(self, **_: Any) -> Any:
        return call_result.GetLocalListVersion(list_version=self.host.auth.get_version())

    @on(Action.send_local_list, skip_schema_validation=True)
    def on_send_local_list(
        self,
        list_version: int,
        update_type: str,
        local_authorization_list: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> Any:
        status = self.host.auth.update(
            list_version,
            update_type,
            local_authorization_list or [],
            enabled=self.host.config_bool("LocalAuthListEnabled", True),
            max_update_length=self.host.config_int("SendLocalListMaxLength", 0) or None,
            max_list_length=self.host.config_int("LocalAuthListMaxLength", 0) or None,
        )
        return call_result.SendLocalList(status=status)

    # -------------------------------------------------------------- Smart charging

    @on(Action.set_charging_profile, skip_schema_validation=True)
    def on_set_charging_profile(
        self, connector_id: int, cs_charging_profiles: dict[str, Any], **_: Any
    ) -> Any:
        if connector_id != 0 and not self._port_ok(connector_id):
            return call_result.SetChargingProfile(status="Rejected")
        purpose = cs_charging_profiles.get("charging_profile_purpose")
        # A TxProfile needs a running transaction on its connector (OCPP 1.6 section 5.16.2).
        if purpose == "TxProfile" and (
            connector_id == 0 or self.host.transaction_start(connector_id) is None
        ):
            return call_result.SetChargingProfile(status="Rejected")
        if purpose == "ChargePointMaxProfile" and connector_id != 0:
            return call_result.SetChargingProfile(status="Rejected")
        profile = snake_to_camel_case(cs_charging_profiles)
        status = self.host.profiles.set(connector_id, profile, self.host.now())
        if status == "Accepted":
            self.host.limits_changed()
        return call_result.SetChargingProfile(status=status)

    @on(Action.clear_charging_profile, skip_schema_validation=True)
    def on_clear_charging_profile(
        self,
        id: int | None = None,
        connector_id: int | None = None,
        charging_profile_purpose: str | None = None,
        stack_level: int | None = None,
        **_: Any,
    ) -> Any:
        status = self.host.profiles.clear(id, connector_id, charging_profile_purpose, stack_level)
        if status == "Accepted":
            self.host.limits_changed()
        return call_result.ClearChargingProfile(status=status)

    @on(Action.get_composite_schedule, skip_schema_validation=True)
    def on_get_composite_schedule(
        self, connector_id: int, duration: int, charging_rate_unit: str | None = None, **_: Any
    ) -> Any:
        if connector_id != 0 and not self._port_ok(connector_id):
            return call_result.GetCompositeSchedule(status="Rejected")
        schedule = self.host.profiles.composite_schedule(
            connector_id,
            duration,
            self.host.now(),
            charging_rate_unit or "A",
            self.host.transaction_start(connector_id),
        )
        if schedule is None:
            return call_result.GetCompositeSchedule(status="Rejected")
        schedule = camel_to_snake_case(schedule)
        return call_result.GetCompositeSchedule(
            status="Accepted",
            connector_id=connector_id,
            schedule_start=schedule.pop("start_schedule", None),
            charging_schedule=schedule,
        )
