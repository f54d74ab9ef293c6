"""The security extension's CALLs from the CSMS (OCA "Improved security for OCPP 1.6-J",
edition 3): InstallCertificate, GetInstalledCertificateIds, DeleteCertificate,
CertificateSigned, ExtendedTriggerMessage, GetLog and SignedUpdateFirmware.

`register(cp, security)` adds these handlers to a connection's charge point (the package's
route map) and hooks ChangeConfiguration's after-answer step, so that a raised SecurityProfile
reconnects only once its ChangeConfiguration.conf is on the wire. Framing and schema checks are
the charge point's (`framing.validate_call` knows these actions' 1.6 schemas). Anything that
sends CALLs of its own runs after the answer (an `_after_action`), never inside the handler.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from ocpp.routing import create_route_map
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from chargeport.security_log import security_event
from main_node.ocpp.certificates import (
    CSMS_ROOT,
    MANUFACTURER_ROOT,
    CertificateError,
    load_chain,
    verify_chain,
)
from main_node.ocpp.framing import on
from main_node.ocpp.meter_values import parse_iso_time
from main_node.ocpp.security_profile import INVALID_CP_CERTIFICATE
from main_node.ocpp.session_security import SessionSecurity
from main_node.ocpp.signed_firmware import (
    INVALID_SIGNING_CERTIFICATE,
    SignedFirmware,
    firmware_notification,
    log_notification,
    log_status_for,
    send_quietly,
)

__all__ = ["EXTENDED_TRIGGERS", "SECURITY_ACTIONS", "SecurityHandlers", "register"]

log = logging.getLogger(__name__)

RESET_OR_REBOOT = "ResetOrReboot"

# ExtendedTriggerMessage's MessageTrigger values, all served.
EXTENDED_TRIGGERS = frozenset(
    {
        "BootNotification",
        "LogStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "MeterValues",
        "SignChargePointCertificate",
        "StatusNotification",
    }
)

# The whitepaper's eleven messages, both directions (the matrix counts them).
SECURITY_ACTIONS = (
    "CertificateSigned",
    "DeleteCertificate",
    "ExtendedTriggerMessage",
    "GetInstalledCertificateIds",
    "GetLog",
    "InstallCertificate",
    "LogStatusNotification",
    "SecurityEventNotification",
    "SignCertificate",
    "SignedFirmwareStatusNotification",
    "SignedUpdateFirmware",
)


class SecurityHandlers:
    """The handlers of one connection; state that outlives it is in `SessionSecurity`."""

    def __init__(self, security: SessionSecurity) -> None:
        self.sec = security
        self.host = security.host
        self._pending: list[Callable[[], Coroutine[Any, Any, None]]] = []

    def _later(self, make: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._pending.append(make)

    def _release(self, **_: Any) -> None:
        """After-answer step shared by every handler here: start what the handler queued."""
        pending, self._pending = self._pending, []
        for make in pending:
            self.host.spawn(make())

    # -------------------------------------------------------------- certificates

    @on(Action.install_certificate, skip_schema_validation=True)
    def on_install_certificate(self, certificate_type: str, certificate: str, **_: Any) -> Any:
        status = self.sec.store.install(certificate_type, certificate, self.host.now())
        log.info("InstallCertificate %s: %s", certificate_type, status)
        return call_result.InstallCertificate(status=status)

    @on(Action.get_installed_certificate_ids, skip_schema_validation=True)
    def on_get_installed_certificate_ids(self, certificate_type: str, **_: Any) -> Any:
        ids = self.sec.store.ids(certificate_type)
        if not ids:
            return call_result.GetInstalledCertificateIds(status="NotFound")
        return call_result.GetInstalledCertificateIds(status="Accepted", certificate_hash_data=ids)

    @on(Action.delete_certificate, skip_schema_validation=True)
    def on_delete_certificate(self, certificate_hash_data: dict[str, Any], **_: Any) -> Any:
        found = self.sec.store.find(certificate_hash_data)
        if found is None:
            return call_result.DeleteCertificate(status="NotFound")
        if (
            found.kind == CSMS_ROOT
            and self.sec.profile >= 2
            and len(self.sec.store.installed(CSMS_ROOT)) == 1
            and not self.sec.has_ca_file
        ):
            # The last root the CSMS is checked with: deleting it would cut the station off.
            return call_result.DeleteCertificate(status="Failed")
        ok = self.sec.store.delete(found)
        return call_result.DeleteCertificate(status="Accepted" if ok else "Failed")

    @on(Action.certificate_signed, skip_schema_validation=True)
    def on_certificate_signed(self, certificate_chain: str, **_: Any) -> Any:
        limit = self.host.config.int_value("CertificateSignedMaxChainSize")
        reason: str | None = f"chain of {len(certificate_chain)} characters > {limit}"
        if len(certificate_chain) <= limit:
            reason = self.sec.store.check_signed(
                certificate_chain, self.sec.csms_roots(), self.host.now()
            )
        if reason is not None:
            security_event(INVALID_CP_CERTIFICATE, f"CertificateSigned refused: {reason}")
            return call_result.CertificateSigned(status="Rejected")
        self.sec.store.store_client_chain(certificate_chain)
        self.sec.certificate_signed.set()
        log.info("new client certificate stored; used from the next connection")
        return call_result.CertificateSigned(status="Accepted")

    # -------------------------------------------------------------- triggers

    @on(Action.extended_trigger_message, skip_schema_validation=True)
    def on_extended_trigger_message(
        self, requested_message: str, connector_id: int | None = None, **_: Any
    ) -> Any:
        if requested_message not in EXTENDED_TRIGGERS:
            return call_result.ExtendedTriggerMessage(status="NotImplemented")
        if connector_id not in (None, 0) and connector_id not in self.host.ports:
            return call_result.ExtendedTriggerMessage(status="Rejected")
        self._later(lambda: self._trigger(requested_message, connector_id))
        return call_result.ExtendedTriggerMessage(status="Accepted")

    async def _trigger(self, message: str, connector_id: int | None) -> None:
        if message == "SignChargePointCertificate":
            await self.sec.async_sign_certificate()
        elif message == "FirmwareStatusNotification":
            status, request_id = self.sec.firmware_status
            await send_quietly(self.host.async_request, firmware_notification(status, request_id))
        elif message == "LogStatusNotification":
            status, request_id = self.sec.log_status
            await send_quietly(self.host.async_request, log_notification(status, request_id))
        else:
            await self.host.async_trigger(message, connector_id)

    # -------------------------------------------------------------- logs

    @on(Action.get_log, skip_schema_validation=True)
    async def on_get_log(
        self,
        log_type: str,
        request_id: int,
        log: dict[str, Any],
        retries: int | None = None,
        retry_interval: int | None = None,
        **_: Any,
    ) -> Any:
        system = self.host.system
        if system is None:
            return call_result.GetLog(status="Rejected")
        oldest, latest = log.get("oldest_timestamp"), log.get("latest_timestamp")
        held: list[str] = []
        answered = False

        async def report(status: str) -> None:
            mapped = log_status_for(status)
            self.sec.log_status = (mapped, request_id)
            if not answered:
                held.append(mapped)  # GetLog.conf goes first
                return
            await send_quietly(self.host.async_request, log_notification(mapped, request_id))

        async def release() -> None:
            nonlocal answered
            answered = True
            for status in held:
                await send_quietly(self.host.async_request, log_notification(status, request_id))

        name = await system.get_diagnostics(
            str(log["remote_location"]),
            parse_iso_time(oldest) if oldest else None,
            parse_iso_time(latest) if latest else None,
            retries or 0,
            float(retry_interval or 0),
            report,
        )
        self._later(release)
        # Both log types are the one archive: the security events are lines of the boards' logs.
        return call_result.GetLog(status="Accepted", filename=name or None)

    # -------------------------------------------------------------- firmware

    @on(Action.signed_update_firmware, skip_schema_validation=True)
    def on_signed_update_firmware(
        self,
        request_id: int,
        firmware: dict[str, Any],
        retries: int | None = None,
        retry_interval: int | None = None,
        **_: Any,
    ) -> Any:
        system = self.host.system
        if system is None:
            return call_result.SignedUpdateFirmware(status="Rejected")
        try:
            chain = load_chain(str(firmware["signing_certificate"]))
            reason = verify_chain(chain, self.sec.store.roots(MANUFACTURER_ROOT), self.host.now())
        except CertificateError as exc:
            reason = str(exc)
        if reason is not None:
            security_event(INVALID_SIGNING_CERTIFICATE, f"SignedUpdateFirmware: {reason}")
            return call_result.SignedUpdateFirmware(status="InvalidCertificate")
        retrieve = parse_iso_time(str(firmware["retrieve_date_time"]))
        install_at = firmware.get("install_date_time")
        install = parse_iso_time(str(install_at)) if install_at else None
        status = "Accepted"
        running = self.sec.firmware_job
        if running is not None and running.phase != "done":
            if not running.cancel():
                return call_result.SignedUpdateFirmware(status="Rejected")  # boards installing
            status = "AcceptedCanceled"

        async def report(status: str) -> None:
            self.sec.firmware_status = (status, request_id)
            await send_quietly(self.host.async_request, firmware_notification(status, request_id))

        clock = self.host.clock
        job = SignedFirmware(system, self.sec.store.dir, report, clock.sleep, clock.time)
        self.sec.firmware_job = job
        self._later(
            lambda: job.run(
                str(firmware["location"]),
                retrieve,
                chain[0],
                str(firmware["signature"]),
                retries or 0,
                float(retry_interval or 0),
                install,
            )
        )
        return call_result.SignedUpdateFirmware(status=status)


def register(cp: Any, security: SessionSecurity) -> None:
    """Add the security handlers to a connection's charge point (`StationChargePoint`)."""
    handlers = SecurityHandlers(security)
    routes: dict[str, dict[str, Any]] = create_route_map(handlers)
    for action in routes:
        routes[action]["_after_action"] = handlers._release
    cp.route_map.update(routes)
    change = cp.route_map.get(Action.change_configuration)
    if change is not None:
        change["_after_action"] = lambda **_: security.after_change()
    reset = cp.route_map.get(Action.reset)
    if reset is not None and "_after_action" not in reset:
        reset["_after_action"] = functools.partial(_reset_event, security)


def _reset_event(security: SessionSecurity, type: str = "", **_: Any) -> None:
    """An accepted Reset is a security event (whitepaper Appendix 1: ResetOrReboot); it is
    journaled before the boards go down and sent once the station is back."""
    if security.host.system is not None:  # without a system the Reset was Rejected
        security_event(RESET_OR_REBOOT, f"{type} reset requested by the CSMS")
