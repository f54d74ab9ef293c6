"""A small OCPP 2.0.1 central system built on `ocpp.v201`, for tests and `chargeport sim`.

It accepts BootNotification, records StatusNotifications per EVSE, answers Authorize from a
set of accepted tokens, records TransactionEvents per transaction (the station generates the
ids), NotifyReport / NotifyEvent / ReportChargingProfiles, and sends commands to a connected
charging station. Security profiles 1-3 are optional: Basic auth (`password`), TLS
(`ssl_context`, wss://), client certificates (a context that asks for them: a verified one is
the login); with a `signer` (CA certificate and key) it signs SignCertificate's CSR and sends
CertificateSigned. The 1.6 one is `csms.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import websockets
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from ocpp.exceptions import InternalError
from ocpp.routing import after as _untyped_after
from ocpp.routing import on as _untyped_on
from ocpp.v201 import ChargePoint as _V201ChargePoint
from ocpp.v201 import call, call_result
from ocpp.v201.enums import Action
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.typing import Subprotocol

from chargeport.tasks import OwnedTasks
from simulation.csms import CsmsServer, sign_csr

__all__ = ["CentralSystem201", "Csms201Connection", "Transaction201"]

log = logging.getLogger(__name__)

_F = TypeVar("_F", bound=Callable[..., Any])


def on(action: Action) -> Callable[[_F], _F]:
    """`ocpp.routing.on`, typed."""
    decorator: Callable[[_F], _F] = _untyped_on(action)
    return decorator


def after(action: Action) -> Callable[[_F], _F]:
    """`ocpp.routing.after`, typed: runs once the CALLRESULT is sent."""
    decorator: Callable[[_F], _F] = _untyped_after(action)
    return decorator


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Transaction201:
    """One transaction as the CSMS saw it (all its TransactionEvents, in arrival order)."""

    transaction_id: str
    evse_id: int
    id_token: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    stopped_reason: str | None = None
    remote_start_id: int | None = None

    @property
    def ended(self) -> bool:
        return any(e["event_type"] == "Ended" for e in self.events)

    def energy_wh(self, event_type: str) -> float | None:
        """The Energy.Active.Import.Register of the first `event_type` event that has one."""
        for event in self.events:
            if event["event_type"] != event_type:
                continue
            for mv in event.get("meter_value") or []:
                for sv in mv["sampled_value"]:
                    if sv.get("format") == "SignedData":  # a 1.6-style signed record
                        continue
                    if sv.get("measurand", "Energy.Active.Import.Register") == (
                        "Energy.Active.Import.Register"
                    ):
                        return float(sv["value"])
        return None


class _Recorded:
    """The websocket as the package sees it, noting each received frame's kind in order
    (CALL action, or the id a CALLRESULT / CALLERROR answers): tests check what preceded what."""

    def __init__(self, ws: ServerConnection, frames: list[tuple[str, str]]) -> None:
        self._ws = ws
        self._frames = frames

    async def recv(self) -> str | bytes:
        raw = await self._ws.recv()
        with contextlib.suppress(ValueError, TypeError, IndexError, KeyError):
            frame = json.loads(raw)
            kind = {2: "CALL", 3: "CALLRESULT", 4: "CALLERROR"}[frame[0]]
            self._frames.append((kind, str(frame[2]) if kind == "CALL" else str(frame[1])))
        return raw

    async def send(self, message: str) -> None:
        try:
            await self._ws.send(message)
        except websockets.ConnectionClosed:
            # The station is closing (a reconnect for new security settings): this answer is
            # lost, but what it sent before its close frame is still read and routed.
            log.info("answer not sent: the station closed the connection")


class Csms201Connection(_V201ChargePoint):  # type: ignore[misc]
    """One connected charging station, seen from the central system."""

    def __init__(self, cp_id: str, ws: ServerConnection, csms: CentralSystem201) -> None:
        super().__init__(cp_id, _Recorded(ws, csms.frames), response_timeout=csms.response_timeout)
        self.csms = csms

    def _record(self, action: str, payload: dict[str, Any]) -> None:
        self.csms.messages.append((action, payload))
        self.csms.changed()

    @on(Action.boot_notification)
    def on_boot(self, **kw: Any) -> Any:
        self._record("BootNotification", kw)
        return call_result.BootNotification(
            current_time=_now(), interval=self.csms.boot_interval, status=self.csms.boot_status
        )

    @on(Action.heartbeat)
    def on_heartbeat(self, **kw: Any) -> Any:
        self._record("Heartbeat", kw)
        return call_result.Heartbeat(current_time=_now())

    @on(Action.status_notification)
    def on_status(self, evse_id: int, connector_status: str, **kw: Any) -> Any:
        self.csms.statuses.append((evse_id, connector_status))
        self._record("StatusNotification", {"evse_id": evse_id, "status": connector_status})
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_token: dict[str, Any], **kw: Any) -> Any:
        self._record("Authorize", {"id_token": id_token})
        return call_result.Authorize(id_token_info=self.csms.token_info(id_token["id_token"]))

    @on(Action.transaction_event)
    def on_transaction_event(self, **kw: Any) -> Any:
        if self.csms.refuse_transaction_events > 0:  # tests: the CSMS cannot process it (E13)
            self.csms.refuse_transaction_events -= 1
            self._record("TransactionEvent.refused", kw)
            raise InternalError(description="CSMS database unavailable")
        info = kw["transaction_info"]
        tx_id = info["transaction_id"]
        evse = (kw.get("evse") or {}).get("id", 0)
        tx = self.csms.transactions.setdefault(tx_id, Transaction201(tx_id, evse))
        tx.events.append(kw)
        if info.get("stopped_reason"):
            tx.stopped_reason = info["stopped_reason"]
        if info.get("remote_start_id") is not None:
            tx.remote_start_id = info["remote_start_id"]
        token = kw.get("id_token")
        self._record("TransactionEvent", kw)
        if token is None:
            return call_result.TransactionEvent()
        tx.id_token = token["id_token"]
        return call_result.TransactionEvent(id_token_info=self.csms.token_info(token["id_token"]))

    @on(Action.meter_values)
    def on_meter_values(self, **kw: Any) -> Any:
        self._record("MeterValues", kw)
        return call_result.MeterValues()

    @on(Action.notify_report)
    def on_notify_report(self, **kw: Any) -> Any:
        self._record("NotifyReport", kw)
        return call_result.NotifyReport()

    @on(Action.notify_event)
    def on_notify_event(self, **kw: Any) -> Any:
        self._record("NotifyEvent", kw)
        return call_result.NotifyEvent()

    @on(Action.report_charging_profiles)
    def on_report_charging_profiles(self, **kw: Any) -> Any:
        self._record("ReportChargingProfiles", kw)
        return call_result.ReportChargingProfiles()

    @on(Action.firmware_status_notification)
    def on_fw_status(self, status: str, **kw: Any) -> Any:
        self._record("FirmwareStatusNotification", {"status": status, **kw})
        return call_result.FirmwareStatusNotification()

    @on(Action.log_status_notification)
    def on_log_status(self, status: str, **kw: Any) -> Any:
        self._record("LogStatusNotification", {"status": status, **kw})
        return call_result.LogStatusNotification()

    @on(Action.security_event_notification)
    def on_security_event(self, **kw: Any) -> Any:
        self._record("SecurityEventNotification", kw)
        return call_result.SecurityEventNotification()

    @on(Action.sign_certificate)
    def on_sign_certificate(self, csr: str, **kw: Any) -> Any:
        self._record("SignCertificate", {"csr": csr, **kw})
        ok = self.csms.signer is not None
        return call_result.SignCertificate(status="Accepted" if ok else "Rejected")

    @after(Action.sign_certificate)
    def after_sign_certificate(self, csr: str, **kw: Any) -> None:
        if self.csms.signer is not None:
            ca_cert, ca_key = self.csms.signer
            chain = sign_csr(csr, ca_cert, ca_key)
            self.csms._tasks.spawn(self._send_signed(chain), "csms201-certificate-signed")

    async def _send_signed(self, chain: str) -> None:
        result = await self.call(
            call.CertificateSigned(
                certificate_chain=chain, certificate_type="ChargingStationCertificate"
            ),
            suppress=False,
        )
        self._record("CertificateSigned.result", {"status": result.status})


class CentralSystem201(CsmsServer):
    """The 2.0.1 central system: a websockets server plus what it recorded."""

    NAME = "csms201"

    def __init__(
        self,
        accepted_tags: Iterable[str] = ("TAG-OK",),
        *,
        boot_status: str = "Accepted",
        boot_interval: int = 300,
        password: str = "",
        response_timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        signer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    ) -> None:
        self.accepted_tags = {t.casefold() for t in accepted_tags}
        self.boot_status = boot_status
        self.boot_interval = boot_interval
        self.password = password
        self.response_timeout = response_timeout
        self.ssl_context = ssl_context
        self.signer = signer
        self.logins: list[tuple[str, str]] = []  # (Authorization scheme, client cert CN)
        self.rejected_logins = 0
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.statuses: list[tuple[int, str]] = []
        self.frames: list[tuple[str, str]] = []  # (CALL, action) | (CALLRESULT, unique id)
        self.transactions: dict[str, Transaction201] = {}
        self.connections: dict[str, Csms201Connection] = {}
        self.connects = 0
        self.request_ids = itertools.count(1)
        self.refuse_transaction_events = 0  # answer this many with a CALLERROR (E13 tests)
        self._server: Server | None = None
        self._changed = asyncio.Condition()
        self._tasks = OwnedTasks(log)
        self.port = 0

    @property
    def url(self) -> str:
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://127.0.0.1:{self.port}/ocpp"

    async def start(self, port: int = 0) -> None:
        self._server = await serve(
            self._handler,
            "127.0.0.1",
            port or self.port,
            subprotocols=[Subprotocol("ocpp2.0.1")],
            process_request=self._check_auth,
            ssl=self.ssl_context,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self._tasks.cancel_all()

    def _connection(self, cp_id: str, ws: ServerConnection) -> Csms201Connection:
        return Csms201Connection(cp_id, ws, self)

    def token_info(self, id_token: str) -> dict[str, Any]:
        ok = id_token.casefold() in self.accepted_tags
        return {"status": "Accepted" if ok else "Invalid"}

    def actions(self, name: str) -> list[dict[str, Any]]:
        return [p for a, p in self.messages if a == name]

    def security_events(self) -> list[str]:
        """The types of the SecurityEventNotifications received, in order."""
        return [str(p["type"]) for p in self.actions("SecurityEventNotification")]

    def last_status(self, evse_id: int) -> str | None:
        found = [s for e, s in self.statuses if e == evse_id]
        return found[-1] if found else None

    def transaction_on(self, evse_id: int) -> Transaction201 | None:
        """The latest transaction seen on an EVSE."""
        found = [t for t in self.transactions.values() if t.evse_id == evse_id]
        return found[-1] if found else None

    async def connection(
        self, cp_id: str | None = None, within_s: float = 10.0
    ) -> Csms201Connection:
        def pick() -> Csms201Connection | None:
            if cp_id is not None:
                return self.connections.get(cp_id)
            return next(iter(self.connections.values()), None)

        found: Csms201Connection = await self.wait_for(pick, within_s)
        return found

    async def send(self, payload: Any, cp_id: str | None = None) -> Any:
        """Send a CALL to the station; the typed CALLRESULT (OCPPError on a CALLERROR)."""
        conn = await self.connection(cp_id)
        return await conn.call(payload, suppress=False)

    # ------------------------------------------------------------ commands

    async def request_start(self, id_token: str, evse_id: int | None = None) -> Any:
        return await self.send(
            call.RequestStartTransaction(
                id_token={"id_token": id_token, "type": "Central"},
                remote_start_id=next(self.request_ids),
                evse_id=evse_id,
            )
        )

    async def request_stop(self, transaction_id: str) -> Any:
        return await self.send(call.RequestStopTransaction(transaction_id=transaction_id))

    async def get_variables(self, *items: tuple[str, str]) -> list[dict[str, Any]]:
        result = await self.send(
            call.GetVariables(
                get_variable_data=[
                    {"component": {"name": c}, "variable": {"name": v}} for c, v in items
                ]
            )
        )
        found: list[dict[str, Any]] = result.get_variable_result
        return found

    async def set_variable(self, component: str, variable: str, value: str) -> str:
        result = await self.send(
            call.SetVariables(
                set_variable_data=[
                    {
                        "attribute_value": value,
                        "component": {"name": component},
                        "variable": {"name": variable},
                    }
                ]
            )
        )
        return str(result.set_variable_result[0]["attribute_status"])


async def _serve_forever(port: int, tags: list[str]) -> None:
    csms = CentralSystem201(tags)
    await csms.start(port)
    print(f"csms (OCPP 2.0.1) listening on {csms.url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await csms.stop()


def main() -> None:
    """`python -m simulation.csms201 --port N [--tag T ...]`: a stand-alone 2.0.1 CSMS."""
    import argparse
    import contextlib

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--tag", action="append", default=[])
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(args.port, args.tag or ["TAG-OK"]))


if __name__ == "__main__":
    main()
