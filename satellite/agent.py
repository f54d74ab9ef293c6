"""The satellite side of the link: the `Link` gRPC service over this board's ChargePort.

Theory of operation (see proto/chargeport/v1/link.proto):
  Hello   checks the protocol version, hands out a fresh session id, notes the main's boot id
          (same boot id = resume, new one = a restarted main: its enable/disable wish resets).
  Events  streams the ring from `after_seq` on, then live; the number of open streams tells
          whether the main is there. With none left, a grace timer starts; when it fires the
          fail-safe stops a running transaction and disables the port until the next Ready.
          The grace is in real seconds (like the keepalive that detects the loss): a
          ScaledClock's speed-up is undone, so `sim --speed 30` never shortens it.
  Ready   gates commands (FAILED_PRECONDITION before it) and enables the port if the main
          wants it enabled.
  Command/Commands run one command each; errors travel as gRPC codes, never as a dead stream.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

import grpc

from chargeport import PROTOCOL_VERSION
from chargeport.clock import Clock, RealClock
from chargeport.convert import (
    Command,
    code_for_error,
    command_from_proto,
    event_to_proto,
    status_to_proto,
)
from chargeport.port import (
    ChargePort,
    CommandRefused,
    PortError,
    PortEvent,
    PortNotFound,
    StopReason,
)
from chargeport.tasks import OwnedTasks
from chargeport.v1 import link_pb2 as pb
from chargeport.v1 import link_pb2_grpc as pb_grpc
from satellite.ring import EventRing, ReplayGap

__all__ = ["LinkAgent", "real_seconds"]

log = logging.getLogger(__name__)

_STATUS_BY_VALUE = {c.value[0]: c for c in grpc.StatusCode}


def real_seconds(clock: Clock, seconds: float) -> float:
    """The `clock` duration that lasts `seconds` of real time (link timers are real time)."""
    return seconds * clock.speed


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
        ring_capacity: int = 4096,
        clock: Clock | None = None,
        session_ids: Callable[[], str] | None = None,
        protocol_version: int = PROTOCOL_VERSION,
    ) -> None:
        self.port = port
        self.serial = serial
        self.boot_id = boot_id
        self.firmware_version = firmware_version
        self.connector = connector
        self.grace_period_s = grace_period_s
        self.protocol_version = protocol_version
        self._clock = clock or RealClock()
        self._session_ids = session_ids or (lambda: uuid.uuid4().hex)
        self._ring: EventRing[pb.Event] = EventRing(ring_capacity)
        self._changed = asyncio.Event()
        self._tasks = OwnedTasks(log)  # the event pump and the fail-safe grace timer
        self._grace: asyncio.Task[None] | None = None
        self._events: AsyncIterator[PortEvent] | None = None
        self.session_id: str | None = None
        self.main_boot_id: str | None = None
        self.ready = False
        self.linked = asyncio.Event()  # set at the first Ready: a main drives this port
        self.streams = 0
        self.failsafe_count = 0
        self._main_wants_enabled = True

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Subscribe to the port (before anything else can happen) and start pumping."""
        self._events = self.port.events()
        self._tasks.spawn(self._pump(self._events), "agent-pump")

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

    async def _pump(self, events: AsyncIterator[PortEvent]) -> None:
        async for event in events:
            wire = event_to_proto(event)
            wire.seq = self._ring.append(wire)
            self._wake()

    # ------------------------------------------------------------ handshake

    async def Hello(self, request: pb.HelloRequest, context: grpc.aio.ServicerContext) -> Any:
        if request.protocol_version != self.protocol_version:
            msg = (
                f"protocol version mismatch: main speaks v{request.protocol_version}, satellite "
                f"{self.serial} speaks v{self.protocol_version}; update the older board"
            )
            log.error("%s", msg)
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, msg)
        resumed = request.main_boot_id == self.main_boot_id
        if not resumed:
            log.info("main %s (boot %s) synced", request.station_id, request.main_boot_id)
            self.main_boot_id = request.main_boot_id
            self._main_wants_enabled = True
        self.session_id = self._session_ids()
        self.ready = False
        self._wake()  # streams of an older session end
        # A main that dies between Hello and Events must not keep the port running forever.
        self._start_grace(self.session_id)
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
            session_id=self.session_id,
            protocol_version=self.protocol_version,
            last_seq=self._ring.last_seq,
            resumed=resumed,
            grace_period_s=self.grace_period_s,
        )

    async def Ready(self, request: pb.ReadyRequest, context: grpc.aio.ServicerContext) -> Any:
        if not request.session_id or request.session_id != self.session_id:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "unknown session: call Hello first"
            )
        if self.streams == 0:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "Ready before subscribing to Events"
            )
        self.ready = True
        self.linked.set()
        if self._main_wants_enabled:
            await self.port.enable()
        return pb.ReadyResponse()

    # ------------------------------------------------------------ events

    async def Events(
        self, request: pb.EventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Event]:
        session = request.session_id
        if not session or session != self.session_id:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "unknown session: call Hello first"
            )
        cursor = request.after_seq
        if cursor > self._ring.last_seq:
            await context.abort(
                grpc.StatusCode.OUT_OF_RANGE,
                f"after_seq {cursor} is beyond the last event {self._ring.last_seq}",
            )
        try:
            self._ring.after(cursor)
        except ReplayGap as exc:
            await context.abort(grpc.StatusCode.OUT_OF_RANGE, str(exc))
        # Initial metadata tells the main it is subscribed, so it may send Ready.
        await context.send_initial_metadata(())
        self.streams += 1
        self._cancel_grace()
        try:
            while self.session_id == session:
                changed = self._changed
                try:
                    batch = self._ring.after(cursor)
                except ReplayGap as exc:  # a main too slow to keep up with the ring
                    await context.abort(grpc.StatusCode.OUT_OF_RANGE, str(exc))
                for seq, wire in batch:
                    yield wire
                    cursor = seq
                if not batch:
                    await changed.wait()
        finally:
            self.streams -= 1
            if self.streams == 0 and self.session_id == session:
                self._start_grace(session)

    # ------------------------------------------------------------ fail-safe

    def _cancel_grace(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None

    def _start_grace(self, session: str) -> None:
        self._cancel_grace()
        self._grace = self._tasks.spawn(self._failsafe_after_grace(session), "agent-grace")

    async def _failsafe_after_grace(self, session: str) -> None:
        await self._clock.sleep(real_seconds(self._clock, self.grace_period_s))
        if self.streams or self.session_id != session:
            return
        log.warning("main gone for %.1f s: stopping the port (fail-safe)", self.grace_period_s)
        self.failsafe_count += 1
        self.ready = False
        self.session_id = None
        self._grace = None
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
        try:
            if not self.ready or req.session_id != self.session_id:
                raise CommandRefused("link not ready: call Hello, open Events, then Ready")
            if req.connector != self.connector:
                raise PortNotFound(
                    f"no connector {req.connector} on {self.serial} (it has {self.connector})"
                )
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
        if cmd.name == "get_status":
            return status_to_proto(await self.port.status())
        if cmd.name in ("enable", "disable"):
            self._main_wants_enabled = cmd.name == "enable"
        await getattr(self.port, cmd.name)(*cmd.args)
        return None

    async def Command(self, request: pb.CommandRequest, context: grpc.aio.ServicerContext) -> Any:
        reply = await self._execute(request)
        if reply.code:
            await context.abort(_STATUS_BY_VALUE[reply.code], reply.message)
        return reply

    async def Commands(
        self, request_iterator: AsyncIterable[pb.CommandRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.CommandReply]:
        async for req in request_iterator:
            yield await self._execute(req)
