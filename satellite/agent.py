"""The satellite side of the link: the `Link` gRPC service over this board's ChargePort.

The rules (handshake, session, liveness, grace) live in the sans-IO `satellite.link_core`;
this module moves messages between gRPC and the core and executes the effects it returns.
  Hello   -> core.hello; the answer, or FAILED_PRECONDITION on a protocol mismatch.
  Events  streams the ring from `after_seq` on, then live; with `snapshot` (a main new to this
          boot) the ring's transaction records, one Snapshot after Ready, then live. An idle
          stream carries a Heartbeat every liveness_s / 5: a stopped process sends none.
  Ready   -> core.on_ready: gates commands, applies the main's availability wish every time.
  Command/Commands run one command each; errors travel as gRPC codes, never as a dead stream.
          A heartbeat on the Commands stream only tells the core the main is alive.
The grace is in real seconds (like the liveness that detects the loss): a ScaledClock's
speed-up is undone, so `sim --speed 30` never shortens it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any, assert_never

import grpc

from chargeport import PROTOCOL_VERSION
from chargeport.clock import Clock, RealClock
from chargeport.convert import (
    Authorize,
    CancelReservation,
    Command,
    Disable,
    Enable,
    ForceUnlock,
    GetStatus,
    Pause,
    Reserve,
    Resume,
    SetLimit,
    StopTransaction,
    WithdrawAuthorization,
    code_for_error,
    command_from_proto,
    event_to_proto,
    status_to_proto,
    tx_to_proto,
)
from chargeport.port import (
    ChargePort,
    MeterValue,
    PortError,
    PortEvent,
    SessionEvent,
    SessionEventType,
    StopReason,
    TransactionData,
)
from chargeport.tasks import OwnedTasks
from chargeport.v1 import link_pb2 as pb
from chargeport.v1 import link_pb2_grpc as pb_grpc
from satellite.link_core import (
    DEFAULT_LIVENESS_S,
    CancelGrace,
    EndStreams,
    FailSafe,
    LogWarning,
    OpenSession,
    SatelliteCore,
    SatelliteEffect,
    SetEnabled,
    StartGrace,
    TellHolder,
    resume_refusal,
)
from satellite.ring import EventRing, ReplayGap
from satellite.tx_journal import TxJournal

__all__ = ["LinkAgent", "real_seconds"]

log = logging.getLogger(__name__)

_STATUS_BY_VALUE = {c.value[0]: c for c in grpc.StatusCode}


def real_seconds(clock: Clock, seconds: float) -> float:
    """The `clock` duration that lasts `seconds` of real time (link timers are real time)."""
    return seconds * clock.speed


def _meter_public_key(port: ChargePort) -> str:
    """The port's OCMF metering public key when its board signs (a LocalPort), else ""."""
    key = getattr(port, "meter_public_key", "")
    return key if isinstance(key, str) else ""


def _peer_address(peer: str) -> str:
    """gRPC's peer string ('ipv4:10.0.0.1:50432', 'ipv6:[::1]:1') -> 'host:port'."""
    return peer.partition(":")[2] if peer.startswith(("ipv4:", "ipv6:")) else peer


class LinkAgent(pb_grpc.LinkServicer):
    """Serves one ChargePort to the main; `start` before serving, `stop` after."""

    def __init__(
        self,
        port: ChargePort,
        *,
        serial: str,
        boot_id: str,
        firmware_version: str,
        connector: int = 1,
        grace_period_s: float = 10.0,
        liveness_s: float = DEFAULT_LIVENESS_S,
        ring_capacity: int = 4096,
        clock: Clock | None = None,
        session_ids: Callable[[], str] | None = None,
        protocol_version: int = PROTOCOL_VERSION,
        monotonic: Callable[[], float] = time.monotonic,
        journal: TxJournal | None = None,
    ) -> None:
        self.port = port
        # Begin/end of every transaction on disk (billing facts outlive the ring and restarts).
        self.journal = journal
        self.serial = serial
        self.boot_id = boot_id
        self.firmware_version = firmware_version
        self.connector = connector
        self.grace_period_s = grace_period_s
        self.protocol_version = protocol_version
        self._clock = clock or RealClock()
        self._monotonic = monotonic  # liveness is real time, whatever the port's clock
        self.core = SatelliteCore(
            serial=serial,
            connector=connector,
            protocol_version=protocol_version,
            session_ids=session_ids or (lambda: uuid.uuid4().hex),
            liveness_s=liveness_s,
        )
        self._ring: EventRing[pb.Event] = EventRing(ring_capacity)
        self._open = OpenSession()
        self._contests: list[pb.Event] = []  # for the holding main: another main tried
        self._intruders: set[str] = set()  # boot ids of mains refused (logged once each)
        self._changed = asyncio.Event()
        self._tasks = OwnedTasks(log)  # the event pump, the liveness ticker, the grace timer
        self._grace: asyncio.Task[None] | None = None
        self._events: AsyncIterator[PortEvent] | None = None
        self.linked = asyncio.Event()  # set at the first Ready: a main drives this port

    # What tests and the app read; the core holds the truth.
    @property
    def session_id(self) -> str | None:
        return self.core.session_id

    @property
    def main_boot_id(self) -> str | None:
        return self.core.main_boot_id

    @property
    def ready(self) -> bool:
        return self.core.ready

    @property
    def streams(self) -> int:
        return self.core.streams

    @property
    def failsafe_count(self) -> int:
        return self.core.failsafe_count

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Subscribe to the port (before anything else can happen) and start pumping."""
        await self._end_interrupted()
        self._events = self.port.events()
        self._tasks.spawn(self._pump(self._events), "agent-pump")
        self._tasks.spawn(self._tick(), "agent-liveness")

    async def stop(self) -> None:
        await self._tasks.cancel_all()
        if self._events is not None and hasattr(self._events, "aclose"):
            await self._events.aclose()

    @property
    def last_seq(self) -> int:
        return self._ring.last_seq

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _end_interrupted(self) -> None:
        """A transaction the previous process left open ends now, at the register the board
        reads (signed when it signs), reason PowerLoss (OCPP 1.6 6.49): the main learns of it
        from the journal's replay, whenever it comes."""
        journal = self.journal
        cut = journal.interrupted() if journal is not None else None
        if journal is None or cut is None:
            return
        close = getattr(self.port, "close_interrupted", None)
        end: TransactionData | None = None
        if close is not None:
            try:
                end = await close(cut.begin, journal.last_wh)
            except Exception:  # the journal's own register below still bills it
                log.exception("ending interrupted transaction %s", cut.begin.transaction_id)
        if end is None:
            wh = max(cut.begin.meter_wh, journal.last_wh or 0.0)
            end = dataclasses.replace(cut.begin, meter_wh=wh, signed_meter="")
            end = dataclasses.replace(end, stop_reason=StopReason.POWER_LOSS)
        log.warning(
            "transaction %s was open when this board stopped: ended at %.0f Wh (PowerLoss)",
            cut.begin.transaction_id,
            end.meter_wh,
        )
        journal.end_interrupted(end, self._clock.time())

    def _journal(self, event: PortEvent) -> None:
        """Fold one port event into the journal (before it goes on the link)."""
        journal, body = self.journal, event.body
        if journal is None:
            return
        if isinstance(body, MeterValue):
            journal.meter(body.energy_wh)
        elif isinstance(body, SessionEvent) and body.transaction is not None:
            if body.type is SessionEventType.TRANSACTION_STARTED:
                journal.started(body.session_id, body.transaction, event.timestamp)
            elif body.type is SessionEventType.TRANSACTION_FINISHED:
                journal.finished_tx(body.transaction, event.timestamp)

    async def _pump(self, events: AsyncIterator[PortEvent]) -> None:
        async for event in events:
            self._journal(event)
            self._open.observe(event.body)
            wire = event_to_proto(event)
            wire.seq = self._ring.append(wire)
            self._wake()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.core.tick_s)
            await self._execute_effects(self.core.tick(self._monotonic()))

    async def _execute_effects(self, effects: tuple[SatelliteEffect, ...]) -> None:
        for effect in effects:
            if isinstance(effect, EndStreams):
                self._wake()
            elif isinstance(effect, StartGrace):
                self._cancel_grace()
                self._grace = self._tasks.spawn(self._grace_timer(effect.token), "agent-grace")
            elif isinstance(effect, CancelGrace):
                self._cancel_grace()
            elif isinstance(effect, SetEnabled):
                await (self.port.enable() if effect.enabled else self.port.disable())
            elif isinstance(effect, FailSafe):
                await self._failsafe()
            elif isinstance(effect, LogWarning):
                log.warning("%s", effect.message)
            elif isinstance(effect, TellHolder):
                self._contests.append(
                    pb.Event(
                        timestamp=self._clock.time(),
                        contested=pb.Contested(
                            station_id=effect.station_id,
                            main_boot_id=effect.main_boot_id,
                            address=effect.address,
                        ),
                    )
                )
                self._wake()

    # ------------------------------------------------------------ handshake

    async def Hello(self, request: pb.HelloRequest, context: grpc.aio.ServicerContext) -> Any:
        known = self.core.main_boot_id
        out = self.core.hello(
            station_id=request.station_id,
            main_boot_id=request.main_boot_id,
            protocol_version=request.protocol_version,
            liveness_s=request.liveness_s,
            now=self._monotonic(),
            address=_peer_address(context.peer()),
        )
        if out.held:
            await self._execute_effects(out.effects)
            say = log.debug if request.main_boot_id in self._intruders else log.error
            self._intruders.add(request.main_boot_id)
            say(
                "main %s (boot %s) at %s tried to take this satellite: %s",
                request.station_id,
                request.main_boot_id[:8],
                _peer_address(context.peer()),
                out.refusal,
            )
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, out.refusal or "")
        if out.refusal is not None:
            log.error("%s", out.refusal)
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, out.refusal)
        if request.main_boot_id != known:
            log.info("main %s (boot %s) synced", request.station_id, request.main_boot_id)
        await self._execute_effects(out.effects)
        info = self.port.info
        return pb.HelloResponse(
            serial=self.serial,
            satellite_boot_id=self.boot_id,
            firmware_version=self.firmware_version,
            port=pb.PortDescription(
                connector=self.connector,
                max_current_a=info.max_current_a,
                phases=info.phases,
                connector_type=info.connector_type,
            ),
            session_id=out.session_id,
            protocol_version=self.protocol_version,
            last_seq=self._ring.last_seq,
            resumed=out.resumed,
            grace_period_s=self.grace_period_s,
            liveness_s=out.liveness_s,
            meter_public_key=_meter_public_key(self.port),
            journal=self.journal is not None,
        )

    async def Ready(self, request: pb.ReadyRequest, context: grpc.aio.ServicerContext) -> Any:
        refusal = self.core.ready_refusal(request.session_id)
        if refusal is not None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, refusal)
        effects = self.core.on_ready(request.disabled, self._monotonic())
        self.linked.set()
        await self._execute_effects(effects)
        self._wake()  # a snapshot stream waits for Ready
        return pb.ReadyResponse()

    # ------------------------------------------------------------ events

    async def Events(
        self, request: pb.EventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Event]:
        session = request.session_id
        if not self.core.is_current(session):
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "unknown session: call Hello first"
            )
        cursor = request.after_seq
        if not request.snapshot:
            gap = resume_refusal(cursor, self._ring.first_seq, self._ring.last_seq)
            if gap is not None:
                await context.abort(grpc.StatusCode.OUT_OF_RANGE, gap)
        # Initial metadata tells the main it is subscribed, so it may send Ready.
        await context.send_initial_metadata(())
        await self._execute_effects(self.core.open_events(session, self._monotonic()))
        heartbeat = pb.Event(heartbeat=pb.Heartbeat())
        try:
            if request.snapshot:
                while self.core.session_id == session and not self.core.ready:
                    if not await self._wait_changed():
                        yield heartbeat
                if self.core.session_id != session:
                    return
                cursor = self._ring.last_seq
                for wire in self._history_records(cursor):
                    yield wire
                yield await self._snapshot(cursor)
            while self.core.session_id == session:
                while self._contests:
                    yield self._contests.pop(0)
                try:
                    batch = self._ring.after(cursor)
                except ReplayGap as exc:  # a main too slow to keep up with the ring
                    await context.abort(grpc.StatusCode.OUT_OF_RANGE, str(exc))
                for seq, wire in batch:
                    yield wire
                    cursor = seq
                if not batch and not await self._wait_changed():
                    yield heartbeat
        finally:
            await self._execute_effects(self.core.close_events(session))

    async def _wait_changed(self) -> bool:
        """Wait for news; False when a heartbeat interval passed without any."""
        try:
            async with asyncio.timeout(self.core.heartbeat_s):
                await self._changed.wait()
        except TimeoutError:
            return False
        return True

    def _history_records(self, cursor: int) -> list[pb.Event]:
        """The transaction records the ring still holds up to `cursor` (billing facts), after
        the journal's records the ring no longer (or never) held, with seq 0."""
        out = []
        for seq, wire in self._ring.after(max(0, self._ring.first_seq - 1)):
            if seq > cursor:
                break
            if wire.WhichOneof("body") == "session" and wire.session.type in _RECORDS:
                out.append(wire)
        if self.journal is None:
            return out
        held = {(w.session.type, w.session.transaction.transaction_id) for w in out}
        older = []
        for ts, body in self.journal.replay():
            tx_id = body.transaction.transaction_id if body.transaction is not None else ""
            if (body.type.value, tx_id) not in held:
                older.append(event_to_proto(PortEvent(0, ts, body)))
        return older + out

    async def _snapshot(self, cursor: int) -> pb.Event:
        status = await self.port.status()
        snap = pb.Snapshot(status=status_to_proto(status), last_seq=cursor)
        if self._open.transaction is not None:
            snap.transaction.CopyFrom(tx_to_proto(self._open.transaction))
        return pb.Event(timestamp=self._clock.time(), snapshot=snap)

    # ------------------------------------------------------------ fail-safe

    def _cancel_grace(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None

    async def _grace_timer(self, token: int) -> None:
        await self._clock.sleep(real_seconds(self._clock, self.grace_period_s))
        self._grace = None
        await self._execute_effects(self.core.grace_expired(token))

    async def _failsafe(self) -> None:
        log.warning("main gone for %.1f s: stopping the port (fail-safe)", self.grace_period_s)
        try:
            status = await self.port.status()
            if status.transaction_id is not None:
                await self.port.stop_transaction(StopReason.OTHER)
            await self.port.disable()
        except PortError as exc:
            log.error("fail-safe: %s", exc)

    # ------------------------------------------------------------ commands

    async def _execute(self, req: pb.CommandRequest) -> pb.CommandReply:
        reply = pb.CommandReply(correlation_id=req.correlation_id)
        self.core.heard(req.session_id, self._monotonic())
        try:
            refusal = self.core.command_refusal(req.session_id, req.connector)
            if refusal is not None:
                raise refusal
            status = await self._run(command_from_proto(req))
            if status is not None:
                reply.status.CopyFrom(status)
        except PortError as exc:
            reply.code = code_for_error(exc).value[0]
            reply.message = str(exc) or type(exc).__name__
        except Exception as exc:  # the agent keeps serving whatever one command did
            log.exception("command %s failed", req.WhichOneof("command"))
            reply.code = grpc.StatusCode.INTERNAL.value[0]
            reply.message = f"{type(exc).__name__}: {exc}"
        return reply

    async def _run(self, cmd: Command) -> pb.PortStatus | None:
        """One typed command on the port; the status for GetStatus."""
        self.core.on_command(cmd.name)
        port = self.port
        match cmd:
            case GetStatus():
                return status_to_proto(await port.status())
            case Enable():
                await port.enable()
            case Disable():
                await port.disable()
            case Authorize(id_tag, reservation_id):
                await port.authorize(id_tag, reservation_id)
            case WithdrawAuthorization():
                await port.withdraw_authorization()
            case Pause():
                await port.pause()
            case Resume():
                await port.resume()
            case StopTransaction(reason):
                await port.stop_transaction(reason)
            case SetLimit(amps, phases, valid_for_s):
                await port.set_limit(amps, phases, valid_for_s)
            case ForceUnlock():
                await port.force_unlock()
            case Reserve(reservation_id, id_tag, expiry):
                await port.reserve(reservation_id, id_tag, expiry)
            case CancelReservation(reservation_id):
                await port.cancel_reservation(reservation_id)
            case _:
                assert_never(cmd)
        return None

    async def Command(self, request: pb.CommandRequest, context: grpc.aio.ServicerContext) -> Any:
        if request.WhichOneof("command") == "heartbeat":
            self.core.heard(request.session_id, self._monotonic())
            return pb.CommandReply(correlation_id=request.correlation_id)
        reply = await self._execute(request)
        if reply.code:
            await context.abort(_STATUS_BY_VALUE[reply.code], reply.message)
        return reply

    async def Commands(
        self, request_iterator: AsyncIterable[pb.CommandRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.CommandReply]:
        async for req in request_iterator:
            if req.WhichOneof("command") == "heartbeat":
                self.core.heard(req.session_id, self._monotonic())
                continue
            yield await self._execute(req)


# Transaction records a snapshot stream still sends from history: each one is a billing fact
# the new main must journal (OCPP 1.6 4.10: no Start/Stop lost), never a state to show.
_RECORDS = frozenset(
    {SessionEventType.TRANSACTION_STARTED.value, SessionEventType.TRANSACTION_FINISHED.value}
)
