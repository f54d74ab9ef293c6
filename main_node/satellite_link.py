"""SatelliteLink: the main's side of the gRPC link to one satellite (RemotePort builds on it).

The rules live in the sans-IO `main_node.link_core.MainLinkCore` (handshake, resume or
snapshot, liveness, what is open); this module dials, moves messages, runs timers and
executes what the core returns. One long-lived connection manager per satellite:
  1. Resolve the serial through a `Locator`, dial it (mTLS: the certificate must name the serial).
  2. Hello -> core.on_hello: refuse, close what a restarted satellite had open, and choose
     Events(after the last seq) for a blip or Events(snapshot) for a boot new to this main.
  3. Events open (initial metadata) -> Ready (carrying the desired availability) -> for a
     snapshot session, the transaction records and the Snapshot, then LinkChanged up, then the
     rest of the desired state (limit, reservation) is pushed again.
  4. Commands travel on one bidi stream, matched to replies by correlation id; heartbeats go
     on it too. A ticker feeds core.tick: a satellite silent for liveness_s is down, whatever
     the socket says (a SIGSTOPped process keeps its connections open).
  5. When either stream ends or the core says down: LinkChanged down, pending and new commands
     raise PortUnavailable, the manager re-dials with a short backoff.
  6. Link down with a session open starts the grace timer (the satellite's own grace, from
     Hello; real seconds); past it, core.grace_expired closes the session (reason Other) and
     a satellite that still runs the transaction when it returns is told to stop.
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
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from chargeport import PROTOCOL_VERSION
from chargeport.clock import Clock, RealClock
from chargeport.convert import (
    Command,
    GetStatus,
    Reserve,
    SetLimit,
    StopTransaction,
    command_to_proto,
    error_for_code,
    error_for_rpc,
    status_from_proto,
)
from chargeport.fanout import Fanout
from chargeport.pki import channel_options
from chargeport.port import (
    LinkChanged,
    PortError,
    PortEvent,
    PortEventBody,
    PortInfo,
    PortUnavailable,
    StopReason,
)
from chargeport.tasks import OwnedTasks
from chargeport.v1 import link_pb2 as pb
from chargeport.v1 import link_pb2_grpc as pb_grpc
from main_node.link_core import (
    DEFAULT_LIVENESS_S,
    Alarm,
    LinkDown,
    LinkRefused,
    MainLinkCore,
    Publish,
    SendHeartbeat,
    Warn,
)
from main_node.locator import Address, Locator
from main_node.port_ledger import Ledger
from main_node.tls_probe import looks_like_tls_failure, probe_peer

__all__ = ["LinkRefused", "SatelliteLink"]


def _cause(text: str) -> str:
    """An error text without its parenthesised details: what makes two errors the same."""
    while (bare := re.sub(r"\([^()]*\)", "", text)) != text:  # inner parentheses first
        text = bare
    return text.strip()


log = logging.getLogger(__name__)


async def _reap(task: asyncio.Future[Any]) -> None:
    """Wait for a cancelled helper task to end, whatever it raised; but a cancel of the task
    doing the waiting (stop() while the link goes down) is kept, never swallowed."""
    try:
        await task
    except asyncio.CancelledError:
        me = asyncio.current_task()
        if me is not None and me.cancelling():
            raise
    except Exception:  # the helper's own failure was already reported where it happened
        pass


class _SilentSatellite(Exception):
    """The core declared the satellite down (no heartbeat within liveness_s)."""


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
        liveness_s: float = DEFAULT_LIVENESS_S,
        max_current_a: float = 32.0,
        phases: int = 3,
        connector_type: str = "Type2Socket",
        clock: Clock | None = None,
        protocol_version: int = PROTOCOL_VERSION,
        monotonic: Callable[[], float] = time.monotonic,
        pki_dir: str | Path | None = None,
        refused_retry_s: float = 10.0,
        max_held_refusals: int = 5,
        hold_stop_s: float = 0.0,
    ) -> None:
        self.serial = serial
        # > 0: past the grace, a lost board's StopTransaction waits this long (real seconds)
        # for the board's own end register instead of going out with the last reading seen.
        self.hold_stop_s = hold_stop_s
        # With mTLS: where the station CA is, to explain a refused certificate in words.
        self._pki_dir = pki_dir
        self._refused_retry_s = refused_retry_s
        self._max_held_refusals = max_held_refusals
        self._held_refusals = 0  # consecutive "another main holds this satellite" answers
        self._alarms: set[str] = set()  # ERRORs said once
        self._locator = locator
        self._credentials = credentials
        self._keepalive_s = keepalive_s
        self._handshake_timeout_s = handshake_timeout_s
        self._command_timeout_s = command_timeout_s
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self.grace_period_s = grace_period_s  # replaced by the satellite's own value at Hello
        self._clock = clock or RealClock()
        self._monotonic = monotonic  # liveness is real time, whatever the station's clock
        self.core = MainLinkCore(
            serial,
            station_id=station_id,
            main_boot_id=main_boot_id,
            protocol_version=protocol_version,
            liveness_s=liveness_s,
        )
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
        self.connected = False
        self.address = ""
        self.last_error = ""
        self.since = self._clock.time()
        self.handshakes = 0
        self.attempts = 0  # connection attempts made (tests wait for refusals by counting them)
        self._grace: asyncio.Task[None] | None = None
        self.meter_public_key = ""  # the board's OCMF key, from Hello (diagnostics, the label)

    # What the main knows about the satellite (the core holds it; it survives link blips).
    @property
    def boot_id(self) -> str:
        return self.core.boot_id

    @property
    def last_seq(self) -> int:
        return self.core.last_seq

    @property
    def ledger(self) -> Ledger:
        return self.core.ledger

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
        return await self._call_on(s, cmd)

    async def _call_on(self, s: _Session, cmd: Command) -> pb.CommandReply:
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
                self.core.sent(self._monotonic())
                reply = await fut
        except TimeoutError:
            raise PortUnavailable(
                f"satellite {self.serial}: no reply to {cmd.name} in {self._command_timeout_s:g} s"
            ) from None
        except grpc.aio.AioRpcError as exc:
            raise error_for_rpc(f"satellite {self.serial}: {cmd.name}", exc) from None
        except (grpc.aio.UsageError, asyncio.InvalidStateError) as exc:
            reason = str(exc) or type(exc).__name__
            raise PortUnavailable(
                f"satellite {self.serial}: {cmd.name}: link lost ({reason})"
            ) from None
        finally:
            s.pending.pop(cid, None)
        if reply.code:
            reason = reply.message or "no reason given"
            raise error_for_code(reply.code, f"satellite {self.serial}: {cmd.name}: {reason}")
        return reply

    # ------------------------------------------------------------ events

    def _publish(self, body: PortEventBody, timestamp: float | None = None) -> None:
        ts = self._clock.time() if timestamp is None else timestamp
        self._fanout.publish(PortEvent(seq=next(self._seq), timestamp=ts, body=body))

    def _execute(self, out: Sequence[Publish | Warn | Alarm]) -> None:
        for effect in out:
            if isinstance(effect, Publish):
                self._publish(effect.body, effect.timestamp)
            elif isinstance(effect, Alarm):
                if effect.message not in self._alarms:
                    self._alarms.add(effect.message)
                    log.error("%s", effect.message)
            else:
                log.warning("satellite %s: %s", self.serial, effect.message)

    # ------------------------------------------------------------ grace (link lost)

    def _start_grace(self) -> None:
        if self._grace is None:
            self._grace = self._tasks.spawn(self._close_after_grace(), f"grace-{self.serial}")

    def _cancel_grace(self) -> None:
        if self._grace is not None:
            self._grace.cancel()  # `_tasks` holds it until it has finished
            self._grace = None

    async def _close_after_grace(self) -> None:
        # Real seconds, like the satellite's timer: undo a ScaledClock's speed-up.
        await self._clock.sleep(self.grace_period_s * self._clock.speed)
        if self.connected:
            self._grace = None
            return
        hold = self.hold_stop_s > 0
        self._execute(self.core.grace_expired(hold=hold))
        if not self.core.holding:
            self._grace = None
            log.warning("satellite %s: gone past its grace: closing its session", self.serial)
            return
        # The board stopped charging itself (its fail-safe) and journals the end register:
        # its StopTransaction waits for it rather than going out with a reading too early.
        log.warning(
            "satellite %s: gone past its grace: its transaction's stop waits up to %g s for the "
            "board's own end register",
            self.serial,
            self.hold_stop_s,
        )
        await self._clock.sleep(self.hold_stop_s * self._clock.speed)
        self._grace = None
        if not self.connected:
            log.warning("satellite %s: not back in %g s: closing", self.serial, self.hold_stop_s)
            self._execute(self.core.hold_expired())

    # ------------------------------------------------------------ the connection manager

    async def _run(self) -> None:
        delay = self._retry_initial_s
        while True:
            addr = self._locator.current(self.serial)
            if addr is None:
                addr = await self._locator.wait_change(self.serial, None)
            self.address = f"{addr[0]}:{addr[1]}"
            self.attempts += 1
            try:
                if await self._connect_once(addr):
                    delay = self._retry_initial_s
                    self._held_refusals = 0
            except grpc.aio.AioRpcError as exc:
                if exc.code() is grpc.StatusCode.ALREADY_EXISTS:
                    if self._held_by_another_main(exc.details() or ""):
                        return  # bounded: a person must stop one of the two mains
                    delay = max(delay, self._refused_retry_s)
                elif await self._explain_refusal(addr, exc):
                    # A certificate needs a person, not a fast retry.
                    delay = max(delay, self._refused_retry_s)
                else:
                    self._note_error(f"{exc.code().name}: {exc.details()}")
            except (LinkRefused, TimeoutError) as exc:
                self._note_error(str(exc) or "handshake timed out")
            await self._wait_retry(delay, addr)
            delay = min(delay * 2, self._retry_max_s)

    def _held_by_another_main(self, details: str) -> bool:
        """The satellite serves another main; True once this main should stop asking."""
        self._held_refusals += 1
        if details != self.last_error:
            log.error("%s (this main: station %s)", details, self.core.station_id)
        self.last_error = details
        if self._held_refusals < self._max_held_refusals:
            return False
        log.error(
            "satellite %s: refused %d times because another main drives it; this main stops "
            "trying (restart it once only one main runs)",
            self.serial,
            self._held_refusals,
        )
        return True

    async def _explain_refusal(self, addr: Address, exc: grpc.aio.AioRpcError) -> bool:
        """A failed TLS handshake: name the cause once, at ERROR (gRPC's text names none)."""
        details = exc.details() or ""
        if self._pki_dir is None or exc.code() is not grpc.StatusCode.UNAVAILABLE:
            return False
        if not looks_like_tls_failure(details):
            return False
        why = await asyncio.to_thread(
            probe_peer, addr[0], addr[1], serial=self.serial, pki_dir=self._pki_dir
        )
        if why is None:
            return False
        if why != self.last_error:
            log.error("%s; retrying every %g s", why, self._refused_retry_s)
        self.last_error = why
        return True

    def _note_error(self, text: str) -> None:
        # Logged once per cause: gRPC's text alternates details in parentheses ("Socket
        # closed", "Connection reset") for one and the same unreachable board.
        if _cause(text) != _cause(self.last_error):
            log.warning("satellite %s: %s", self.serial, text)
        self.last_error = text

    async def _wait_retry(self, delay: float, addr: Address) -> None:
        """Sleep `delay`, or less if the locator reports a new address."""
        changed = asyncio.ensure_future(self._locator.wait_change(self.serial, addr))
        try:
            await asyncio.wait({changed}, timeout=delay)
        finally:
            changed.cancel()
            await _reap(changed)

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
            hello = await stub.Hello(self.core.hello_request(), timeout=self._handshake_timeout_s)
            known = self.core.boot_id
            plan = self.core.on_hello(hello)
            if known and known != hello.satellite_boot_id:
                log.info("satellite %s restarted (boot %s)", self.serial, hello.satellite_boot_id)
                self._cancel_grace()
            self._execute(plan.publish)
            if hello.grace_period_s > 0:
                self.grace_period_s = hello.grace_period_s
            if hello.meter_public_key != self.meter_public_key:
                key = hello.meter_public_key or "none"
                log.info("satellite %s: metering public key %s", self.serial, key)
            self.meter_public_key = hello.meter_public_key  # "" when the board does not sign
            self._info = dataclasses.replace(
                self._info,
                firmware_version=hello.firmware_version,
                max_current_a=hello.port.max_current_a or self._info.max_current_a,
                phases=hello.port.phases or self._info.phases,
                connector_type=hello.port.connector_type or self._info.connector_type,
            )
            events = stub.Events(plan.events)
            commands = stub.Commands()
            try:
                return await self._serve(stub, hello, events, commands)
            finally:
                events.cancel()
                commands.cancel()

    async def _serve(
        self, stub: pb_grpc.LinkStub, hello: pb.HelloResponse, events: Any, commands: Any
    ) -> bool:
        try:
            async with asyncio.timeout(self._handshake_timeout_s):
                await events.initial_metadata()  # subscribed: the satellite counts our stream
                await stub.Ready(self.core.ready_request(hello.session_id))
        except grpc.aio.AioRpcError:
            if events.done() and await events.code() == grpc.StatusCode.OUT_OF_RANGE:
                self._resync(await events.details())
            raise
        session = _Session(hello.session_id, hello.port.connector, commands, {}, asyncio.Lock())
        self._session = session
        self.core.link_up(self._monotonic())
        reader = asyncio.ensure_future(self._read_events(events, session, hello))
        replies = asyncio.ensure_future(self._read_replies(session))
        ticker = asyncio.ensure_future(self._tick(session))
        try:
            done, _ = await asyncio.wait(
                {reader, replies, ticker}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if not task.cancelled() and (exc := task.exception()) is not None:
                    if isinstance(exc, grpc.aio.AioRpcError):
                        self._note_error(f"{exc.code().name}: {exc.details()}")
                    elif isinstance(exc, _SilentSatellite):
                        self._note_error(str(exc))
                    else:
                        log.error("satellite %s: link task failed: %r", self.serial, exc)
        finally:
            for task in (reader, replies, ticker):
                task.cancel()
            for task in (reader, replies, ticker):
                await _reap(task)
            self._session = None
            reached = self.connected
            something_open = self.core.link_down()
            for fut in session.pending.values():
                if not fut.done():
                    fut.set_exception(
                        PortUnavailable(f"satellite {self.serial}: link lost before the reply")
                    )
            if self.connected:
                self._set_connected(False)
                self._publish(LinkChanged(False, self.boot_id, self._info.firmware_version))
                log.warning("satellite %s down", self.serial)
                if something_open:
                    self._start_grace()
        return reached

    def _up(self, hello: pb.HelloResponse) -> None:
        """The port is synced: tell the consumers the link is up."""
        self.handshakes += 1
        self.last_error = ""
        self._set_connected(True)
        self._cancel_grace()  # back in time: the satellite kept the session, the replay follows
        self._publish(LinkChanged(True, hello.satellite_boot_id, hello.firmware_version))
        log.info("satellite %s up (boot %s)", self.serial, hello.satellite_boot_id)

    async def _read_events(self, events: Any, session: _Session, hello: pb.HelloResponse) -> None:
        """Until synced (a snapshot session), then link up, reconcile and desired state, then
        pass events on."""
        stream = events.__aiter__()
        try:
            try:
                async with asyncio.timeout(self._handshake_timeout_s):  # the snapshot, if any
                    while not self.core.synced:
                        self._execute(self.core.on_wire(await anext(stream), self._monotonic()))
            except TimeoutError:
                raise _SilentSatellite(
                    f"satellite {self.serial}: no snapshot within {self._handshake_timeout_s:g} s"
                ) from None
            self._up(hello)
            if self.core.gap is not None or self.core.reconcile_due:
                await self._reconcile(session)
            self._spawn_desired(session)
            async for wire in stream:
                self._execute(self.core.on_wire(wire, self._monotonic()))
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.OUT_OF_RANGE:
                self._resync(exc.details() or "")
            raise
        except StopAsyncIteration:
            return

    async def _tick(self, session: _Session) -> None:
        """Liveness: heartbeats out; a satellite silent past the deadline is down."""
        while True:
            await asyncio.sleep(self.core.tick_s)
            for effect in self.core.tick(self._monotonic()):
                if isinstance(effect, LinkDown):
                    raise _SilentSatellite(f"satellite {self.serial} silent: {effect.reason}")
                if isinstance(effect, SendHeartbeat):
                    req = pb.CommandRequest(session_id=session.session_id, heartbeat=pb.Empty())
                    # A stalled stream (a hung peer's full window) must not stall this ticker:
                    # the silence check on the next tick decides.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.core.tick_s), session.write_lock:
                            await session.commands.write(req)

    def _spawn_desired(self, session: _Session) -> None:
        """Push the desired limit and reservation again (availability rode on Ready)."""
        desired = self.core.desired
        limit = desired.limit_to_apply(self._clock.time())
        reservation = desired.reservation
        if reservation is not None and reservation[2] <= self._clock.time():
            desired.reservation = reservation = None
        if limit is None and reservation is None:
            return
        self._tasks.spawn(self._apply_desired(session, limit, reservation), "link-desired")

    async def _apply_desired(
        self,
        session: _Session,
        limit: tuple[float, int, float] | None,
        reservation: tuple[int, str, float] | None,
    ) -> None:
        commands: list[Command] = []
        if limit is not None:
            commands.append(SetLimit(*limit))
        if reservation is not None:
            commands.append(Reserve(*reservation))
        for cmd in commands:
            try:
                await self._call_on(session, cmd)
            except PortError as exc:
                log.warning("satellite %s: re-applying %s: %s", self.serial, cmd.name, exc)

    def _resync(self, why: str) -> None:
        """The ring no longer holds our cursor: next time subscribe from now and reconcile."""
        log.warning("satellite %s: events lost (%s); re-syncing from status", self.serial, why)
        self.core.gap = f"events after #{self.last_seq} lost ({why})"

    async def _reconcile(self, session: _Session) -> None:
        """Re-read the status; publish what makes consumers agree; stop what we closed."""
        gap = self.core.gap
        try:
            reply = await self._call_on(session, GetStatus())
            status = status_from_proto(reply.status)
        except PortError as exc:  # the link went down again: try at the next connect
            log.warning("satellite %s: re-sync failed: %s", self.serial, exc)
            return
        self.core.gap, self.core.reconcile_due = None, False
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
                await self._call_on(session, StopTransaction(StopReason.OTHER))
            except PortError as exc:
                log.warning("satellite %s: stop failed: %s", self.serial, exc)

    async def _read_replies(self, session: _Session) -> None:
        async for reply in session.commands:
            fut = session.pending.get(reply.correlation_id)
            if fut is not None and not fut.done():
                fut.set_result(reply)
