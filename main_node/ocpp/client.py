"""The OCPP 1.6J session: connection with backoff, boot rules, heartbeat, statuses, meter
values, the transaction journal and the smart-charging limits.

Theory of operation:

- One `OcppSession` runs for the life of the main. It watches every port (all ports are
  alike), folds their events into connector statuses and transactions, and journals
  StartTransaction / StopTransaction / transaction MeterValues in SQLite *before* anything
  is sent (OCPP 1.6 section 4.10), so a restart loses none of them.
- The connection loop reconnects with exponential backoff. BootNotification is sent once per
  process: nothing else goes out before it is Accepted, Pending/Rejected are retried after
  the interval the CSMS gave (section 4.2); a mere reconnect sends no new BootNotification.
- A single sender task per connection serialises every CALL (OCPP-J allows one outstanding
  CALL): journal entries first, in journal order, then live messages (StatusNotification,
  Heartbeat, Authorize, firmware/diagnostics statuses, triggered messages).
- The rest is in mixins: `session_tx` (transactions, meter values, transactionData),
  `session_auth` (authorization), `session_ops` (trigger, reset, firmware/diagnostics
  statuses) and `station_state` (stores, availability, reservations).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any

import websockets
from ocpp.charge_point import camel_to_snake_case
from ocpp.exceptions import OCPPError
from ocpp.v16 import call
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from chargeport.clock import Clock, RealClock
from chargeport.port import (
    ChargePort,
    LinkChanged,
    MeterValue,
    PortError,
    PortEvent,
    SessionEvent,
    StopReason,
)
from chargeport.tasks import RestartBudget, RestartPolicy, TaskGaveUp, supervise
from main_node.ocpp.auth import AuthStore
from main_node.ocpp.charge_point import StationChargePoint
from main_node.ocpp.connector_status import (
    ConnectorStatus,
    ConnectorStatusTracker,
    station_status,
)
from main_node.ocpp.db import transaction
from main_node.ocpp.endpoint import csms_endpoint
from main_node.ocpp.framing import MAX_FRAME_BYTES
from main_node.ocpp.journal import TransactionJournal, WriteBacklog
from main_node.ocpp.keepalive import ping_loop
from main_node.ocpp.meter_values import (
    MeterTimer,
    iso_time,
)
from main_node.ocpp.security_handlers import register as register_security
from main_node.ocpp.session_ops import Offline, SessionOps, wait_event
from main_node.ocpp.session_security import SessionSecurity
from main_node.ocpp.session_tx import SessionTransactions, Tx
from main_node.ocpp.tx_data import TxDataStore
from system_aggregator.api import StationSystem

__all__ = ["LimitSink", "OcppSession", "Offline", "SessionOptions"]

log = logging.getLogger(__name__)

LimitSink = Callable[[int, float | None], None]

# An interval a CSMS may set (BootNotification.conf, HeartbeatInterval): at most a week.
MAX_INTERVAL_S = 7 * 24 * 3600
# Inner loops restart after a failure; past this budget the session fails and its owner
# (the main's supervisor) restarts it or ends the process.
_LOOP_POLICY = RestartPolicy(initial_s=0.2, max_s=5.0, budget=5, window_s=60.0)
# Errors of the network or the peer: the connection is retried forever, with backoff.
_LINK_ERRORS = (OSError, TimeoutError, websockets.WebSocketException)


def _link_gone(exc: BaseException) -> bool:
    """While a CALL waits: the connection is gone (not the CSMS's answer, not our attempt).

    TimeoutError is an OSError, but no answer in time is the CSMS's failed attempt (4.10).
    """
    if isinstance(exc, TimeoutError):
        return False
    return isinstance(exc, websockets.ConnectionClosed | OSError)


@dataclass(frozen=True)
class SessionOptions:
    """Connection settings; `time_scale` shrinks every OCPP interval (tests use < 1)."""

    url: str
    station_id: str
    vendor: str = "chargeport"
    model: str = "chargeport-4"
    serial: str = ""
    firmware_version: str = ""
    basic_auth_password: str = ""  # security profile 1 (OCPP 1.6 security whitepaper)
    ca_file: str = ""  # security profile 2: wss:// verified against this CA
    response_timeout_s: float = 30.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    time_scale: float = 1.0
    limit_refresh_s: float = 30.0
    # Station config (TOML [ocpp]): defaults of HeartbeatInterval / MeterValueSampleInterval;
    # a value the CSMS changed is persisted and wins (OCPP 1.6 section 9.1).
    heartbeat_interval_s: int = 300
    meter_value_sample_interval_s: int = 60
    storage_retry_s: float = 2.0  # real seconds between retries of a failed SQLite write
    # A satellite not linked yet this long after start is still booting, not lost (4.9).
    boot_window_s: float = 30.0


class OcppSession(SessionTransactions, SessionOps):
    """The station's one OCPP charge point session (implements `charge_point.Host`)."""

    def __init__(
        self,
        options: SessionOptions,
        ports: Mapping[int, ChargePort],
        conn: Any,
        *,
        system: StationSystem | None = None,
        limit_sink: LimitSink | None = None,
        clock: Clock | None = None,
        on_connection: Callable[[bool], None] | None = None,
        on_storage_fault: Callable[[str | None], None] | None = None,
    ) -> None:
        defaults = {
            "HeartbeatInterval": str(options.heartbeat_interval_s),
            "MeterValueSampleInterval": str(options.meter_value_sample_interval_s),
        }
        super().__init__(
            ports, conn, clock or RealClock(), defaults, boot_window_s=options.boot_window_s
        )
        self._on_connection = on_connection  # told when the accepted CSMS connection goes up/down
        self._on_storage_fault = on_storage_fault  # told the fault (or None when it is over)
        # Journal writes that failed (disk full, read-only, I/O error), in order, retried.
        self.backlog = WriteBacklog(on_fault=self._storage_check)
        self._storage_wake = asyncio.Event()
        self._fault_shown = False
        self.options = options
        self.system = system
        self.journal = TransactionJournal(conn)
        self.auth = AuthStore(conn)
        self.tx_data = TxDataStore(conn)
        # Security profiles, keys, certificates and security events (OCPP 1.6 security ext.).
        self.security = SessionSecurity(
            self,
            conn,
            url=options.url,
            station_id=options.station_id,
            password=options.basic_auth_password,
            ca_file=options.ca_file,
        )
        self.tx_ended = asyncio.Event()
        self._reservations_wake = asyncio.Event()
        self._limit_sink = limit_sink
        self._cp: StationChargePoint | None = None
        self._boot_accepted = False
        self.boot_count = 0
        self._live: asyncio.Queue[tuple[Any, asyncio.Future[Any] | None]] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._limits_wake = asyncio.Event()
        self._meter_wake = asyncio.Event()
        self._hb_wake = asyncio.Event()
        self._last_limits: dict[int, float | None] = {}
        self._last_sent: dict[int, ConnectorStatus] = {}
        self._tg: asyncio.TaskGroup | None = None
        self.connected = asyncio.Event()  # set while an accepted connection is up
        self._timer = MeterTimer(
            list(ports), self._interval("MeterValueSampleInterval", 60), self._aligned()
        )

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Run until cancelled: port watchers, meter and limit loops, the connection."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            for cid, port in sorted(self.ports.items()):
                self._supervised(tg, functools.partial(self._watch_port, cid, port), cid)
            self._supervised(tg, self._meter_loop, "meter")
            self._supervised(tg, self._limit_loop, "limits")
            self._supervised(tg, self._reservation_loop, "reservations")
            self._supervised(tg, self._storage_loop, "storage")
            self._supervised(tg, self.async_status_loop, "statuses")
            self._supervised(tg, self.async_connection_timeout_loop, "connection-timeout")
            self._supervised(tg, self.security.async_forward_events, "security-events")
            if self.options.url:
                tg.create_task(self._connection_loop())  # handles every error itself

    def _supervised(
        self, tg: asyncio.TaskGroup, factory: Callable[[], Coroutine[Any, Any, None]], name: object
    ) -> None:
        """A loop of the session that restarts after a failure (crash-only)."""
        tg.create_task(supervise(factory, f"ocpp-{name}", log, _LOOP_POLICY))

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` in the session's task group; its failure is logged, not fatal."""
        assert self._tg is not None, "session not running"
        self._tg.create_task(self._guard(coro))

    async def _guard(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except (Offline, PortError, OCPPError, TimeoutError, OSError) as exc:
            log.warning("background OCPP work failed: %s", exc)
        except websockets.ConnectionClosed:
            log.info("connection closed during background OCPP work")
        except Exception:  # a bug in one piece of work must not take the session down
            log.exception("background OCPP work failed")

    @property
    def online(self) -> bool:
        return self._cp is not None

    # ------------------------------------------------------------ connection

    def _ws_url(self) -> str:
        return csms_endpoint(self.security.url(), self.options.station_id)

    def _connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "subprotocols": [Subprotocol("ocpp1.6")],
            "open_timeout": 10,
            "ping_interval": None,  # keepalive.ping_loop pings at WebSocketPingInterval
            # A bigger frame closes the connection with 1009 (message too big), then we
            # reconnect; nothing that size reaches the decoder (framing.py).
            "max_size": MAX_FRAME_BYTES,
        }
        kwargs.update(self.security.connect_kwargs())  # Basic auth / TLS per security profile
        return kwargs

    async def _connection_loop(self) -> None:
        """Connect, serve, and after *any* error reconnect with backoff (crash-only).

        Network and peer errors are retried forever. Anything else is a bug on our side: it
        is logged with its traceback and retried too, but past `_LOOP_POLICY`'s budget the
        session gives up (`TaskGaveUp`) so that its owner restarts it or ends the process.
        """
        delay = self.options.backoff_initial_s
        bugs = RestartBudget(_LOOP_POLICY)
        while True:
            try:
                async with connect(self._ws_url(), **self._connect_kwargs()) as ws:
                    self.security.attach(ws)
                    delay = self.options.backoff_initial_s
                    await self._serve(ws)
            except* _LINK_ERRORS as group:
                log.info("CSMS connection lost or refused: %s", group.exceptions[0])
                self.security.connection_failed(group.exceptions[0])
            except* Exception as group:
                log.error("OCPP connection failed", exc_info=group.exceptions[0])
                if bugs.failed(asyncio.get_running_loop().time()) is None:
                    raise TaskGaveUp(f"OCPP connection failed {bugs.failures} times") from group
            finally:
                self.security.detach()
                self._cp = None
                if self.connected.is_set() and self._on_connection is not None:
                    self._on_connection(False)
                self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.options.backoff_max_s)

    async def _serve(self, ws: ClientConnection) -> None:
        cp = StationChargePoint(
            self.options.station_id, ws, self, response_timeout=self.options.response_timeout_s
        )
        register_security(cp, self.security)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(cp.start())
            first = not self._boot_accepted
            if first:
                await self._boot(cp)
            self._cp = cp
            self.connected.set()
            if self._on_connection is not None:
                self._on_connection(True)
            self._queue_statuses(everything=first)
            tg.create_task(self._sender_loop(cp))
            tg.create_task(self._heartbeat_loop())
            tg.create_task(self._ping_loop(ws))

    async def _ping_loop(self, ws: ClientConnection) -> None:
        await ping_loop(
            ws,
            lambda: self._real_s(self._interval("WebSocketPingInterval", 60)),
            self._ping_wake,
            self.options.response_timeout_s,
            self.pong_received,
        )

    async def async_boot_again(self) -> None:
        """A triggered BootNotification (section 5.17) on the live connection."""
        if self._cp is not None:
            await self._boot(self._cp)

    async def _boot(self, cp: StationChargePoint) -> None:
        """BootNotification until Accepted; nothing else may be sent before (section 4.2)."""
        while True:
            self.boot_count += 1
            result = await cp.call(
                call.BootNotification(
                    charge_point_model=self.options.model,
                    charge_point_vendor=self.options.vendor,
                    charge_point_serial_number=self.options.serial or None,
                    firmware_version=self.options.firmware_version or None,
                ),
                suppress=False,
            )
            # An interval outside 1 s .. a week is no interval to follow (section 4.2).
            interval = result.interval if 0 < result.interval <= MAX_INTERVAL_S else 0
            if result.status == "Accepted":
                if interval > 0:
                    self.config.change("HeartbeatInterval", str(interval))
                self._boot_accepted = True
                return
            wait = interval or 30
            log.info("BootNotification %s; retrying in %d s", result.status, wait)
            await asyncio.sleep(self._real_s(wait * self.options.time_scale))

    # ------------------------------------------------------------ the sender

    async def _sender_loop(self, cp: StationChargePoint) -> None:
        while True:
            entry = self._next_journal_entry()
            if entry is not None:
                await self._deliver(cp, entry)
                continue
            if not self._live.empty():
                payload, fut = self._live.get_nowait()
                await self._send_live(cp, payload, fut)
                continue
            self._wake.clear()
            await wait_event(self._wake, self._real_s(self._retry_poll()))

    def _next_journal_entry(self) -> Any:
        """The journal's next due entry; none while writes wait in the backlog (the file is
        behind memory then: an entry delivered but not yet marked would go out twice)."""
        if self.backlog:
            return None
        try:
            return self.journal.next_due(self.now())
        except sqlite3.OperationalError as exc:
            self._storage_failed(exc)
            return None

    def _retry_poll(self) -> float:
        return max(0.01, self._interval("TransactionMessageRetryInterval", 60) / 4)

    async def _send_live(
        self, cp: StationChargePoint, payload: Any, fut: asyncio.Future[Any] | None
    ) -> None:
        try:
            result = await cp.call(payload, suppress=False)
        except Exception as exc:  # a CALLERROR, no answer, or an answer we cannot use
            if _link_gone(exc):
                if fut is not None and not fut.done():
                    fut.set_exception(Offline(str(exc)))
                raise
            if fut is not None and not fut.done():
                known = isinstance(exc, OCPPError | TimeoutError)
                fut.set_exception(exc if known else Offline(str(exc)))
            log.warning("%s not accepted: %s", type(payload).__name__, exc)
            return
        except BaseException as exc:
            if fut is not None and not fut.done():
                fut.set_exception(Offline(str(exc)))
            raise
        if isinstance(payload, call.StatusNotification):
            self._last_sent[payload.connector_id] = ConnectorStatus(
                payload.status, payload.error_code, payload.info
            )
        if fut is not None and not fut.done():
            fut.set_result(result)

    async def _deliver(self, cp: StationChargePoint, entry: Any) -> None:
        """Send one journal entry; a CALLERROR or no answer counts as a failed attempt."""
        payload = getattr(call, entry.action)(**camel_to_snake_case(entry.payload))
        try:
            result = await cp.call(payload, suppress=False)
        except Exception as exc:  # a CALLERROR, no answer, or an answer we cannot use
            if _link_gone(exc):
                raise  # not an attempt: the entry stays at the head (section 4.10)
            log.warning("%s not processed by the CSMS: %s", entry.action, exc)
            now = self.now()
            attempts = self.config_int("TransactionMessageAttempts", 3)
            retry_s = self._interval("TransactionMessageRetryInterval", 60)
            self.backlog.run(
                f"failed attempt of {entry.action}",
                lambda: self.journal.mark_failed_attempt(entry.id, now, attempts, retry_s),
            )
            return
        response = asdict(result) if is_dataclass(result) and not isinstance(result, type) else {}
        # Once the CSMS has it, the entry must never go out again: a mark that cannot be
        # written waits in the backlog, and the journal is not read until it is.
        self.backlog.run(
            f"delivery of {entry.action}",
            lambda: self.journal.mark_delivered(entry.id, response),
        )
        info = response.get("id_tag_info")
        if entry.action == "StartTransaction" and isinstance(info, dict):
            id_tag = str(entry.payload.get("idTag", ""))
            try:
                self.cache_id_tag(id_tag, info)
            except sqlite3.OperationalError as exc:
                log.warning("authorization cache not updated: %s", exc)
            tx = self.active_tx.get(entry.connector_id)
            if (
                info.get("status") != "Accepted"
                and tx is not None
                and tx.local_tx == entry.local_tx
            ):
                # StopTransactionOnInvalidId (section 9.1.27) defaults to true here.
                self.spawn(
                    self.ports[entry.connector_id].stop_transaction(StopReason.DE_AUTHORIZED)
                )

    async def async_request(self, payload: Any) -> Any:
        """Send a live CALL through the sender and return its result; `Offline` when offline."""
        if not self.online:
            raise Offline(type(payload).__name__)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._live.put_nowait((payload, fut))
        self._wake.set()
        return await fut

    def _post(self, payload: Any) -> None:
        """Queue a live CALL whose answer nobody waits for; dropped while offline."""
        if self.online:
            self._live.put_nowait((payload, None))
            self._wake.set()

    async def _heartbeat_loop(self) -> None:
        while True:
            self._hb_wake.clear()
            interval = self._interval("HeartbeatInterval", 300) or 3600.0
            if not await wait_event(self._hb_wake, self._real_s(interval)):
                self._post(call.Heartbeat())
            # else: the interval changed; start over with the new one

    # ------------------------------------------------------------ statuses

    def _status_payload(self, cid: int, status: ConnectorStatus) -> Any:
        return call.StatusNotification(
            connector_id=cid,
            error_code=status.error_code,
            status=status.status,
            timestamp=iso_time(self.now()),
            info=status.info,
        )

    def status_of(self, connector_id: int) -> ConnectorStatus:
        if connector_id == 0:
            station = station_status(self.operative(0))
            if self.backlog.fault is not None:  # the operator sees a storage fault here
                info = f"storage: {self.backlog.fault}"[:50]
                return ConnectorStatus(station.status, "OtherError", info)
            return station
        tracker = self.trackers.get(connector_id)
        return tracker.current if tracker else ConnectorStatus("Unavailable")

    def status_changed(self, cid: int) -> None:
        if self.status_held(cid):
            return  # its board is still booting (boot window)
        status = self.status_of(cid)
        self.status_gate.sent(cid, status)
        self._post(self._status_payload(cid, status))

    def _queue_statuses(self, everything: bool) -> None:
        """Connector 0 and every connector at boot; after a reconnect only what changed."""
        for cid in [0, *sorted(self.trackers)]:
            current = self.status_of(cid)
            if (everything or self._last_sent.get(cid) != current) and not self.status_held(cid):
                self.status_gate.sent(cid, current)
                self._post(self._status_payload(cid, current))

    # ------------------------------------------------------------ storage faults

    def _storage_failed(self, exc: sqlite3.Error) -> None:
        self.backlog.note_fault(exc)

    def _storage_check(self) -> None:
        """The backlog holds writes: tell the operator once, and let the retry loop work."""
        fault = self.backlog.fault
        if fault is None:
            return
        if not self._fault_shown:
            self._fault_shown = True
            log.error(
                "OCPP storage fault: %s; %d journal writes kept in memory, retried every %g s",
                fault,
                len(self.backlog),
                self.options.storage_retry_s,
            )
            self.status_changed(0)
            if self._on_storage_fault is not None:
                self._on_storage_fault(fault)
        self._storage_wake.set()

    async def _storage_loop(self) -> None:
        """Retry the backlog until the disk takes it; the journal then catches up in order."""
        while True:
            await self._storage_wake.wait()
            if not self.backlog.flush():
                await asyncio.sleep(self.options.storage_retry_s)
                continue
            self._storage_wake.clear()
            if self._fault_shown:
                self._fault_shown = False
                log.warning("OCPP storage works again: the journal has caught up")
                self.status_changed(0)
                if self._on_storage_fault is not None:
                    self._on_storage_fault(None)
            self._wake.set()

    # ------------------------------------------------------------ ports

    async def _watch_port(self, cid: int, port: ChargePort) -> None:
        stream = port.events()
        try:
            snapshot = await port.status()
        except PortError:
            snapshot = None
        tracker = ConnectorStatusTracker(snapshot, link_up=snapshot is not None)
        self.trackers[cid] = tracker
        if snapshot is not None and not port.info.remote:
            # Only the local port restarts with the main; a satellite still knows its own.
            # Its register (persisted by the board) is what the lost transactions ended at.
            register = snapshot.meter.energy_wh if snapshot.meter is not None else None
            running = snapshot.transaction_id
            self.backlog.run(
                f"close of connector {cid}'s lost transactions",
                lambda: self.close_lost_transactions(cid, running, register),
            )
        if snapshot is not None and snapshot.transaction_id and cid not in self.active_tx:
            self.active_tx[cid] = Tx(snapshot.transaction_id, self.now(), "")
            self._timer.start(cid, self.now())
        if snapshot is not None and snapshot.meter is not None:
            self.latest_meter[cid] = snapshot.meter
        await self.apply_persisted_availability(cid)
        await self.apply_persisted_reservations(cid, snapshot)
        self.status_changed(cid)
        async for event in stream:
            try:
                self.on_port_event(cid, event)
            except Exception:  # one event can fail only itself (crash-only)
                log.exception("connector %d: event %s not handled", cid, type(event.body).__name__)

    def on_port_event(self, cid: int, event: PortEvent) -> None:
        """Fold one port event in: status, meter, transactions, presented id tags."""
        body = event.body
        tracker = self.trackers.get(cid)
        if tracker is not None and tracker.apply(body) is not None:
            self.status_moved(cid)  # sent once it has held (MinimumStatusDuration, 4.9)
        if isinstance(body, MeterValue):
            self.latest_meter[cid] = body
        elif isinstance(body, SessionEvent):
            self._on_session(cid, body, event.timestamp)
        elif isinstance(body, LinkChanged) and body.connected and body.boot_id:
            # A board that restarted since we last linked it (perhaps while this main was down
            # too) took its transactions with it; with the same boot id its ring replays them.
            boot_id = body.boot_id

            def relinked() -> None:
                with transaction(self.conn):
                    if self.journal.board_linked(cid, boot_id):
                        self.close_lost_transactions(cid, None)

            self.backlog.run(f"link of connector {cid}", relinked)

    # ------------------------------------------------------------ meter values

    async def _meter_loop(self) -> None:
        while True:
            now = self.now()
            deadline = self._timer.next_deadline(now)
            wait = 3600.0 if deadline is None else max(0.0, deadline - now)
            self._meter_wake.clear()
            await wait_event(self._meter_wake, self._real_s(wait))
            for cid, context in self._timer.due(self.now()):
                self.send_meter_values(cid, context)

    def _aligned(self) -> float:
        return self._interval("ClockAlignedDataInterval", 0)

    def config_changed(self, key: str) -> None:
        if key in ("MeterValueSampleInterval", "ClockAlignedDataInterval"):
            self._timer.configure(
                self._interval("MeterValueSampleInterval", 60), self._aligned(), self.now()
            )
            self._meter_wake.set()
        elif key == "HeartbeatInterval":
            self._hb_wake.set()
        self.wake_for_key(key)

    def _interval(self, key: str, default: int) -> float:
        """An interval config key in (simulated) seconds, shrunk by `time_scale` (tests)."""
        seconds = min(self.config_int(key, default), MAX_INTERVAL_S)
        return float(max(0, seconds)) * self.options.time_scale

    def _real_s(self, simulated_s: float) -> float:
        """Real seconds to wait for `simulated_s` of the session's clock (`--speed N`)."""
        return simulated_s / self.clock.speed

    def journal_tx_id(self, local_tx: str) -> int | None:
        return self.journal.transaction_id(local_tx)

    # ------------------------------------------------------------ limits

    def limits_changed(self) -> None:
        self._limits_wake.set()

    async def _limit_loop(self) -> None:
        while True:
            self._push_limits()
            self._limits_wake.clear()
            await wait_event(self._limits_wake, self.options.limit_refresh_s)

    def _push_limits(self) -> None:
        """Hand each connector's profile limit (0 = station max) to the energy manager."""
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
                self._last_limits[cid] = amps  # only once pushed: a failed push is retried

    # ------------------------------------------------------------ reservations

    def reservations_changed(self) -> None:
        self._reservations_wake.set()

    async def _reservation_loop(self) -> None:
        """End each reservation at its expiryDate (section 5.13): the port goes Available."""
        while True:
            self._reservations_wake.clear()
            expiry = self.reservations.next_expiry()
            wait = 3600.0 if expiry is None else (expiry - self.now()) / self.clock.speed
            if wait > 0:
                await wait_event(self._reservations_wake, wait)
            else:
                await self.async_expire_reservations()
