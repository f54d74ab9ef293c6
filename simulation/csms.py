"""A small OCPP 1.6J central system built on the `ocpp` package, for tests and `chargeport sim`.

It accepts BootNotification, records StatusNotifications, answers Authorize from a set of
accepted tags, assigns transaction ids and records meter_start / meter_stop, records
MeterValues, and sends commands (RemoteStart, ChangeAvailability, SetChargingProfile, ...) to a
connected charge point. Security profile 1 (Basic auth) and 2 (TLS) are optional; with a TLS
context that requires client certificates it is a profile 3 server. It speaks the OCPP 1.6
security extension (OCA whitepaper, edition 3): it records SecurityEventNotification,
LogStatusNotification and SignedFirmwareStatusNotification, answers SignCertificate and, with a
`signer` (CA certificate and key), signs the CSR and sends CertificateSigned; it sends
InstallCertificate, GetInstalledCertificateIds, DeleteCertificate, ExtendedTriggerMessage,
GetLog and SignedUpdateFirmware.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import ssl
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any, Self, TypeVar

import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from ocpp.routing import after as _untyped_after
from ocpp.routing import on as _untyped_on
from ocpp.v16 import ChargePoint as _V16ChargePoint
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from chargeport.tasks import OwnedTasks

__all__ = ["CentralSystem", "CsmsConnection", "CsmsServer", "Transaction"]

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


def sign_csr(
    csr_pem: str,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    days: float = 365.0,
    start: datetime | None = None,
) -> str:
    """A client certificate for a CSR, signed by `ca_cert` (leaf, then the CA), as PEM."""
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    begin = start or datetime.now(UTC) - timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca_cert.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(begin)
        .not_valid_after(begin + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pems = [c.public_bytes(serialization.Encoding.PEM) for c in (cert, ca_cert)]
    return b"".join(pems).decode()


def _common_name(peer: Any) -> str:
    """The CN of a peer certificate as `ssl` reports it ("" without one)."""
    for rdn in (peer or {}).get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return ""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Transaction:
    """One transaction as the CSMS saw it."""

    transaction_id: int
    connector_id: int
    id_tag: str
    meter_start: int
    meter_stop: int | None = None
    reason: str | None = None
    meter_values: list[dict[str, Any]] = field(default_factory=list)
    transaction_data: list[dict[str, Any]] = field(default_factory=list)  # from StopTransaction
    signed: list[tuple[str, str]] = field(default_factory=list)  # (context, OCMF record)


def signed_values(meter_value: list[Any]) -> list[tuple[str, str]]:
    """The (context, record) of every SignedData SampledValue in a meterValue list."""
    out = []
    for mv in meter_value:
        for sv in mv.get("sampled_value", ()) if isinstance(mv, dict) else ():
            if isinstance(sv, dict) and sv.get("format") == "SignedData":
                out.append((str(sv.get("context", "")), str(sv.get("value", ""))))
    return out


class CsmsConnection(_V16ChargePoint):  # type: ignore[misc]
    """One connected charge point, seen from the central system."""

    def __init__(self, cp_id: str, ws: ServerConnection, csms: CentralSystem) -> None:
        super().__init__(cp_id, ws, response_timeout=csms.response_timeout)
        self.ws = ws
        self.csms = csms

    async def route_message(self, raw_msg: str) -> None:
        """Log every frame's kind in arrival order (CALL action or response), then route it."""
        with contextlib.suppress(ValueError, TypeError, IndexError, KeyError):
            frame = json.loads(raw_msg)
            kind = {2: "CALL", 3: "CALLRESULT", 4: "CALLERROR"}[frame[0]]
            self.csms.frames.append((kind, str(frame[2]) if kind == "CALL" else str(frame[1])))
        await super().route_message(raw_msg)

    async def _send(self, message: str) -> None:
        """An answer to a charge point that has just closed the connection is dropped: the
        receive loop must go on to the answers the charge point sent before it closed."""
        try:
            await super()._send(message)
        except websockets.ConnectionClosed:
            if not message.startswith(("[3,", "[4,")):
                raise
            log.info("%s: answer dropped, the connection is closed", self.id)

    def _keep_signed(self, cid: int, tx: Transaction | None, meter_value: list[Any]) -> None:
        for context, record in signed_values(meter_value):
            self.csms.last_signed[cid] = record
            if tx is not None and (context, record) not in tx.signed:
                tx.signed.append((context, record))

    def _record(self, action: str, payload: dict[str, Any]) -> None:
        self.csms.messages.append((action, payload))
        self.csms.changed()

    @on(Action.boot_notification)
    def on_boot(self, **kw: Any) -> Any:
        self._record("BootNotification", kw)
        return call_result.BootNotification(
            current_time=_now(),
            interval=self.csms.boot_interval,
            status=self.csms.boot_status,
        )

    @on(Action.heartbeat)
    def on_heartbeat(self, **kw: Any) -> Any:
        self._record("Heartbeat", kw)
        return call_result.Heartbeat(current_time=_now())

    @on(Action.status_notification)
    def on_status(self, **kw: Any) -> Any:
        self.csms.statuses.append((kw["connector_id"], kw["status"], kw["error_code"]))
        self._record("StatusNotification", kw)
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_tag: str, **kw: Any) -> Any:
        self._record("Authorize", {"id_tag": id_tag})
        return call_result.Authorize(id_tag_info=self.csms.id_tag_info(id_tag))

    @on(Action.start_transaction)
    def on_start(self, connector_id: int, id_tag: str, meter_start: int, **kw: Any) -> Any:
        tx_id = next(self.csms.tx_ids)
        self.csms.transactions[tx_id] = Transaction(tx_id, connector_id, id_tag, meter_start)
        self._record("StartTransaction", {"connector_id": connector_id, "id_tag": id_tag, **kw})
        return call_result.StartTransaction(
            transaction_id=tx_id, id_tag_info=self.csms.id_tag_info(id_tag)
        )

    @on(Action.stop_transaction)
    def on_stop(self, transaction_id: int, meter_stop: int, **kw: Any) -> Any:
        tx = self.csms.transactions.get(transaction_id)
        if tx is not None:
            tx.meter_stop = meter_stop
            tx.reason = kw.get("reason")
            tx.transaction_data = list(kw.get("transaction_data") or [])
            self._keep_signed(tx.connector_id, tx, tx.transaction_data)
        self._record(
            "StopTransaction", {"transaction_id": transaction_id, "meter_stop": meter_stop, **kw}
        )
        return call_result.StopTransaction()

    @on(Action.meter_values)
    def on_meter_values(self, connector_id: int, meter_value: list[Any], **kw: Any) -> Any:
        tx = self.csms.transactions.get(kw.get("transaction_id") or -1)
        if tx is not None:
            tx.meter_values.extend(meter_value)
        self._keep_signed(connector_id, tx, meter_value)
        self._record(
            "MeterValues", {"connector_id": connector_id, "meter_value": meter_value, **kw}
        )
        return call_result.MeterValues()

    @on(Action.firmware_status_notification)
    def on_fw_status(self, status: str, **kw: Any) -> Any:
        self._record("FirmwareStatusNotification", {"status": status})
        return call_result.FirmwareStatusNotification()

    @on(Action.diagnostics_status_notification)
    def on_diag_status(self, status: str, **kw: Any) -> Any:
        self._record("DiagnosticsStatusNotification", {"status": status})
        return call_result.DiagnosticsStatusNotification()

    # ------------------------------------------------ security extension (whitepaper ed. 3)

    @on(Action.security_event_notification)
    def on_security_event(self, type: str, timestamp: str, **kw: Any) -> Any:
        self._record("SecurityEventNotification", {"type": type, "timestamp": timestamp, **kw})
        return call_result.SecurityEventNotification()

    @on(Action.log_status_notification)
    def on_log_status(self, status: str, **kw: Any) -> Any:
        self._record("LogStatusNotification", {"status": status, **kw})
        return call_result.LogStatusNotification()

    @on(Action.signed_firmware_status_notification)
    def on_signed_fw_status(self, status: str, **kw: Any) -> Any:
        self._record("SignedFirmwareStatusNotification", {"status": status, **kw})
        return call_result.SignedFirmwareStatusNotification()

    @on(Action.sign_certificate)
    def on_sign_certificate(self, csr: str, **kw: Any) -> Any:
        self._record("SignCertificate", {"csr": csr})
        ok = self.csms.signer is not None
        return call_result.SignCertificate(status="Accepted" if ok else "Rejected")

    @after(Action.sign_certificate)
    def after_sign_certificate(self, csr: str, **kw: Any) -> None:
        if self.csms.unanswered_csrs > 0:
            self.csms.unanswered_csrs -= 1  # accepted, never signed: the station must repeat
            return
        if self.csms.signer is not None:
            ca_cert, ca_key = self.csms.signer
            chain = sign_csr(csr, ca_cert, ca_key, **self.csms.signer_options)
            self.csms._tasks.spawn(self._send_signed(chain), "csms-certificate-signed")

    async def _send_signed(self, chain: str) -> None:
        result = await self.call(call.CertificateSigned(certificate_chain=chain), suppress=False)
        self._record("CertificateSigned.conf", {"status": result.status})

    async def send_raw(self, frame: str, unique_id: str | None, within_s: float = 5.0) -> Any:
        """Send a hand-made frame; the decoded answer for `unique_id` (None: expect none)."""
        async with self._call_lock:
            await self.ws.send(frame)
            if unique_id is None:
                return None
            msg = await self._get_specific_response(unique_id, within_s)
            return json.loads(msg.to_json())


class CsmsServer:
    """What the 1.6 and 2.0.1 test central systems share: the login check (Basic auth, or a
    verified client certificate for profile 3), one connection per charge point, and waiting
    for what they recorded. A subclass sets the attributes below and `_connection`."""

    NAME = "csms"
    password: str
    logins: list[tuple[str, str]]
    rejected_logins: int
    connections: dict[str, Any]
    connects: int
    _changed: asyncio.Condition
    _tasks: OwnedTasks

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    def _connection(self, cp_id: str, ws: ServerConnection) -> Any:
        """The protocol's connection object for one charge point (it has `start()`)."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _check_auth(self, conn: ServerConnection, request: Request) -> Response | None:
        peer = conn.transport.get_extra_info("peercert")
        self.logins.append(
            (request.headers.get("Authorization", "").split(" ")[0], _common_name(peer))
        )
        if peer:
            return None  # security profile 3: the verified client certificate is the login
        if not self.password:
            return None
        cp_id = request.path.rstrip("/").rsplit("/", 1)[-1]
        expected = base64.b64encode(f"{cp_id}:{self.password}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            self.rejected_logins += 1
            self.changed()
            return conn.respond(HTTPStatus.UNAUTHORIZED, "bad credentials\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        cp_id = ws.request.path.rstrip("/").rsplit("/", 1)[-1] if ws.request else "?"
        conn = self._connection(cp_id, ws)
        self.connections[cp_id] = conn
        self.connects += 1
        self.changed()
        try:
            await conn.start()
        except websockets.ConnectionClosed:
            pass
        finally:
            if self.connections.get(cp_id) is conn:
                del self.connections[cp_id]
            self.changed()

    # ------------------------------------------------------------ records

    def changed(self) -> None:
        self._tasks.spawn(self._notify(), f"{self.NAME}-notify")

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], Any], within_s: float = 10.0) -> Any:
        """Wait until `predicate()` is truthy; returns its value."""
        async with asyncio.timeout(within_s):
            async with self._changed:
                while not (value := predicate()):
                    await self._changed.wait()
                return value


class CentralSystem(CsmsServer):
    """The central system: a websockets server plus what it recorded."""

    def __init__(
        self,
        accepted_tags: Iterable[str] = ("TAG-OK",),
        *,
        boot_status: str = "Accepted",
        boot_interval: int = 300,
        password: str = "",
        ssl_context: ssl.SSLContext | None = None,
        response_timeout: float = 10.0,
        parents: Mapping[str, str] | None = None,
        signer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    ) -> None:
        self.accepted_tags = {t.casefold() for t in accepted_tags}
        # id tag -> its parentIdTag, answered in idTagInfo (OCPP 1.6 section 7.25).
        self.parents = {k.casefold(): v for k, v in (parents or {}).items()}
        self.boot_status = boot_status
        self.boot_interval = boot_interval
        self.password = password
        self.ssl_context = ssl_context
        # The CA that signs charge point certificates (SignCertificate), and how.
        self.signer = signer
        self.signer_options: dict[str, Any] = {}
        self.unanswered_csrs = 0  # SignCertificate requests accepted but left unsigned
        self.response_timeout = response_timeout
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.frames: list[tuple[str, str]] = []  # (CALL, action) | (CALLRESULT, unique id)
        self.statuses: list[tuple[int, str, str]] = []
        self.transactions: dict[int, Transaction] = {}
        # The last OCMF record (SampledValue format SignedData) per connector, as received.
        self.last_signed: dict[int, str] = {}
        self.tx_ids = itertools.count(1001)
        self.connections: dict[str, CsmsConnection] = {}
        self.connects = 0
        self.rejected_logins = 0
        # Each handshake: (the Authorization scheme sent or "", the client certificate's CN).
        self.logins: list[tuple[str, str]] = []
        self._server: Server | None = None
        self._changed = asyncio.Condition()
        self._tasks = OwnedTasks(log)  # wake-ups of `wait_for`
        self.port = 0

    # ------------------------------------------------------------ server

    @property
    def url(self) -> str:
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://127.0.0.1:{self.port}/ocpp"

    async def start(self, port: int = 0) -> None:
        self._server = await serve(
            self._handler,
            "127.0.0.1",
            port or self.port,
            subprotocols=[Subprotocol("ocpp1.6")],
            process_request=self._check_auth,
            ssl=self.ssl_context,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the server and every connection (the charge point sees the CSMS go away)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _connection(self, cp_id: str, ws: ServerConnection) -> CsmsConnection:
        return CsmsConnection(cp_id, ws, self)

    def id_tag_info(self, id_tag: str) -> dict[str, Any]:
        ok = id_tag.casefold() in self.accepted_tags
        info: dict[str, Any] = {"status": "Accepted" if ok else "Invalid"}
        parent = self.parents.get(id_tag.casefold())
        if parent is not None:
            info["parent_id_tag"] = parent
        return info

    def actions(self, name: str) -> list[dict[str, Any]]:
        return [p for a, p in self.messages if a == name]

    def last_status(self, connector_id: int) -> str | None:
        found = [s for c, s, _ in self.statuses if c == connector_id]
        return found[-1] if found else None

    async def connection(self, cp_id: str | None = None, within_s: float = 10.0) -> CsmsConnection:
        """The connection of `cp_id` (or the only one), once it is there."""

        def pick() -> CsmsConnection | None:
            if cp_id is not None:
                return self.connections.get(cp_id)
            return next(iter(self.connections.values()), None)

        conn: CsmsConnection = await self.wait_for(pick, within_s)
        return conn

    # ------------------------------------------------------------ commands

    async def send(self, payload: Any, cp_id: str | None = None) -> Any:
        """Send one CALL to the charge point; its CALLRESULT payload (raises on CALLERROR)."""
        conn = await self.connection(cp_id)
        return await conn.call(payload, suppress=False)

    async def remote_start(self, id_tag: str, connector_id: int | None = None) -> str:
        result = await self.send(
            call.RemoteStartTransaction(id_tag=id_tag, connector_id=connector_id)
        )
        return str(result.status)

    async def remote_stop(self, transaction_id: int) -> str:
        result = await self.send(call.RemoteStopTransaction(transaction_id=transaction_id))
        return str(result.status)

    async def change_availability(self, connector_id: int, kind: str) -> str:
        result = await self.send(call.ChangeAvailability(connector_id=connector_id, type=kind))
        return str(result.status)

    async def set_charging_profile(self, connector_id: int, profile: dict[str, Any]) -> str:
        result = await self.send(
            call.SetChargingProfile(connector_id=connector_id, cs_charging_profiles=profile)
        )
        return str(result.status)

    async def trigger(self, message: str, connector_id: int | None = None) -> str:
        result = await self.send(
            call.TriggerMessage(requested_message=message, connector_id=connector_id)
        )
        return str(result.status)

    async def reserve_now(
        self, connector_id: int, id_tag: str, reservation_id: int, expiry: str
    ) -> str:
        result = await self.send(
            call.ReserveNow(
                connector_id=connector_id,
                expiry_date=expiry,
                id_tag=id_tag,
                reservation_id=reservation_id,
            )
        )
        return str(result.status)

    async def send_local_list(
        self, version: int, entries: list[dict[str, Any]], update_type: str = "Full"
    ) -> str:
        result = await self.send(
            call.SendLocalList(
                list_version=version, update_type=update_type, local_authorization_list=entries
            )
        )
        return str(result.status)

    async def change_configuration(self, key: str, value: str) -> str:
        result = await self.send(call.ChangeConfiguration(key=key, value=value))
        return str(result.status)

    async def send_raw(
        self, frame: str, unique_id: str | None = None, cp_id: str | None = None
    ) -> Any:
        """A raw text frame; the decoded CALLRESULT/CALLERROR answering `unique_id`."""
        conn = await self.connection(cp_id)
        return await conn.send_raw(frame, unique_id)

    # ------------------------------------------------------------ security extension

    async def install_certificate(self, kind: str, pem: str) -> str:
        result = await self.send(call.InstallCertificate(certificate_type=kind, certificate=pem))
        return str(result.status)

    async def installed_certificate_ids(self, kind: str) -> tuple[str, list[dict[str, Any]]]:
        result = await self.send(call.GetInstalledCertificateIds(certificate_type=kind))
        return str(result.status), list(result.certificate_hash_data or [])

    async def delete_certificate(self, hash_data: dict[str, Any]) -> str:
        result = await self.send(call.DeleteCertificate(certificate_hash_data=hash_data))
        return str(result.status)

    async def extended_trigger(self, message: str, connector_id: int | None = None) -> str:
        result = await self.send(
            call.ExtendedTriggerMessage(requested_message=message, connector_id=connector_id)
        )
        return str(result.status)

    async def get_log(
        self, log_type: str, location: str, request_id: int, retries: int | None = None
    ) -> tuple[str, str | None]:
        result = await self.send(
            call.GetLog(
                log={"remoteLocation": location},
                log_type=log_type,
                request_id=request_id,
                retries=retries,
            )
        )
        return str(result.status), result.filename

    async def signed_update_firmware(
        self,
        request_id: int,
        location: str,
        signing_certificate: str,
        signature: str,
        retrieve: str | None = None,
    ) -> str:
        firmware = {
            "location": location,
            "retrieveDateTime": retrieve or _now(),
            "signingCertificate": signing_certificate,
            "signature": signature,
        }
        result = await self.send(
            call.SignedUpdateFirmware(request_id=request_id, firmware=firmware)
        )
        return str(result.status)

    def security_events(self) -> list[str]:
        """The types of the SecurityEventNotifications received, in order."""
        return [str(p["type"]) for p in self.actions("SecurityEventNotification")]

    @staticmethod
    def new_id() -> str:
        return str(uuid.uuid4())


async def _serve_forever(csms: CentralSystem, port: int) -> None:
    await csms.start(port)
    print(f"csms listening on {csms.url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await csms.stop()


def _tls(args: Any) -> ssl.SSLContext | None:
    """The TLS context of the flags: profile 2 with --tls-cert/--tls-key, profile 3 when
    --client-ca asks the charge points for a certificate."""
    if not args.tls_cert:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.tls_cert, args.tls_key or None)
    if args.client_ca:
        ctx.load_verify_locations(cafile=args.client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL  # profile 2 stations (password) still get in
    return ctx


def _signer(args: Any) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    if not args.sign_ca:
        return None
    cert = x509.load_pem_x509_certificate(Path(args.sign_ca).read_bytes())
    key = serialization.load_pem_private_key(Path(args.sign_ca_key).read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SystemExit(f"{args.sign_ca_key}: an EC private key is needed")
    return cert, key


def main() -> None:
    """`python -m simulation.csms --port N [--tag T ...]`: a stand-alone central system;
    `--password`, `--tls-cert/--tls-key` and `--client-ca` make it a security profile 1, 2
    or 3 CSMS, `--sign-ca/--sign-ca-key` let it answer SignCertificate."""
    import argparse
    import contextlib

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000, help="port on 127.0.0.1")
    parser.add_argument("--tag", action="append", default=[], help="an accepted id tag")
    parser.add_argument("--password", default="", help="Basic auth password (profiles 1, 2)")
    parser.add_argument("--tls-cert", default="", help="server certificate PEM (wss://)")
    parser.add_argument("--tls-key", default="", help="its private key PEM")
    parser.add_argument("--client-ca", default="", help="CA of client certificates (profile 3)")
    parser.add_argument("--sign-ca", default="", help="CA certificate that signs station CSRs")
    parser.add_argument("--sign-ca-key", default="", help="its private key PEM")
    args = parser.parse_args()
    try:
        csms = CentralSystem(
            args.tag or ["TAG-OK"],
            password=args.password,
            ssl_context=_tls(args),
            signer=_signer(args),
        )
    except (OSError, ValueError, ssl.SSLError) as exc:
        raise SystemExit(f"csms: {exc}") from None
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(csms, args.port))


if __name__ == "__main__":
    main()
