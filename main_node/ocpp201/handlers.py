"""Handlers for every CALL an OCPP 2.0.1 CSMS may send that the station serves.

Each handler takes the package's typed request (`ocpp.v201.call.*`, nested values as
snake_case dicts) and returns the typed CALLRESULT, or an `Answer` with the work that sends
CALLs of our own once the CALLRESULT is on the wire (NotifyReport after GetBaseReport,
a triggered message, ...). EVSE n is port n; every port is alike, local or satellite.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ocpp.v201 import call, call_result

from chargeport.board import ResetKind
from chargeport.port import PortError, StopReason
from chargeport.security_log import security_event
from main_node.ocpp.db import format_datetime, parse_datetime, to_wire
from main_node.ocpp.reservations import decide_cancel
from main_node.ocpp201.authorization import as_v16_info
from main_node.ocpp201.device_model import VarKey
from main_node.ocpp201.profiles import PURPOSE_16 as _PURPOSE
from main_node.ocpp201.rpc import Answer, Handler

if TYPE_CHECKING:
    from main_node.ocpp201.session import Session201

__all__ = ["handlers"]

log = logging.getLogger(__name__)

_REPORT_CHUNK = 20  # ReportData per NotifyReport (DeviceDataCtrlr.ItemsPerMessage[GetReport])


def _v201_profile(stored: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """A stored engine profile back to (evseId, ChargingProfileType)."""
    evse = int(stored.pop("connectorId"))
    original = stored.get("original201")
    if isinstance(original, dict):
        return evse, original
    purpose = stored["chargingProfilePurpose"]
    schedule = dict(stored["chargingSchedule"])
    schedule["id"] = stored["chargingProfileId"]
    return evse, {
        "id": stored["chargingProfileId"],
        "stackLevel": stored["stackLevel"],
        "chargingProfilePurpose": {"ChargePointMaxProfile": "ChargingStationMaxProfile"}.get(
            purpose, purpose
        ),
        "chargingProfileKind": stored["chargingProfileKind"],
        "chargingSchedule": [schedule],
    }


def _key(component: dict[str, Any], variable: dict[str, Any]) -> VarKey:
    evse = component.get("evse") or {}
    return VarKey(
        str(component.get("name", "")),
        str(variable.get("name", "")),
        evse.get("id"),
        evse.get("connector_id"),
        variable.get("instance"),
    )


class _Handlers:
    def __init__(self, s: Session201) -> None:
        self.s = s

    def table(self) -> dict[str, Handler]:
        return {
            "GetVariables": self.get_variables,
            "SetVariables": self.set_variables,
            "GetBaseReport": self.get_base_report,
            "Reset": self.reset,
            "ChangeAvailability": self.change_availability,
            "RequestStartTransaction": self.request_start,
            "RequestStopTransaction": self.request_stop,
            "GetTransactionStatus": self.get_transaction_status,
            "SendLocalList": self.send_local_list,
            "GetLocalListVersion": self.get_local_list_version,
            "ClearCache": self.clear_cache,
            "ReserveNow": self.reserve_now,
            "CancelReservation": self.cancel_reservation,
            "UnlockConnector": self.unlock_connector,
            "TriggerMessage": self.trigger_message,
            "DataTransfer": self.data_transfer,
            "SetChargingProfile": self.set_charging_profile,
            "ClearChargingProfile": self.clear_charging_profile,
            "GetChargingProfiles": self.get_charging_profiles,
            "GetCompositeSchedule": self.get_composite_schedule,
            "UpdateFirmware": self.update_firmware,
            "GetLog": self.get_log,
            "InstallCertificate": self.install_certificate,
            "GetInstalledCertificateIds": self.get_installed_certificate_ids,
            "DeleteCertificate": self.delete_certificate,
            "CertificateSigned": self.certificate_signed,
        }

    # ---------------------------------------------------------------- B: provisioning

    async def get_variables(self, req: call.GetVariables) -> Any:
        results = []
        for item in req.get_variable_data:
            key = _key(item["component"], item["variable"])
            attribute = item.get("attribute_type") or "Actual"
            status, value = self.s.device.get(key, attribute)
            result: dict[str, Any] = {
                "attribute_status": status,
                "component": item["component"],
                "variable": item["variable"],
            }
            if attribute != "Actual" or "attribute_type" in item:
                result["attribute_type"] = attribute
            if value is not None:
                result["attribute_value"] = value[:2500]
            results.append(result)
        return call_result.GetVariables(get_variable_result=results)

    async def set_variables(self, req: call.SetVariables) -> Any:
        results = []
        for item in req.set_variable_data:
            key = _key(item["component"], item["variable"])
            attribute = item.get("attribute_type") or "Actual"
            status = self.s.device.set(key, str(item["attribute_value"]), attribute)
            if status == "Accepted":
                self.s.variable_changed(key)
            results.append(
                {
                    "attribute_type": attribute,
                    "attribute_status": status,
                    "component": item["component"],
                    "variable": item["variable"],
                }
            )
        answer = call_result.SetVariables(set_variable_result=results)
        if self.s.security.reconnect_due:  # A01 / A05: a new connection once this is out

            async def reconnect() -> None:
                self.s.reconnect_if_due()

            return Answer(answer, reconnect)
        return answer

    async def get_base_report(self, req: call.GetBaseReport) -> Any:
        if req.report_base not in (
            "ConfigurationInventory",
            "FullInventory",
            "SummaryInventory",
        ):
            return call_result.GetBaseReport(status="NotSupported")
        data = [_snake(d) for d in self.s.device.report(req.report_base)]
        request_id = req.request_id

        async def report() -> None:
            chunks = [data[i : i + _REPORT_CHUNK] for i in range(0, len(data), _REPORT_CHUNK)]
            for seq, chunk in enumerate(chunks or [[]]):
                await self.s.request(
                    call.NotifyReport(
                        request_id=request_id,
                        generated_at=format_datetime(self.s.now()),
                        seq_no=seq,
                        report_data=chunk or None,
                        tbc=seq < len(chunks) - 1,
                    )
                )

        return Answer(call_result.GetBaseReport(status="Accepted"), report)

    async def reset(self, req: call.Reset) -> Any:
        system = self.s.system
        if system is None or req.evse_id is not None:
            return call_result.Reset(status="Rejected")  # B11/B12: EVSE reset not supported
        busy = [e for e, m in self.s.evses.items() if m.tx is not None]
        kind = ResetKind.HARD if req.type == "Immediate" else ResetKind.SOFT

        async def run() -> None:
            if req.type == "Immediate":  # B12: stop every transaction, then reset
                for evse in busy:
                    await self.s.ports[evse].stop_transaction(StopReason.HARD_RESET)
            else:  # B11 OnIdle: wait until no transaction runs
                while any(m.tx is not None for m in self.s.evses.values()):
                    await self.s.wait_idle()
            # A04: journaled before the boards go down, sent once the station is back.
            security_event("ResetOrReboot", f"{req.type} reset requested by the CSMS")
            await system.reset(kind)

        status = "Scheduled" if busy and req.type == "OnIdle" else "Accepted"
        return Answer(call_result.Reset(status=status), run)

    async def change_availability(self, req: call.ChangeAvailability) -> Any:
        evse = (req.evse or {}).get("id", 0)
        if evse != 0 and evse not in self.s.ports:
            return call_result.ChangeAvailability(status="Rejected")
        busy = {e for e, m in self.s.evses.items() if m.tx is not None}
        result = self.s.availability.request(evse, req.operational_status, busy)

        async def apply() -> None:
            await self.s.apply_availability({**result.apply, **result.changes})
            for e in sorted(self.s.ports):
                self.s.status_changed(e)

        return Answer(call_result.ChangeAvailability(status=result.status), apply)

    # ---------------------------------------------------------------- F: remote control

    def _free_evse(self) -> int | None:
        return next((e for e in sorted(self.s.ports) if self.s.status_of(e) == "Available"), None)

    async def request_start(self, req: call.RequestStartTransaction) -> Any:
        evse = req.evse_id if req.evse_id is not None else self._free_evse()
        if evse is None or evse not in self.s.ports:
            return call_result.RequestStartTransaction(status="Rejected")
        if self.s.status_of(evse) in ("Unavailable", "Faulted"):
            return call_result.RequestStartTransaction(status="Rejected")
        token = to_wire(req.id_token)
        tag = str(token["idToken"])
        group = to_wire(req.group_id_token) if req.group_id_token else None
        parent = str(group["idToken"])[:20] if group else None
        allowed, reservation = self.s.reservation_check(evse, tag, parent)
        if not allowed:
            return call_result.RequestStartTransaction(status="Rejected")  # H03
        profile = to_wire(req.charging_profile) if req.charging_profile else None
        if profile is not None and profile.get("chargingProfilePurpose") != "TxProfile":
            return call_result.RequestStartTransaction(status="Rejected")  # F01.FR.12
        machine = self.s.evses[evse]
        running = machine.tx.tx_id if machine.tx is not None else None
        remote_id = req.remote_start_id

        async def start() -> None:
            if self.s.device.bool_value("AuthCtrlr", "AuthorizeRemoteStart"):
                if await self.s.authorization.decide(token) != "Accepted":
                    return
            machine.authorize(token, remote_id)
            await self.s.ports[evse].authorize(tag, reservation)
            if profile is not None:
                self.s.pending_profile(evse, profile)

        return Answer(
            call_result.RequestStartTransaction(status="Accepted", transaction_id=running), start
        )

    async def request_stop(self, req: call.RequestStopTransaction) -> Any:
        evse = self.s.evse_of_transaction(req.transaction_id)
        if evse is None:
            return call_result.RequestStopTransaction(status="Rejected")
        try:
            await self.s.ports[evse].stop_transaction(StopReason.REMOTE)
        except PortError as exc:
            log.warning("remote stop on EVSE %d failed: %s", evse, exc)
            return call_result.RequestStopTransaction(status="Rejected")
        return call_result.RequestStopTransaction(status="Accepted")

    async def get_transaction_status(self, req: call.GetTransactionStatus) -> Any:
        pending = self.s.journal.pending_count() > 0
        if req.transaction_id is None:
            return call_result.GetTransactionStatus(messages_in_queue=pending)
        ongoing = self.s.evse_of_transaction(req.transaction_id) is not None
        return call_result.GetTransactionStatus(
            messages_in_queue=pending, ongoing_indicator=ongoing
        )

    # ---------------------------------------------------------------- C / D: authorization

    async def send_local_list(self, req: call.SendLocalList) -> Any:
        entries = []
        for item in to_wire(req.local_authorization_list or []):
            tag = str(item["idToken"]["idToken"])
            entry: dict[str, Any] = {"idTag": tag}
            if item.get("idTokenInfo") is not None:
                entry["idTagInfo"] = as_v16_info(item["idTokenInfo"])
            entries.append(entry)
        status = self.s.auth.update(
            req.version_number,
            req.update_type,
            entries,
            enabled=self.s.device.bool_value("LocalAuthListCtrlr", "Enabled"),
            max_update_length=self.s.device.int_value("LocalAuthListCtrlr", "ItemsPerMessage"),
        )
        return call_result.SendLocalList(status=status)

    async def get_local_list_version(self, req: call.GetLocalListVersion) -> Any:
        return call_result.GetLocalListVersion(version_number=self.s.auth.get_version())

    async def clear_cache(self, req: call.ClearCache) -> Any:
        if not self.s.device.bool_value("AuthCacheCtrlr", "Enabled"):
            return call_result.ClearCache(status="Rejected")
        self.s.auth.cache_clear()
        return call_result.ClearCache(status="Accepted")

    # ---------------------------------------------------------------- H: reservations

    async def reserve_now(self, req: call.ReserveNow) -> Any:
        now = self.s.now()
        expiry = parse_datetime(req.expiry_date_time)
        evse = req.evse_id or 0
        statuses: dict[int, str] = {0: "Available" if self.s.operative(0) else "Unavailable"}
        for e in self.s.ports:
            status = self.s.status_of(e)
            statuses[e] = "Preparing" if status == "Occupied" else status
        token = to_wire(req.id_token)
        group = to_wire(req.group_id_token) if req.group_id_token else None
        stored = self.s.reservations.reserve_now(
            evse,
            expiry,
            str(token["idToken"])[:20],
            req.id,
            str(group["idToken"])[:20] if group else None,
            statuses,
            now,
            connector_zero_supported=True,
        )
        if stored != "Accepted":
            return call_result.ReserveNow(status=stored)

        async def tell() -> None:
            if evse:
                await self.s.ports[evse].reserve(req.id, str(token["idToken"]), expiry)
            for e in sorted(self.s.ports):
                self.s.status_changed(e)

        return Answer(call_result.ReserveNow(status="Accepted"), tell)

    async def cancel_reservation(self, req: call.CancelReservation) -> Any:
        now = self.s.now()
        live = self.s.reservations.active(now)
        if decide_cancel(req.reservation_id, live, now) != "Accepted":
            return call_result.CancelReservation(status="Rejected")
        held = next(r for r in live if r.reservation_id == req.reservation_id)
        self.s.reservations.cancel(req.reservation_id, now)

        async def tell() -> None:
            if held.connector_id:
                await self.s.ports[held.connector_id].cancel_reservation(req.reservation_id)
            for e in sorted(self.s.ports):
                self.s.status_changed(e)

        return Answer(call_result.CancelReservation(status="Accepted"), tell)

    # ---------------------------------------------------------------- F05, F06, P

    async def unlock_connector(self, req: call.UnlockConnector) -> Any:
        if req.evse_id not in self.s.ports or req.connector_id != 1:
            return call_result.UnlockConnector(status="UnknownConnector")
        if self.s.transaction_id(req.evse_id) is not None:
            return call_result.UnlockConnector(status="OngoingAuthorizedTransaction")  # F05.FR.02
        try:
            await self.s.ports[req.evse_id].force_unlock()
        except PortError as exc:
            log.warning("unlock of EVSE %d failed: %s", req.evse_id, exc)
            return call_result.UnlockConnector(status="UnlockFailed")
        return call_result.UnlockConnector(status="Unlocked")

    async def trigger_message(self, req: call.TriggerMessage) -> Any:
        evse = (req.evse or {}).get("id")
        if evse is not None and evse not in self.s.ports:
            return call_result.TriggerMessage(status="Rejected")
        message = req.requested_message
        work: Callable[[], Coroutine[Any, Any, None]] | None = None
        if message == "BootNotification":
            work = self.s.async_boot_again
        elif message == "Heartbeat":

            async def work() -> None:
                await self.s.request(call.Heartbeat())

        elif message == "StatusNotification":
            targets = [evse] if evse is not None else sorted(self.s.ports)

            async def work() -> None:
                for e in targets:
                    await self.s.request(self.s.status_payload(e))

        elif message == "TransactionEvent":
            targets = [evse] if evse is not None else sorted(self.s.ports)
            running = [e for e in targets if self.s.transaction_id(e) is not None]
            if not running:
                return call_result.TriggerMessage(status="Rejected")

            async def work() -> None:
                for e in running:
                    self.s.sample(e, "Trigger", "Trigger")

        elif message == "MeterValues":
            targets = [evse] if evse is not None else sorted(self.s.ports)

            async def work() -> None:
                for e in targets:
                    await self.s.async_meter_values(e, "Trigger")

        elif message == "FirmwareStatusNotification":

            async def work() -> None:
                await self.s.async_firmware_status(self.s.firmware_status, None)

        elif message == "LogStatusNotification":

            async def work() -> None:
                await self.s.async_log_status(self.s.log_status, None)

        elif message == "SignChargingStationCertificate":  # A02 / F06
            work = self.s.async_sign_certificate

        else:
            return call_result.TriggerMessage(status="NotImplemented")
        return Answer(call_result.TriggerMessage(status="Accepted"), work)

    # ---------------------------------------------------------------- A / M: certificates

    async def install_certificate(self, req: call.InstallCertificate) -> Any:
        status = self.s.security.install(req.certificate_type, req.certificate)
        log.info("InstallCertificate %s: %s", req.certificate_type, status)
        return call_result.InstallCertificate(status=status)

    async def get_installed_certificate_ids(self, req: call.GetInstalledCertificateIds) -> Any:
        chains = self.s.security.installed_ids(req.certificate_type)
        if not chains:
            return call_result.GetInstalledCertificateIds(status="NotFound")
        return call_result.GetInstalledCertificateIds(
            status="Accepted", certificate_hash_data_chain=chains
        )

    async def delete_certificate(self, req: call.DeleteCertificate) -> Any:
        status = self.s.security.delete(req.certificate_hash_data)
        return call_result.DeleteCertificate(status=status)

    async def certificate_signed(self, req: call.CertificateSigned) -> Any:
        status = self.s.security.accept_signed(req.certificate_chain, req.certificate_type)
        return call_result.CertificateSigned(status=status)

    async def data_transfer(self, req: call.DataTransfer) -> Any:
        return call_result.DataTransfer(status="UnknownVendorId")

    # ---------------------------------------------------------------- L / N: firmware, logs

    async def update_firmware(self, req: call.UpdateFirmware) -> Any:
        """L01 through the system aggregator: one download, verified, to every board. The
        bundle carries its own ed25519 signature (the 2.0.1 signature fields are not used)."""
        system = self.s.system
        if system is None:
            return call_result.UpdateFirmware(status="Rejected")
        firmware = to_wire(req.firmware)
        when = parse_datetime(firmware["retrieveDateTime"])
        request_id = req.request_id

        async def status(value: str) -> None:
            await self.s.async_firmware_status(value, request_id)

        async def run() -> None:
            await system.update_firmware(
                firmware["location"],
                when,
                req.retries or 0,
                float(req.retry_interval or 0),
                status,
            )

        return Answer(call_result.UpdateFirmware(status="Accepted"), run)

    async def get_log(self, req: call.GetLog) -> Any:
        """N01 DiagnosticsLog through the aggregator (one archive, a folder per board)."""
        system = self.s.system
        if system is None or req.log_type != "DiagnosticsLog":
            return call_result.GetLog(status="Rejected")
        log_spec = to_wire(req.log)
        request_id = req.request_id

        async def forward(value: str) -> None:
            await self.s.async_log_status(value, request_id)

        gate = _AfterReply(forward)
        oldest, latest = log_spec.get("oldestTimestamp"), log_spec.get("latestTimestamp")
        name = await system.get_diagnostics(
            log_spec["remoteLocation"],
            parse_datetime(oldest) if oldest else None,
            parse_datetime(latest) if latest else None,
            req.retries or 0,
            float(req.retry_interval or 0),
            gate.report,
        )
        return Answer(call_result.GetLog(status="Accepted", filename=name or None), gate.release)

    # ---------------------------------------------------------------- K: smart charging

    async def set_charging_profile(self, req: call.SetChargingProfile) -> Any:
        if not self.s.device.bool_value("SmartChargingCtrlr", "Enabled"):
            return call_result.SetChargingProfile(status="Rejected")
        profile = to_wire(req.charging_profile)
        evse = req.evse_id
        purpose = profile["chargingProfilePurpose"]
        if evse != 0 and evse not in self.s.ports:
            return call_result.SetChargingProfile(status="Rejected")
        if (purpose == "ChargingStationMaxProfile") != (
            evse == 0
        ) and purpose != "TxDefaultProfile":
            return call_result.SetChargingProfile(status="Rejected")  # K01.FR.38 / FR.16
        if purpose == "TxProfile":
            if profile.get("transactionId") != self.s.transaction_id(evse):
                return call_result.SetChargingProfile(status="Rejected")  # K01.FR.09
        status = self.s.install_profile(evse, profile)
        return call_result.SetChargingProfile(status=status)

    async def clear_charging_profile(self, req: call.ClearChargingProfile) -> Any:
        criteria = to_wire(req.charging_profile_criteria or {})
        purpose = criteria.get("chargingProfilePurpose")
        cleared = self.s.profiles.clear(
            req.charging_profile_id,
            criteria.get("evseId"),
            _PURPOSE.get(purpose, purpose) if purpose else None,
            criteria.get("stackLevel"),
        )
        self.s.limits_changed()
        return call_result.ClearChargingProfile(status=cleared)

    async def get_charging_profiles(self, req: call.GetChargingProfiles) -> Any:
        criteria = to_wire(req.charging_profile)
        found: list[tuple[int, dict[str, Any]]] = []
        for stored in self.s.profiles.profiles(req.evse_id):
            evse, profile = _v201_profile(dict(stored))
            ids = criteria.get("chargingProfileId")
            if ids and profile["id"] not in ids:
                continue
            if criteria.get("chargingProfilePurpose") not in (
                None,
                profile["chargingProfilePurpose"],
            ):
                continue
            if criteria.get("stackLevel") not in (None, profile["stackLevel"]):
                continue
            found.append((evse, profile))
        if not found:
            return call_result.GetChargingProfiles(status="NoProfiles")
        request_id = req.request_id
        by_evse: dict[int, list[dict[str, Any]]] = {}
        for evse, profile in found:
            by_evse.setdefault(evse, []).append(profile)

        async def report() -> None:
            groups = sorted(by_evse.items())
            for i, (evse, profiles) in enumerate(groups):
                await self.s.request(
                    call.ReportChargingProfiles(
                        request_id=request_id,
                        charging_limit_source="CSO",
                        evse_id=evse,
                        charging_profile=[_snake(p) for p in profiles],
                        tbc=i < len(groups) - 1,
                    )
                )

        return Answer(call_result.GetChargingProfiles(status="Accepted"), report)

    async def get_composite_schedule(self, req: call.GetCompositeSchedule) -> Any:
        evse = req.evse_id
        if (evse != 0 and evse not in self.s.ports) or req.duration <= 0:
            return call_result.GetCompositeSchedule(status="Rejected")
        unit = req.charging_rate_unit or "A"
        now = self.s.now()
        schedule = self.s.profiles.composite_schedule(
            evse, req.duration, now, unit, self.s.transaction_start(evse) if evse else None
        )
        if schedule is None:  # nothing limits it: the hardware maximum (K08)
            amps = self.s.profiles.max_current_a
            limit = amps if unit == "A" else amps * self.s.profiles.voltage * 3
            periods = [{"start_period": 0, "limit": limit, "number_phases": 3}]
        else:
            periods = [_snake(p) for p in schedule["chargingSchedulePeriod"]]
        return call_result.GetCompositeSchedule(
            status="Accepted",
            schedule={
                "evse_id": evse,
                "duration": req.duration,
                "schedule_start": format_datetime(now),
                "charging_rate_unit": unit,
                "charging_schedule_period": periods,
            },
        )


class _AfterReply:
    """Holds statuses until the CALLRESULT they follow is on the wire (the aggregator may
    report Uploading before GetLog even has its file name to answer with)."""

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


def _snake(value: dict[str, Any]) -> dict[str, Any]:
    from ocpp.charge_point import camel_to_snake_case

    converted: dict[str, Any] = camel_to_snake_case(value)
    return converted


def handlers(session: Session201) -> dict[str, Handler]:
    """The action -> handler table of one connection."""
    return _Handlers(session).table()
