"""The OCPP 2.0.1 session: connection with backoff, boot, heartbeat, statuses per EVSE,
TransactionEvents journaled before sending, meter values, limits (2.0.1 Part 2 B, E, G, J, K).

Theory of operation (the same shape as the 1.6 session in `main_node.ocpp.client`):

- One `Session201` runs for the life of the main. It watches every port alike (EVSE n = port
  n, connector 1), folds session events into TransactionEvents (`tx_events.EvseTx`, pure) and
  journals them in SQLite before anything is sent, so a restart loses none.
- BootNotification once per process until Accepted; nothing but it goes out before (B01,
  B02/B03 Pending/Rejected retried after the interval). A reconnect sends no new boot.
- One sender per connection serialises CALLs (OCPP-J: one outstanding CALL): journaled
  TransactionEvents first in order, then live messages (StatusNotification, Heartbeat,
  NotifyEvent, NotifyReport, ...). Offline, live messages are dropped; statuses are resent
  after a reconnect.
- Protocol-neutral pieces are reused, not copied: the authorization list and cache
  (`main_node.ocpp.auth`), reservations, the composite-limit engine (`smart_charging`),
  availability and connector status trackers, the meter value builder, `WriteBacklog`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import sqlite3
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import websockets
from ocpp.v201 import call
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from chargeport.clock import Clock, RealClock
from chargeport.port import (
    ChargePort,
    LinkChanged,
    MeterValue,
    PortError,
    PortErrorEvent,
    PortEvent,
    SessionEvent,
    SessionEventType,
    StopReason,
)
from chargeport.security_log import security_event
from chargeport.tasks import RestartPolicy, supervise
from main_node.ocpp.auth import AuthStore
from main_node.ocpp.availability import AvailabilityStore
from main_node.ocpp.connector_status import ConnectorStatusTracker
from main_node.ocpp.db import format_datetime, parse_datetime, to_wire
from main_node.ocpp.endpoint import csms_endpoint
from main_node.ocpp.framing import MAX_FRAME_BYTES
from main_node.ocpp.journal import WriteBacklog
from main_node.ocpp.reservations import ReservationStore, decide_start
from main_node.ocpp.security_events import SecurityEventJournal, SecurityLogHandler, StoredEvent
from main_node.ocpp.smart_charging import ProfileStore
from main_node.ocpp201.authorization import Authorization
from main_node.ocpp201.device_model import DeviceModel, VarKey, catalog
from main_node.ocpp201.journal import EventJournal
from main_node.ocpp201.profiles import profile_to_engine, tx_number
from main_node.ocpp201.rpc import SUBPROTOCOL, CallRefused, Rpc
from main_node.ocpp201.security import Security201, event_name
from main_node.ocpp201.tx_events import EvseTx, TxPoints, meter_value
from system_aggregator.api import StationSystem

__all__ = ["Offline", "Options201", "Session201", "connector_status"]

log = logging.getLogger(__name__)

_LOOP_POLICY = RestartPolicy(initial_s=0.2, max_s=5.0, budget=5, window_s=60.0)
_LINK_ERRORS = (OSError, TimeoutError, websockets.WebSocketException)
MAX_INTERVAL_S = 7 * 24 * 3600
STARTUP = "StartupOfTheDevice"  # 2.0.1 Part 2 appendix: security events

# 1.6 connector status (the shared tracker) -> 2.0.1 ConnectorStatusEnumType (G01).
_STATUS = {
    "Available": "Available",
    "Preparing": "Occupied",
    "Charging": "Occupied",
    "SuspendedEV": "Occupied",
    "SuspendedEVSE": "Occupied",
    "Finishing": "Occupied",
    "Reserved": "Reserved",
    "Unavailable": "Unavailable",
    "Faulted": "Faulted",
}


def connector_status(status_16: str) -> str:
    return _STATUS.get(status_16, "Unavailable")


class Offline(Exception):
    """A CALL that needs the CSMS while there is no accepted connection."""


@dataclass(frozen=True)
class Options201:
    """Connection settings; `time_scale` shrinks every OCPP interval (tests use < 1)."""

    url: str
    station_id: str
    vendor: str = "chargeport"
    model: str = "chargeport-4"
    serial: str = ""
    firmware_version: str = ""
    basic_auth_password: str = ""  # security profile 1
    ca_file: str = ""  # security profile 2: wss:// verified against this CA
    response_timeout_s: float = 30.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    time_scale: float = 1.0
    limit_refresh_s: float = 30.0
    heartbeat_interval_s: int = 300
    meter_value_sample_interval_s: int = 60
    boot_reason: str = "PowerUp"


class Session201:
    """The station's one OCPP 2.0.1 charging-station session."""

    def __init__(
        self,
        options: Options201,
        ports: Mapping[int, ChargePort],
        conn: sqlite3.Connection,
        *,
        system: StationSystem | None = None,
        limit_sink: Callable[[int, float | None], None] | None = None,
        clock: Clock | None = None,
        on_connection: Callable[[bool], None] | None = None,
        new_tx_id: Callable[[], str] | None = None,
    ) -> None:
        self.options = options
        self.ports = ports
        self.conn = conn
        self.system = system
        self.clock = clock or RealClock()
        self._limit_sink = limit_sink
        self._on_connection = on_connection
        # Security profiles and certificates (A, M), shared with the 1.6 security extension.
        self.security = Security201(
            conn,
            url=options.url,
            station_id=options.station_id,
            password=options.basic_auth_password,
            ca_file=options.ca_file,
            now=self.now,
        )
        self.device = DeviceModel(
            conn,
            catalog(
                ports,
                heartbeat_s=options.heartbeat_interval_s,
                sample_s=options.meter_value_sample_interval_s,
                security_profile=self.security.profile,
                station_id=options.station_id,
                vendor=options.vendor,
                model=options.model,
            ),
            live=self._live_value,
            write=self._write_variable,
        )
        self.auth = AuthStore(conn)
        self.authorization = Authorization(
            self.auth, self.device, self.now, self._ask, lambda: self.online
        )
        self.availability = AvailabilityStore(conn, len(ports))
        self.reservations = ReservationStore(conn)
        self.journal = EventJournal(conn)
        # Security events (A04), shared with the 1.6 security extension: journal and handler.
        self.security_events = SecurityEventJournal(conn)
        self._started = False
        self.backlog = WriteBacklog()
        self.trackers: dict[int, ConnectorStatusTracker] = {}
        self.latest_meter: dict[int, MeterValue] = {}
        new_id = new_tx_id or (lambda: str(uuid.uuid4()))
        self.evses = {cid: EvseTx(cid, new_id) for cid in ports}
        for evse, record in self.journal.open_transactions().items():
            if evse in self.evses:
                self.evses[evse].restore(record)
        self.profiles = ProfileStore(
            conn,
            lambda cid: cid in self.evses and self.evses[cid].tx is not None,
            number_of_connectors=len(ports),
            max_current_a=max((p.info.max_current_a for p in ports.values()), default=32.0),
            transaction_of=self.profile_tx_number,
        )
        self.connected = asyncio.Event()
        self.boot_count = 0
        self.firmware_status = "Idle"
        self.log_status = "Idle"
        self._firmware_request: int | None = None
        self._log_request: int | None = None
        self._rpc: Rpc | None = None
        self._ws: ClientConnection | None = None
        self._signing = False
        self._boot_accepted = False
        self._live: asyncio.Queue[tuple[Any, asyncio.Future[Any] | None]] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._hb_wake = asyncio.Event()
        self._meter_wake = asyncio.Event()
        self._limits_wake = asyncio.Event()
        self._last_limits: dict[int, float | None] = {}
        self._last_status: dict[int, str] = {}
        self._next_sample: dict[int, float] = {}
        self._event_ids = itertools.count(1)
        self._pending_profiles: dict[int, dict[str, Any]] = {}
        self._idle = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None

    # ------------------------------------------------------------ facts

    def now(self) -> float:
        return self.clock.time()

    @property
    def online(self) -> bool:
        return self._rpc is not None and self.connected.is_set()

    def _real_s(self, simulated_s: float) -> float:
        """Real seconds to wait for `simulated_s` of the session's clock (`--speed N`)."""
        return simulated_s / self.clock.speed

    def interval(self, component: str, variable: str, instance: str | None = None) -> float:
        """An interval variable in (simulated) seconds, 0 = off, capped at a week, shrunk by
        `time_scale` (tests), as the 1.6 session does."""
        seconds = min(max(0, self.device.int_value(component, variable, instance)), MAX_INTERVAL_S)
        return float(seconds) * self.options.time_scale

    def status_of(self, evse: int) -> str:
        tracker = self.trackers.get(evse)
        status = connector_status(tracker.current.status) if tracker else "Unavailable"
        if status == "Available" and self.reservations.for_connector(evse, self.now()):
            return "Reserved"
        return status

    def _live_value(self, key: VarKey) -> str | None:
        if key.variable == "AvailabilityState":
            if key.component == "ChargingStation":
                return "Available" if self.operative(0) else "Unavailable"
            if key.evse is not None:
                return self.status_of(key.evse)
        if key.component == "SecurityCtrlr" and key.variable == "SecurityProfile":
            return str(self.security.profile)
        if key.component == "SecurityCtrlr" and key.variable == "CertificateEntries":
            return str(len(self.security.store.installed()))
        if key.component == "LocalAuthListCtrlr" and key.variable == "Entries":
            return str(self.auth.local_list_size())
        if key.component == "SmartChargingCtrlr" and key.variable == "Entries":
            return str(len(self.profiles.profiles()))
        if key.component == "EVSE" and key.variable == "Available" and key.evse is not None:
            return "true" if self.operative(key.evse) else "false"
        return None

    def _write_variable(self, key: VarKey, value: str) -> Any:
        """SetVariables of a variable the shared security core owns (A01, A05-style)."""
        if key.component == "SecurityCtrlr" and key.variable == "SecurityProfile":
            return self.security.set_profile(value)
        if key.component == "SecurityCtrlr" and key.variable == "BasicAuthPassword":
            return self.security.set_password(value)
        return None

    def reconnect_if_due(self) -> None:
        """After a SetVariablesResponse is out: a raised profile or a new password takes a
        new connection (the core falls back when it fails)."""
        ws = self._ws
        if self.security.take_reconnect() and ws is not None:
            log.info("security settings changed: reconnecting (profile %d)", self.security.profile)
            self.spawn(ws.close())

    async def async_sign_certificate(self) -> None:
        """SignCertificateRequest with a CSR of the station's key (A02); without a
        CertificateSigned within CertSigningWaitMinimum seconds it is sent again, the wait
        doubling, at most CertSigningRepeatTimes more times (A02.FR.17..19)."""
        if self._signing:
            return  # one request at a time; the running one repeats itself
        self._signing = True
        try:
            wait = self.interval("SecurityCtrlr", "CertSigningWaitMinimum")
            repeats = self.device.int_value("SecurityCtrlr", "CertSigningRepeatTimes")
            organization = self.device.value(VarKey("SecurityCtrlr", "OrganizationName"))
            for _ in range(1 + repeats):
                csr = self.security.csr(organization)
                self.security.signed.clear()
                result = await self.request(
                    call.SignCertificate(csr=csr, certificate_type="ChargingStationCertificate")
                )
                if result.status != "Accepted":
                    log.warning("SignCertificate: the CSMS answered %s", result.status)
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._real_s(wait)):
                        await self.security.signed.wait()
                        return
                wait *= 2
            log.warning("SignCertificate: no CertificateSigned came; giving up until triggered")
        finally:
            self._signing = False

    def operative(self, cid: int) -> bool:
        return self.availability.effective(cid) == "Operative"

    def transaction_id(self, evse: int) -> str | None:
        tx = self.evses[evse].tx if evse in self.evses else None
        return None if tx is None else tx.tx_id

    def evse_of_transaction(self, tx_id: str) -> int | None:
        return next((e for e, x in self.evses.items() if x.tx and x.tx.tx_id == tx_id), None)

    def profile_tx_number(self, evse: int) -> int | None:
        """The number the shared profile engine knows a 2.0.1 transactionId by."""
        tx_id = self.transaction_id(evse)
        return None if tx_id is None else tx_number(tx_id)

    def transaction_start(self, evse: int) -> float | None:
        tx = self.evses[evse].tx if evse in self.evses else None
        return None if tx is None else tx.started

    def points(self) -> TxPoints:
        return TxPoints(
            frozenset(self.device.list_value("TxCtrlr", "TxStartPoint")),
            frozenset(self.device.list_value("TxCtrlr", "TxStopPoint")),
        )

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Run until cancelled: port watchers, meter and limit loops, the connection."""
        handler = SecurityLogHandler(self.security_events, asyncio.get_running_loop(), self.now)
        handler.attach()
        try:
            await self._run()
        finally:
            handler.detach()

    async def _run(self) -> None:
        if not self._started:  # A04: the station's start is a security event
            self._started = True
            security_event(STARTUP, f"the main of station {self.options.station_id} started")
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            self._supervised(tg, self._security_wake_loop, "security-events")
            for cid, port in sorted(self.ports.items()):
                self._supervised(tg, functools.partial(self._watch_port, cid, port), cid)
            self._supervised(tg, self._meter_loop, "meter")
            self._supervised(tg, self._limit_loop, "limits")
            self._supervised(tg, self._storage_loop, "storage")
            if self.options.url:
                tg.create_task(self._connection_loop())

    def _supervised(
        self, tg: asyncio.TaskGroup, factory: Callable[[], Coroutine[Any, Any, None]], name: object
    ) -> None:
        tg.create_task(supervise(factory, f"ocpp201-{name}", log, _LOOP_POLICY))

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` in the session's task group; its failure is logged, not fatal."""
        assert self._tg is not None, "session not running"
        self._tg.create_task(self._guard(coro))

    async def _guard(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except (Offline, PortError, CallRefused, TimeoutError, OSError) as exc:
            log.warning("background OCPP 2.0.1 work failed: %s", exc)
        except websockets.ConnectionClosed:
            log.info("connection closed during background OCPP work")

    # ------------------------------------------------------------ connection

    def _connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "subprotocols": [Subprotocol(SUBPROTOCOL)],
            "open_timeout": 10,
            "max_size": MAX_FRAME_BYTES,
        }
        kwargs.update(self.security.connect_kwargs())
        return kwargs

    async def _connection_loop(self) -> None:
        delay = self.options.backoff_initial_s
        while True:
            url = csms_endpoint(self.security.url(), self.options.station_id)
            try:
                async with connect(url, **self._connect_kwargs()) as ws:
                    delay = self.options.backoff_initial_s
                    self._ws = ws
                    self.security.opened()
                    await self._serve(ws)
            except* _LINK_ERRORS as group:
                log.info("CSMS connection lost or refused: %s", group.exceptions[0])
                self.security.failed(group.exceptions[0])  # says nothing once it had opened
            except* Exception as group:  # a bug of ours: logged, the connection retried
                log.error("OCPP 2.0.1 connection failed", exc_info=group.exceptions[0])
            finally:
                self._rpc = None
                self._ws = None
                self.security.closed()
                if self.connected.is_set() and self._on_connection is not None:
                    self._on_connection(False)
                self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.options.backoff_max_s)

    async def _serve(self, ws: ClientConnection) -> None:
        from main_node.ocpp201.handlers import handlers

        rpc = Rpc(
            ws.send,
            handlers(self),
            self.spawn,
            response_timeout_s=self.options.response_timeout_s,
        )
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._reader(ws, rpc))
            if not self._boot_accepted:
                await self._boot(rpc)
            self._rpc = rpc
            self.connected.set()
            if self._on_connection is not None:
                self._on_connection(True)
            if self.security.renewal_due():  # A03: before the client certificate expires
                self.spawn(self.async_sign_certificate())
            self._last_status.clear()  # every status again after a (re)connect (G01)
            self._queue_statuses()
            tg.create_task(self._sender_loop(rpc))
            tg.create_task(self._heartbeat_loop())

    async def _reader(self, ws: ClientConnection, rpc: Rpc) -> None:
        async for raw in ws:
            await rpc.route(raw)
        raise websockets.ConnectionClosedOK(None, None)

    async def _boot(self, rpc: Rpc) -> None:
        """BootNotification until Accepted (B01); Pending / Rejected wait the interval."""
        while True:
            self.boot_count += 1
            station: dict[str, Any] = {"model": self.options.model}
            station["vendor_name"] = self.options.vendor
            if self.options.serial:
                station["serial_number"] = self.options.serial
            if self.options.firmware_version:
                station["firmware_version"] = self.options.firmware_version
            result = await rpc.call(
                call.BootNotification(charging_station=station, reason=self.options.boot_reason)
            )
            interval = result.interval if 0 < result.interval <= MAX_INTERVAL_S else 0
            if result.status == "Accepted":
                if interval > 0:
                    self.device.set(VarKey("OCPPCommCtrlr", "HeartbeatInterval"), str(interval))
                self._boot_accepted = True
                return
            wait = interval or 30
            log.info("BootNotification %s; retrying in %d s", result.status, wait)
            await asyncio.sleep(self._real_s(wait * self.options.time_scale))

    async def async_boot_again(self) -> None:
        if self._rpc is not None:
            await self._boot(self._rpc)

    # ------------------------------------------------------------ the sender

    async def _security_wake_loop(self) -> None:
        """A journaled security event wakes the sender."""
        while True:
            await self.security_events.added.wait()
            self.security_events.added.clear()
            self._wake.set()

    async def _sender_loop(self, rpc: Rpc) -> None:
        while True:
            entry = None if self.backlog else self.journal.next_due(self.now())
            if entry is not None:
                await self._deliver(rpc, entry)
                continue
            event = self.security_events.next()
            if event is not None:
                await self._send_security_event(rpc, event)
                continue
            if not self._live.empty():
                payload, fut = self._live.get_nowait()
                await self._send_live(rpc, payload, fut)
                continue
            self._wake.clear()
            retry = self.interval("OCPPCommCtrlr", "MessageAttemptInterval", "TransactionEvent")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._real_s(max(0.01, retry / 4))):
                    await self._wake.wait()

    async def _deliver(self, rpc: Rpc, entry: Any) -> None:
        try:
            result = await rpc.call_checked("TransactionEvent", entry.payload)
        except (CallRefused, TimeoutError) as exc:
            log.warning("TransactionEvent not processed by the CSMS: %s", exc)
            attempts = self.device.int_value("OCPPCommCtrlr", "MessageAttempts", "TransactionEvent")
            retry = self.interval("OCPPCommCtrlr", "MessageAttemptInterval", "TransactionEvent")
            now = self.now()
            self.backlog.run(
                "failed attempt of TransactionEvent",
                lambda: self.journal.mark_failed_attempt(entry.id, now, attempts, retry),
            )
            return
        self.backlog.run(
            "delivery of TransactionEvent", lambda: self.journal.mark_delivered(entry.id)
        )
        info = to_wire(result.id_token_info)
        token = entry.payload.get("idToken")
        if isinstance(info, dict) and isinstance(token, dict):
            self.authorization.cache(token, info)
            if info.get("status") != "Accepted":
                self._invalid_token(entry.evse, entry.tx_id)

    async def _send_security_event(self, rpc: Rpc, event: StoredEvent) -> None:
        """SecurityEventNotification (A04), in journal order; delivered once answered."""
        try:
            await rpc.call(
                call.SecurityEventNotification(
                    type=event_name(event.kind),
                    timestamp=format_datetime(event.at),
                    tech_info=event.detail or None,
                )
            )
        except CallRefused as exc:
            log.warning("security event %s refused by the CSMS: %s", event.kind, exc)
        except TimeoutError:
            return  # no answer: tried again
        self.security_events.delivered(event.id)

    def _invalid_token(self, evse: int, tx_id: str) -> None:
        """E05: the CSMS refused the token of a running transaction (StopTxOnInvalidId)."""
        if self.transaction_id(evse) == tx_id and self.device.bool_value(
            "TxCtrlr", "StopTxOnInvalidId"
        ):
            self.spawn(self.ports[evse].stop_transaction(StopReason.DE_AUTHORIZED))

    async def _send_live(self, rpc: Rpc, payload: Any, fut: asyncio.Future[Any] | None) -> None:
        try:
            result = await rpc.call(payload)
        except (CallRefused, TimeoutError) as exc:
            log.warning("%s not accepted: %s", type(payload).__name__, exc)
            if fut is not None and not fut.done():
                fut.set_exception(exc)
            return
        except BaseException as exc:
            if fut is not None and not fut.done():
                fut.set_exception(Offline(str(exc)))
            raise
        if fut is not None and not fut.done():
            fut.set_result(result)

    async def request(self, payload: Any) -> Any:
        """A live CALL through the sender; `Offline` without a connection."""
        if not self.online:
            raise Offline(type(payload).__name__)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._live.put_nowait((payload, fut))
        self._wake.set()
        return await fut

    def post(self, payload: Any) -> None:
        """A live CALL nobody waits for; dropped while offline."""
        if self.online:
            self._live.put_nowait((payload, None))
            self._wake.set()

    async def _heartbeat_loop(self) -> None:
        while True:
            self._hb_wake.clear()
            interval = self.interval("OCPPCommCtrlr", "HeartbeatInterval") or 3600.0
            try:
                async with asyncio.timeout(self._real_s(interval)):
                    await self._hb_wake.wait()
            except TimeoutError:
                self.post(call.Heartbeat())

    def variable_changed(self, key: VarKey) -> None:
        """A SetVariables result applies at once (B05.FR.xx): wake the loop that reads it."""
        if key.component == "OCPPCommCtrlr" and key.variable == "HeartbeatInterval":
            self._hb_wake.set()
        elif key.component in ("SampledDataCtrlr", "AlignedDataCtrlr"):
            self._meter_wake.set()

    # ------------------------------------------------------------ statuses (G01) and events

    def status_payload(self, evse: int) -> Any:
        return call.StatusNotification(
            timestamp=format_datetime(self.now()),
            connector_status=self.status_of(evse),
            evse_id=evse,
            connector_id=1,
        )

    def status_changed(self, evse: int) -> None:
        status = self.status_of(evse)
        if self._last_status.get(evse) != status and self.online:
            self._last_status[evse] = status
            self.post(self.status_payload(evse))

    def _queue_statuses(self) -> None:
        for evse in sorted(self.trackers):
            self.status_changed(evse)

    def _notify_fault(self, evse: int, error: PortErrorEvent) -> None:
        """A port fault (or its end) as NotifyEvent (N07) on the Connector's Problem."""
        data: dict[str, Any] = {
            "event_id": next(self._event_ids),
            "timestamp": format_datetime(self.now()),
            "trigger": "Delta",
            "actual_value": "true" if error.active else "false",
            "tech_code": error.code.value[:50],
            "tech_info": error.message[:500] or None,
            "cleared": not error.active,
            "event_notification_type": "HardWiredNotification",
            "component": {"name": "Connector", "evse": {"id": evse, "connector_id": 1}},
            "variable": {"name": "Problem"},
        }
        self.post(
            call.NotifyEvent(generated_at=format_datetime(self.now()), seq_no=0, event_data=[data])
        )

    # ------------------------------------------------------------ ports

    async def _watch_port(self, evse: int, port: ChargePort) -> None:
        stream = port.events()
        try:
            snapshot = await port.status()
        except PortError:
            snapshot = None
        self.trackers[evse] = ConnectorStatusTracker(snapshot, link_up=snapshot is not None)
        if snapshot is not None and snapshot.meter is not None:
            self.latest_meter[evse] = snapshot.meter
        if snapshot is not None and not port.info.remote and not snapshot.transaction_id:
            self._close_lost(evse)
        if not self.operative(evse):
            with contextlib.suppress(PortError):
                await port.disable()
        self.status_changed(evse)
        async for event in stream:
            try:
                self.on_port_event(evse, event)
            except Exception:  # one event can fail only itself (crash-only)
                log.exception("EVSE %d: event %s not handled", evse, type(event.body).__name__)

    def _close_lost(self, evse: int) -> None:
        """The board restarted (the local one with the main): its transaction ended
        (PowerLoss), at the last reading it reported."""
        mv = self.latest_meter.get(evse)
        end = self._meter(evse, "Transaction.End", "TxEndedMeasurands", mv)
        payload = self.evses[evse].end_lost(self.now(), not self.online, end)
        if payload is None:
            return
        self.backlog.run(
            f"end of EVSE {evse}'s lost transaction",
            lambda: self.journal.enqueue(evse, [payload], None),
        )
        self._transaction_over(evse)

    def on_port_event(self, evse: int, event: PortEvent) -> None:
        body = event.body
        tracker = self.trackers.get(evse)
        if tracker is not None and tracker.apply(body) is not None:
            self.status_changed(evse)
        if isinstance(body, MeterValue):
            self.latest_meter[evse] = body
        elif isinstance(body, SessionEvent):
            self._on_session(evse, body, event.timestamp)
        elif isinstance(body, PortErrorEvent):
            self._notify_fault(evse, body)
        elif isinstance(body, LinkChanged) and body.connected and body.boot_id:
            # A board that restarted since we last linked it (perhaps while this main was down
            # too) took its transaction with it; the same boot id resumes its events instead.
            try:
                restarted = self.journal.board_linked(evse, body.boot_id)
            except sqlite3.Error as exc:
                log.warning("EVSE %d: board link not recorded: %s", evse, exc)
                restarted = False
            if restarted:
                self._close_lost(evse)

    def _meter(
        self,
        evse: int,
        context: str,
        variable: str,
        mv: MeterValue | None,
        component: str = "SampledDataCtrlr",
    ) -> dict[str, Any] | None:
        if mv is None or not self.device.bool_value(component, "Enabled"):
            return None
        measurands = self.device.list_value(component, variable)
        return meter_value(self.now(), mv, context, measurands)

    def _on_session(self, evse: int, ev: SessionEvent, ts: float) -> None:
        machine = self.evses[evse]
        data = ev.transaction
        if data is not None and data.meter_wh is not None:
            mv = self.latest_meter.get(evse)
            if mv is None or mv.energy_wh != data.meter_wh:
                mv = MeterValue(energy_wh=data.meter_wh, power_w=0.0)
            self.latest_meter[evse] = mv
        if ev.type is SessionEventType.AUTH_REQUIRED and data is not None and data.id_tag:
            self.spawn(self.async_present(evse, data.id_tag))
            return
        mv = self.latest_meter.get(evse)
        before = machine.tx
        payloads = machine.on_event(
            ev.type,
            data,
            self.points(),
            self.now(),
            not self.online,
            begin=self._meter(evse, "Transaction.Begin", "TxStartedMeasurands", mv),
            end=self._meter(evse, "Transaction.End", "TxEndedMeasurands", mv),
        )
        if data is not None and data.reservation_id is not None:
            with contextlib.suppress(sqlite3.Error):
                self.reservations.remove(data.reservation_id)
        if not payloads:
            if machine.tx is not None:
                record = machine.tx
                self.backlog.run("open transaction", lambda: self.journal.save_open(evse, record))
            return
        record_after = machine.tx
        self.backlog.run(
            f"TransactionEvent on EVSE {evse}",
            lambda: self.journal.enqueue(evse, payloads, record_after),
        )
        if before is None and machine.tx is not None:
            self._install_pending_profile(evse, machine.tx.tx_id)
            self._next_sample[evse] = self.now() + self.interval(
                "SampledDataCtrlr", "TxUpdatedInterval"
            )
            self._meter_wake.set()
        if before is not None and machine.tx is None:
            self._transaction_over(evse)
        self._limits_wake.set()
        self._wake.set()

    def _transaction_over(self, evse: int) -> None:
        """What ends with a transaction: its samples, TxProfiles, a Scheduled availability."""
        self._next_sample.pop(evse, None)
        self.profiles.transaction_ended(evse)
        self._idle.set()
        self._limits_wake.set()
        self._wake.set()
        if self._tg is not None:
            self.spawn(self._apply_scheduled_availability(evse))

    async def _apply_scheduled_availability(self, evse: int) -> None:
        busy = {e for e, m in self.evses.items() if m.tx is not None}
        await self.apply_availability(self.availability.transaction_ended(evse, busy))

    async def apply_availability(self, changes: Mapping[int, str]) -> None:
        for cid, state in sorted(changes.items()):
            targets = sorted(self.ports) if cid == 0 else [cid]
            for target in targets:
                port = self.ports.get(target)
                if port is None:
                    continue
                try:
                    await (port.enable() if state == "Operative" else port.disable())
                except PortError as exc:
                    log.warning("availability change on EVSE %d failed: %s", target, exc)

    # ------------------------------------------------------------ authorization (C)

    async def _ask(self, token: dict[str, Any]) -> dict[str, Any] | None:
        """Authorize (C01) when online; None when the CSMS cannot be asked or does not answer."""
        if not self.online:
            return None
        try:
            result = await self.request(call.Authorize(id_token=token))
        except (Offline, CallRefused, TimeoutError):
            return None
        info: dict[str, Any] = to_wire(result.id_token_info)
        return info

    async def async_present(self, evse: int, tag: str) -> None:
        """An IdToken presented at a port: stop its own transaction, or authorize a new one."""
        token = {"idToken": tag, "type": "ISO14443"}
        machine = self.evses[evse]
        if machine.tx is not None and machine.tx.id_token and machine.tx.id_token["idToken"] == tag:
            await self.ports[evse].stop_transaction(StopReason.LOCAL)
            return
        allowed, reservation = self.reservation_check(
            evse, tag, self.authorization.local_parent(tag)
        )
        if not allowed:
            log.info("EVSE %d is reserved for another IdToken", evse)
            return
        if await self.authorization.decide(token) != "Accepted":
            return
        machine.authorize(token)
        await self.ports[evse].authorize(tag, reservation)

    def reservation_check(self, evse: int, tag: str, parent: str | None) -> tuple[bool, int | None]:
        """May `tag` charge on the EVSE, and which reservation does it use (H01 / H03): the
        EVSE's own, or one made for no EVSE in particular, which keeps a free EVSE for each."""
        statuses = {e: t.current.status for e, t in self.trackers.items()}
        allowed, used = decide_start(
            evse, tag[:20], parent, statuses, self.reservations.active(self.now()), self.now()
        )
        return allowed, None if used is None else used.reservation_id

    # ------------------------------------------------------------ meter values (J)

    async def _meter_loop(self) -> None:
        """TxUpdatedInterval samples as TransactionEvent Updated (J02); clock-aligned readings
        every AlignedDataCtrlr.Interval (J01): in a transaction as TransactionEvent Updated
        (MeterValueClock), outside one as MeterValues."""
        aligned_at: float | None = None
        while True:
            now = self.now()
            interval = self.interval("SampledDataCtrlr", "TxUpdatedInterval")
            due = [e for e, t in self._next_sample.items() if interval > 0 and t <= now]
            for evse in due:
                self._next_sample[evse] = now + interval
                self.sample(evse, "MeterValuePeriodic", "Sample.Periodic")
            aligned = self.interval("AlignedDataCtrlr", "Interval")
            if aligned <= 0 or not self.device.bool_value("AlignedDataCtrlr", "Enabled"):
                aligned_at = None
            elif aligned_at is None or aligned_at - now > aligned:
                aligned_at = (now // aligned + 1) * aligned  # the next clock-aligned instant
            elif aligned_at <= now:
                aligned_at = (now // aligned + 1) * aligned
                for evse in sorted(self.ports):
                    self.clock_aligned(evse)
            upcoming = [t for t in self._next_sample.values()] if interval > 0 else []
            if aligned_at is not None:
                upcoming.append(aligned_at)
            wait = (min(upcoming) - now) if upcoming else 3600.0
            self._meter_wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._real_s(max(0.0, wait)) + 0.001):
                    await self._meter_wake.wait()

    def clock_aligned(self, evse: int) -> None:
        """One clock-aligned reading of an EVSE (J01)."""
        if self.sample(evse, "MeterValueClock", "Sample.Clock", "AlignedDataCtrlr", "Measurands"):
            return
        meter = self._meter(
            evse, "Sample.Clock", "Measurands", self.latest_meter.get(evse), "AlignedDataCtrlr"
        )
        if meter is not None:
            self.post(call.MeterValues(evse_id=evse, meter_value=[_snake(meter)]))

    async def async_meter_values(self, evse: int, context: str) -> None:
        """A MeterValues message with the EVSE's latest reading (F06 TriggerMessage)."""
        meter = self._meter(
            evse, context, "Measurands", self.latest_meter.get(evse), "AlignedDataCtrlr"
        )
        if meter is not None:
            await self.request(call.MeterValues(evse_id=evse, meter_value=[_snake(meter)]))

    def sample(
        self,
        evse: int,
        trigger: str,
        context: str,
        component: str = "SampledDataCtrlr",
        variable: str = "TxUpdatedMeasurands",
    ) -> bool:
        """Journal an Updated TransactionEvent with the EVSE's latest reading."""
        machine = self.evses[evse]
        if machine.tx is None:
            return False
        mv = self.latest_meter.get(evse)
        meter = self._meter(evse, context, variable, mv, component)
        payload = machine.updated(trigger, self.now(), not self.online, meter)
        if payload is None:
            return False
        record = machine.tx
        self.backlog.run(
            f"TransactionEvent on EVSE {evse}",
            lambda: self.journal.enqueue(evse, [payload], record),
        )
        self._wake.set()
        return True

    # ------------------------------------------------------------ limits (K)

    def limits_changed(self) -> None:
        self._limits_wake.set()

    async def _limit_loop(self) -> None:
        while True:
            self._push_limits()
            self._limits_wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.limit_refresh_s):
                    await self._limits_wake.wait()

    def _push_limits(self) -> None:
        """Each EVSE's composite limit (0 = station max) to the energy manager, which sets it
        on the gun through the ChargePort contract (local or satellite alike)."""
        if self._limit_sink is None:
            return
        now = self.now()
        for cid in [0, *sorted(self.ports)]:
            if cid == 0:
                amps = self.profiles.station_limit(now)
            else:
                amps = self.profiles.limit(cid, now, self.transaction_start(cid))
            if self._last_limits.get(cid, -1.0) != amps:
                self._limit_sink(cid, amps)
                self._last_limits[cid] = amps

    def install_profile(self, evse: int, profile: dict[str, Any]) -> str:
        """SetChargingProfile (K01) on the shared engine; the limits follow at once."""
        engine = profile_to_engine(profile)
        engine["original201"] = profile
        status = self.profiles.set(evse, engine, self.now())
        if status == "Accepted":
            self.limits_changed()
        return status

    def pending_profile(self, evse: int, profile: dict[str, Any]) -> None:
        """The TxProfile of a RequestStartTransaction: installed when the transaction starts."""
        tx_id = self.transaction_id(evse)
        if tx_id is not None:
            self.install_profile(evse, {**profile, "transactionId": tx_id})
        else:
            self._pending_profiles[evse] = profile

    def _install_pending_profile(self, evse: int, tx_id: str) -> None:
        profile = self._pending_profiles.pop(evse, None)
        if (
            profile is not None
            and self.install_profile(evse, {**profile, "transactionId": tx_id}) != "Accepted"
        ):
            log.warning("TxProfile from RequestStartTransaction rejected on EVSE %d", evse)

    async def wait_idle(self) -> None:
        """Until some transaction ends (Reset OnIdle waits for all of them, B11)."""
        self._idle.clear()
        await self._idle.wait()

    # ------------------------------------------------------------ storage

    async def _storage_loop(self) -> None:
        while True:
            if self.backlog and not self.backlog.flush():
                log.error("OCPP 2.0.1 storage fault: %s", self.backlog.fault)
            await asyncio.sleep(2.0)

    async def async_firmware_status(self, status: str, request_id: int | None = None) -> None:
        """FirmwareStatusNotification (L01) for a rollout the aggregator reports."""
        self.firmware_status = status
        if request_id is not None:
            self._firmware_request = request_id
        rid = None if status == "Idle" else self._firmware_request
        self.post(call.FirmwareStatusNotification(status=status, request_id=rid))

    async def async_log_status(self, status: str, request_id: int | None = None) -> None:
        """LogStatusNotification (N01); the aggregator's UploadFailed is 2.0.1's UploadFailure."""
        status = {"UploadFailed": "UploadFailure"}.get(status, status)
        self.log_status = status
        if request_id is not None:
            self._log_request = request_id
        rid = None if status == "Idle" else self._log_request
        self.post(call.LogStatusNotification(status=status, request_id=rid))

    def parse_time(self, text: str) -> float:
        return parse_datetime(text)


def _snake(payload: dict[str, Any]) -> dict[str, Any]:
    from ocpp.charge_point import camel_to_snake_case

    converted: dict[str, Any] = camel_to_snake_case(payload)
    return converted
