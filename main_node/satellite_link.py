"""SatelliteLink: the main's side of the gRPC link to one satellite (RemotePort builds on it).

Theory of operation: one long-lived connection manager per satellite (`start`/`stop`).
  1. Resolve the serial through a `Locator`, dial it (mTLS: the certificate must name the serial).
  2. Hello. A satellite boot id other than the last one means the satellite restarted: whatever
     the port had open is closed here, with the last meter value seen (TransactionFinished,
     reason PowerLoss: the board lost power or rebooted, OCPP 1.6 Reason), then SessionFinished,
     and the event cursor restarts at 0. The ring's events up to Hello's last_seq are history
     for this main: they are replayed, except swipes (the previous main answered those).
  3. Events(after_seq = last seq seen) -> subscribed (initial metadata) -> Ready -> LinkChanged
     up. Events at or below the cursor are dropped: a replay never duplicates.
  4. Commands travel on one bidi stream, matched to replies by correlation id.
  5. When either stream ends (stream end, keepalive timeout), LinkChanged down, pending and new
     commands raise PortUnavailable, and the manager re-dials with a short backoff.
  6. Link down with a session open starts the grace timer (the satellite's own fail-safe grace,
     from Hello; real seconds). Back in time with the same boot id: nothing is closed, the
     replay carries on. Not back: TransactionFinished (reason Other: OCPP 1.6 has no "link
     lost" and the main cannot tell a dead board from a cut cable) with the last meter value,
     then SessionFinished. The satellite stopped the charge itself at the same moment; when it
     returns, its replayed TransactionFinished/SessionFinished are dropped (the `Ledger` dedupes
     by id), and a transaction it still runs after all is stopped.
  7. OUT_OF_RANGE (the ring lost our cursor): re-subscribe from Hello's last_seq, then re-read
     the status and publish what the consumers need to agree with it (`Ledger.reconcile`),
     plus a pulsed OtherError naming the gap.
Events carry this object's own seq (1, 2, ... for its lifetime) so consumers see one ordered
stream across satellite restarts; wire timestamps are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
from dataclasses import dataclass
from typing import Any

import grpc

from chargeport import PROTOCOL_VERSION
from chargeport.clock import Clock, RealClock
from chargeport.convert import (
    Command,
    command_to_proto,
    error_for_code,
    event_from_proto,
    status_from_proto,
)
from chargeport.fanout import Fanout
from chargeport.pki import channel_options
from chargeport.port import (
    InvalidArgument,
    LinkChanged,
    PortError,
    PortEvent,
    PortEventBody,
    PortInfo,
    PortUnavailable,
    SessionEvent,
    SessionEventType,
    StopReason,
)
from chargeport.tasks import OwnedTasks
from chargeport.v1 import link_pb2 as pb
from chargeport.v1 import link_pb2_grpc as pb_grpc
from main_node.locator import Address, Locator
from main_node.port_ledger import Ledger

__all__ = ["LinkRefused", "SatelliteLink"]

log = logging.getLogger(__name__)


def _is_swipe(body: PortEventBody) -> bool:
    """An id tag presented at the port (AuthRequired carrying the tag)."""
    return (
        isinstance(body, SessionEvent)
        and body.type is SessionEventType.AUTH_REQUIRED
        and body.transaction is not None
        and bool(body.transaction.id_tag)
    )


class LinkRefused(Exception):
    """The satellite answered but cannot be used (protocol version, serial)."""


@dataclass
class _Session:
    session_id: str
    connector: int
    commands: Any  # grpc.aio.StreamStreamCall
    pending: dict[int, asyncio.Future[pb.CommandReply]]
    write_lock: asyncio.Lock


class SatelliteLink:
    """The connection manager for satellite `serial`: link state, event replay, command calls."""

    def __init__(
        self,
        serial: str,
        connector_id: int,
        locator: Locator,
        *,
        station_id: str,
        main_boot_id: str,
        credentials: grpc.ChannelCredentials | None,
        keepalive_s: float = 1.0,
        handshake_timeout_s: float = 5.0,
        command_timeout_s: float = 5.0,
        retry_initial_s: float = 0.05,
        retry_max_s: float = 1.0,
        grace_period_s: float = 10.0,
        max_current_a: float = 32.0,
        phases: int = 3,
        connector_type: str = "Type2Socket",
        clock: Clock | None = None,
        protocol_version: int = PROTOCOL_VERSION,
    ) -> None:
        self.serial = serial
        self._locator = locator
        self._station_id = station_id
        self._main_boot_id = main_boot_id
        self._credentials = credentials
        self._keepalive_s = keepalive_s
        self._handshake_timeout_s = handshake_timeout_s
        self._command_timeout_s = command_timeout_s
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self.grace_period_s = grace_period_s  # replaced by the satellite's own value at Hello
        self._clock = clock or RealClock()
        self._protocol_version = protocol_version
        self._info = PortInfo(
            connector_id=connector_id,
            serial=serial,
            firmware_version="",
            max_current_a=max_current_a,
            phases=phases,
            connector_type=connector_type,
            remote=True,
        )
        self._fanout: Fanout[PortEvent] = Fanout()
        self._seq = itertools.count(1)
        self._correlation = itertools.count(1)
        self._tasks = OwnedTasks(log)  # the connection manager and grace timers
        self._task: asyncio.Task[None] | None = None  # the connection manager
        self._session: _Session | None = None
        self._changed = asyncio.Event()
        # What the main knows about the satellite; survives link blips.
        self.boot_id = ""
        self.last_seq = 0
        self.connected = False
        self.address = ""
        self.last_error = ""
        self.since = self._clock.time()
        self.handshakes = 0
        self.ledger = Ledger()
        self._grace: asyncio.Task[None] | None = None
        self._gap: str | None = None  # set on OUT_OF_RANGE: re-sync at the next connect
        self._reconcile_due = False  # set when the main closed things the satellite may run
        # Events up to here were in the ring before this main first met this satellite boot.
        self._history_seq = 0

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the connection manager (returns at once; the link comes up in the background)."""
        if self._task is None:
            self._task = self._tasks.spawn(self._run(), f"link-{self.serial}")

    async def stop(self) -> None:
        """Drop the link, end every event subscription."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        # After the manager: its exit may just have started a grace timer.
        self._cancel_grace()
        await self._tasks.cancel_all()
        self._fanout.close()

    async def wait_connected(self) -> None:
        """Return once the link is up (after Ready)."""
        while not self.connected:
            await self._changed.wait()

    async def wait_disconnected(self) -> None:
        """Return once the link is down."""
        while self.connected:
            await self._changed.wait()

    def _set_connected(self, up: bool) -> None:
        self.connected = up
        self.since = self._clock.time()
        self._changed.set()
        self._changed = asyncio.Event()

    # ------------------------------------------------------------ the command stream

    async def _call(self, cmd: Command) -> pb.CommandReply:
        s = self._session
        if s is None or not self.connected:
            raise PortUnavailable(f"satellite {self.serial}: link down")
        cid = next(self._correlation)
        req = command_to_proto(
            cmd, session_id=s.session_id, connector=s.connector, correlation_id=cid
        )
        fut: asyncio.Future[pb.CommandReply] = asyncio.get_running_loop().create_future()
        s.pending[cid] = fut
        try:
            async with asyncio.timeout(self._command_timeout_s):
                async with s.write_lock:
                    await s.commands.write(req)
                reply = await fut
        except TimeoutError:
            raise PortUnavailable(
                f"satellite {self.serial}: no reply in {self._command_timeout_s:g} s"
            ) from None
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as exc:
            raise PortUnavailable(f"satellite {self.serial}: link lost ({exc})") from None
        finally:
            s.pending.pop(cid, None)
        if reply.code:
            raise error_for_code(reply.code, reply.message)
        return reply

    # ------------------------------------------------------------ events (pure bookkeeping)

    def _publish(self, body: PortEventBody, timestamp: float | None = None) -> None:
        ts = self._clock.time() if timestamp is None else timestamp
        self._fanout.publish(PortEvent(seq=next(self._seq), timestamp=ts, body=body))

    def _on_wire_event(self, wire: pb.Event) -> None:
        if wire.seq <= self.last_seq:
            return  # already delivered before the blip
        self.last_seq = wire.seq
        try:
            event = event_from_proto(wire)
        except InvalidArgument as exc:
            log.warning("satellite %s: dropping event %d: %s", self.serial, wire.seq, exc)
            return
        if wire.seq <= self._history_seq and _is_swipe(event.body):
            # A swipe from before this main met the board: the previous main answered it (or
            # the board, not yet driven, ignored it). Replayed, it would authorize again, or
            # stop the very transaction it started (OCPP 1.6 3.5: the same tag stops).
            return
        if self.ledger.accept(event.body):
            self._publish(event.body, event.timestamp)

    def _close_open(self, reason: StopReason) -> None:
        """Close what the port had open, with the last meter value seen."""
        for body in self.ledger.close_open(reason):
            self._publish(body)

    # ------------------------------------------------------------ grace (link lost)

    def _start_grace(self) -> None:
        if self._grace is None and self.ledger.has_open:
            self._grace = self._tasks.spawn(self._close_after_grace(), f"grace-{self.serial}")

    def _cancel_grace(self) -> None:
        if self._grace is not None:
            self._grace.cancel()  # `_tasks` holds it until it has finished
            self._grace = None

    async def _close_after_grace(self) -> None:
        # Real seconds, like the satellite's timer: undo a ScaledClock's speed-up.
        await self._clock.sleep(self.grace_period_s * self._clock.speed)
        self._grace = None
        if not self.connected:
            log.warning("satellite %s: gone past its grace: closing its session", self.serial)
            self._close_open(StopReason.OTHER)
            self._reconcile_due = True

    # ------------------------------------------------------------ the connection manager

    async def _run(self) -> None:
        delay = self._retry_initial_s
        while True:
            addr = self._locator.current(self.serial)
            if addr is None:
                addr = await self._locator.wait_change(self.serial, None)
            self.address = f"{addr[0]}:{addr[1]}"
            try:
                if await self._connect_once(addr):
                    delay = self._retry_initial_s
            except grpc.aio.AioRpcError as exc:
                self._note_error(f"{exc.code().name}: {exc.details()}")
            except (LinkRefused, TimeoutError) as exc:
                self._note_error(str(exc) or "handshake timed out")
            await self._wait_retry(delay, addr)
            delay = min(delay * 2, self._retry_max_s)

    def _note_error(self, text: str) -> None:
        if text != self.last_error:
            log.warning("satellite %s: %s", self.serial, text)
        self.last_error = text

    async def _wait_retry(self, delay: float, addr: Address) -> None:
        """Sleep `delay`, or less if the locator reports a new address."""
        changed = asyncio.ensure_future(self._locator.wait_change(self.serial, addr))
        try:
            await asyncio.wait({changed}, timeout=delay)
        finally:
            changed.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await changed

    def _channel(self, addr: Address) -> grpc.aio.Channel:
        host, port = addr
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        from satellite.server import keepalive_options  # shared keepalive numbers

        options: list[tuple[str, Any]] = list(keepalive_options(self._keepalive_s))
        if self._credentials is None:
            return grpc.aio.insecure_channel(target, options=options)
        options += channel_options(self.serial)
        return grpc.aio.secure_channel(target, self._credentials, options=options)

    async def _connect_once(self, addr: Address) -> bool:
        """One session, from Hello until the link drops; True when it reached Ready."""
        async with self._channel(addr) as channel:
            stub = pb_grpc.LinkStub(channel)  # type: ignore[no-untyped-call]
            hello = await stub.Hello(
                pb.HelloRequest(
                    station_id=self._station_id,
                    main_boot_id=self._main_boot_id,
                    protocol_version=self._protocol_version,
                ),
                timeout=self._handshake_timeout_s,
            )
            self._check_hello(hello)
            if hello.satellite_boot_id != self.boot_id:
                if self.boot_id:
                    log.info(
                        "satellite %s restarted (boot %s)", self.serial, hello.satellite_boot_id
                    )
                    self._cancel_grace()
                    self._close_open(StopReason.POWER_LOSS)
                    self.ledger.forget_meter()
                self.boot_id = hello.satellite_boot_id
                self.last_seq = 0
                self._history_seq = hello.last_seq
                self._gap = None  # a fresh boot: its ring starts at 1
                self._reconcile_due = False
            elif self._gap is not None:
                self.last_seq = hello.last_seq  # the ring lost our cursor: from now on
            if hello.grace_period_s > 0:
                self.grace_period_s = hello.grace_period_s
            self._info = dataclasses.replace(
                self._info,
                firmware_version=hello.firmware_version,
                max_current_a=hello.port.max_current_a or self._info.max_current_a,
                phases=hello.port.phases or self._info.phases,
                connector_type=hello.port.connector_type or self._info.connector_type,
            )
            events = stub.Events(
                pb.EventsRequest(session_id=hello.session_id, after_seq=self.last_seq)
            )
            commands = stub.Commands()
            try:
                return await self._serve(stub, hello, events, commands)
            finally:
                events.cancel()
                commands.cancel()

    def _check_hello(self, hello: pb.HelloResponse) -> None:
        if hello.protocol_version != self._protocol_version:
            raise LinkRefused(
                f"protocol version mismatch: satellite {self.serial} speaks "
                f"v{hello.protocol_version}, this main speaks v{self._protocol_version}"
            )
        if hello.serial != self.serial:
            raise LinkRefused(f"expected satellite {self.serial}, the board says {hello.serial}")

    async def _serve(
        self, stub: pb_grpc.LinkStub, hello: pb.HelloResponse, events: Any, commands: Any
    ) -> bool:
        try:
            async with asyncio.timeout(self._handshake_timeout_s):
                await events.initial_metadata()  # subscribed: the satellite counts our stream
                await stub.Ready(pb.ReadyRequest(session_id=hello.session_id))
        except grpc.aio.AioRpcError:
            if events.done() and await events.code() == grpc.StatusCode.OUT_OF_RANGE:
                self._resync(await events.details())
            raise
        session = _Session(hello.session_id, hello.port.connector, commands, {}, asyncio.Lock())
        self._session = session
        self.handshakes += 1
        self.last_error = ""
        self._set_connected(True)
        self._cancel_grace()  # back in time: the satellite kept the session, the replay follows
        self._publish(LinkChanged(True, hello.satellite_boot_id, hello.firmware_version))
        log.info("satellite %s up (boot %s)", self.serial, hello.satellite_boot_id)
        reader = asyncio.ensure_future(self._sync_then_read(events))
        replies = asyncio.ensure_future(self._read_replies(session))
        try:
            done, _ = await asyncio.wait({reader, replies}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and (exc := task.exception()) is not None:
                    if isinstance(exc, grpc.aio.AioRpcError):
                        self._note_error(f"{exc.code().name}: {exc.details()}")
                    else:
                        log.error("satellite %s: link task failed: %r", self.serial, exc)
        finally:
            for task in (reader, replies):
                task.cancel()
            for task in (reader, replies):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._session = None
            self._set_connected(False)
            for fut in session.pending.values():
                if not fut.done():
                    fut.set_exception(PortUnavailable(f"satellite {self.serial}: link lost"))
            self._publish(LinkChanged(False, self.boot_id, self._info.firmware_version))
            log.warning("satellite %s down", self.serial)
            self._start_grace()
        return True

    async def _sync_then_read(self, events: Any) -> None:
        """Reconcile first when due (the stream buffers meanwhile), then pass events on."""
        if self._gap is not None or self._reconcile_due:
            await self._reconcile()
        try:
            async for wire in events:
                self._on_wire_event(wire)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.OUT_OF_RANGE:
                self._resync(exc.details() or "")
            raise

    def _resync(self, why: str) -> None:
        """The ring no longer holds our cursor: next time subscribe from now and reconcile."""
        log.warning("satellite %s: events lost (%s); re-syncing from status", self.serial, why)
        self._gap = f"events after #{self.last_seq} lost ({why})"

    async def _reconcile(self) -> None:
        """Re-read the status; publish what makes consumers agree; stop what we closed."""
        gap = self._gap
        try:
            status = status_from_proto((await self._call(Command("get_status"))).status)
        except PortError as exc:  # the link went down again: try at the next connect
            log.warning("satellite %s: re-sync failed: %s", self.serial, exc)
            return
        self._gap, self._reconcile_due = None, False
        plan = self.ledger.reconcile(status, gap)
        for body in plan.events:
            self._publish(body)
        if plan.stop_transaction is not None:
            log.warning(
                "satellite %s still runs transaction %s closed by the main: stopping it",
                self.serial,
                plan.stop_transaction,
            )
            try:
                await self._call(Command("stop_transaction", (StopReason.OTHER,)))
            except PortError as exc:
                log.warning("satellite %s: stop failed: %s", self.serial, exc)

    async def _read_replies(self, session: _Session) -> None:
        async for reply in session.commands:
            fut = session.pending.get(reply.correlation_id)
            if fut is not None and not fut.done():
                fut.set_result(reply)
