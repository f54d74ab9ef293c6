"""The main's side of the link to one satellite as a sans-IO core: messages and ticks in,
messages to send and events to publish out. `main_node.satellite_link` only moves them.

Theory of operation (no awaits, no clock: `now` is real monotonic seconds, injected):
  * Hello answer (`on_hello`): a protocol or serial mismatch is refused (`LinkRefused`).
    A satellite boot id other than the last one = the satellite restarted: the cursor restarts
    and, once its snapshot came, what the old boot had open and its journal did not end is
    closed with the last meter value seen (TransactionFinished reason PowerLoss, OCPP 1.6
    6.49, then SessionFinished).
    `resumed` (the satellite knows this main boot) and the same satellite boot = a blip:
    Events resumes after the last seq seen, nothing lost or duplicated. Otherwise this main is
    new to that boot: Events asks for a snapshot (the satellite journal's and the ring's
    transaction records, then one Snapshot): history is never published as if it were
    happening now. Journal records carry seq 0 and their own timestamps (the real start and
    end); the ledger and the OCPP journal take each Start/Stop once (4.10). A replay gap from
    a satellite with a journal is a snapshot session too; without one, a status re-read.
  * Ready carries the desired availability (`DesiredPort`): re-applied on every link-up.
  * `on_wire(event)`: heartbeats only prove liveness; a replayed seq is dropped; a Snapshot
    becomes the few events that restate the port (`snapshot_events`); then `link_up`.
  * Liveness (`tick`): a heartbeat to send every liveness_s / 5; `LinkDown` once nothing was
    heard for liveness_s (a SIGSTOPped board keeps its sockets open and answers nothing).
  * Link down with something open: the async layer runs the grace timer (the satellite's own
    grace); `grace_expired` closes it (reason Other) and marks a reconcile due, or with
    `hold` keeps the transaction open for the board's own end (its fail-safe stop, journaled)
    until `hold_expired` at the caller's long deadline: a StopTransaction sent cannot be
    corrected (4.10), so the main does not guess a reading it can wait for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chargeport.convert import event_from_proto, status_from_proto, tx_from_proto
from chargeport.port import (
    InvalidArgument,
    PortEventBody,
    SessionEvent,
    SessionEventType,
    SessionState,
    StopReason,
)
from chargeport.v1 import link_pb2 as pb
from main_node.errors import MainNodeError
from main_node.port_ledger import Ledger

__all__ = [
    "DEFAULT_LIVENESS_S",
    "Alarm",
    "DesiredPort",
    "HelloPlan",
    "LinkDown",
    "LinkRefused",
    "MainLinkCore",
    "Publish",
    "SendHeartbeat",
    "Warn",
    "snapshot_events",
]

DEFAULT_LIVENESS_S = 2.0
HEARTBEATS_PER_LIVENESS = 5  # a heartbeat every liveness_s / 5
TICKS_PER_LIVENESS = 10  # the silence check runs every liveness_s / 10


class LinkRefused(MainNodeError):
    """The satellite answered but cannot be used (protocol version, serial)."""


@dataclass(frozen=True, slots=True)
class Publish:
    """An event for the port's consumers; `timestamp` None = now."""

    body: PortEventBody
    timestamp: float | None = None


@dataclass(frozen=True, slots=True)
class Warn:
    """Something to log: the event was dropped, the link stays."""

    message: str


@dataclass(frozen=True, slots=True)
class Alarm:
    """Something a person must fix (two mains for one satellite): logged at ERROR, once."""

    message: str


@dataclass(frozen=True, slots=True)
class SendHeartbeat:
    """Write a heartbeat on the Commands stream."""


@dataclass(frozen=True, slots=True)
class LinkDown:
    """Tear the session down: the satellite fell silent."""

    reason: str


@dataclass(frozen=True, slots=True)
class HelloPlan:
    """What to do after Hello: the Events request and what to publish first."""

    events: pb.EventsRequest
    publish: list[Publish]
    snapshot: bool


@dataclass
class DesiredPort:
    """What the main wants of the port, whatever the link does; re-applied on every Ready."""

    enabled: bool = True
    limit: tuple[float, int, float, float] | None = None  # amps, phases, valid_for_s, set at
    reservation: tuple[int, str, float] | None = None  # reservation id, id tag, expiry

    def observe(self, event: SessionEvent) -> None:
        """A reservation the port ended (expired, cancelled, or used by a transaction: OCPP 1.6
        5.13) is no longer wished for: it must not come back at the next link-up."""
        r = self.reservation
        if r is None:
            return
        tx = event.transaction
        if event.type is SessionEventType.RESERVATION_END or (
            event.type is SessionEventType.TRANSACTION_STARTED
            and tx is not None
            and tx.reservation_id == r[0]
        ):
            self.reservation = None

    def limit_to_apply(self, now: float) -> tuple[float, int, float] | None:
        """The limit to push again: None when none was set or its validity has passed."""
        if self.limit is None:
            return None
        amps, phases, valid_for_s, set_at = self.limit
        if valid_for_s <= 0:
            return amps, phases, 0.0
        remaining = set_at + valid_for_s - now
        return (amps, phases, remaining) if remaining > 0 else None


# A snapshot's session state -> the session event that puts consumers in the same phase
# (OCPP 1.6 4.9 status per phase; the same table connector_status uses the other way round).
_PHASE_EVENT: dict[SessionState, SessionEventType] = {
    SessionState.WAITING_FOR_AUTH: SessionEventType.SESSION_STARTED,
    SessionState.PREPARING: SessionEventType.AUTHORIZED,
    SessionState.CHARGING: SessionEventType.CHARGING_STARTED,
    SessionState.PAUSED_EV: SessionEventType.CHARGING_PAUSED_EV,
    SessionState.PAUSED_EVSE: SessionEventType.CHARGING_PAUSED_EVSE,
    SessionState.FINISHING: SessionEventType.CHARGING_FINISHED,
}


def snapshot_events(ledger: Ledger, snap: pb.Snapshot, last_record_session: str) -> list[Publish]:
    """The events that make consumers agree with `snap`, recorded in `ledger`.

    Only the state now: CP state, availability, limits, meter, faults, and for an open session
    its start, its transaction and its current phase. `last_record_session` is the session of
    the last transaction record replayed before it (its end is restated when no session is
    open any more)."""
    status = status_from_proto(snap.status)
    plan = ledger.reconcile(status, None)
    out = [Publish(b) for b in plan.events]
    out += [Publish(b) for b in ledger.state_events(status)]
    sid = status.session_id
    if sid is not None and ledger.session_was_closed(sid):
        sid = None  # closed by the main past the grace: a reconcile tells the board to stop
    if sid is not None:
        if ledger.session_id != sid:
            out.append(Publish(SessionEvent(SessionEventType.SESSION_STARTED, sid)))
        tx_id = snap.transaction.transaction_id
        if snap.HasField("transaction") and ledger.transaction is None:
            if not ledger.was_closed(tx_id):
                tx = tx_from_proto(snap.transaction)
                out.append(Publish(SessionEvent(SessionEventType.TRANSACTION_STARTED, sid, tx)))
        phase = _PHASE_EVENT.get(status.session_state)
        if phase is not None and phase is not SessionEventType.SESSION_STARTED:
            out.append(Publish(SessionEvent(phase, sid)))
    elif last_record_session and ledger.session_id is None:
        out.append(Publish(SessionEvent(SessionEventType.SESSION_FINISHED, last_record_session)))
    for p in out:
        ledger.accept(p.body)
    return out


class MainLinkCore:
    """Handshake, cursor, snapshot, liveness and what is open, for one satellite."""

    def __init__(
        self,
        serial: str,
        *,
        station_id: str,
        main_boot_id: str,
        protocol_version: int,
        liveness_s: float = DEFAULT_LIVENESS_S,
    ) -> None:
        self.serial = serial
        self.station_id = station_id
        self.main_boot_id = main_boot_id
        self.protocol_version = protocol_version
        self.liveness_s = liveness_s
        self.ledger = Ledger()
        self.desired = DesiredPort()
        self.boot_id = ""
        self.last_seq = 0
        self.gap: str | None = None  # set on OUT_OF_RANGE: re-sync at the next connect
        self.reconcile_due = False  # set when the main closed things the satellite may run
        self.up = False
        self.synced = True  # False between Hello and the snapshot of a snapshot session
        self._last_heard = 0.0
        self._last_sent = 0.0
        self._last_record_session = ""
        self._synced_boot = ""  # the satellite boot whose events this main has in order
        self._close_at_snapshot = False  # a restarted satellite: close the old boot's leftovers
        self.holding = False  # past the grace, the stop is held for the board's own end

    @property
    def heartbeat_s(self) -> float:
        return self.liveness_s / HEARTBEATS_PER_LIVENESS

    @property
    def tick_s(self) -> float:
        return self.liveness_s / TICKS_PER_LIVENESS

    # ------------------------------------------------------------ handshake

    def hello_request(self) -> pb.HelloRequest:
        return pb.HelloRequest(
            station_id=self.station_id,
            main_boot_id=self.main_boot_id,
            protocol_version=self.protocol_version,
            liveness_s=self.liveness_s,
        )

    def on_hello(self, hello: pb.HelloResponse) -> HelloPlan:
        """Check the answer, decide resume or snapshot; raises `LinkRefused`."""
        if hello.protocol_version != self.protocol_version:
            raise LinkRefused(
                f"protocol version mismatch: satellite {self.serial} speaks "
                f"v{hello.protocol_version}, this main speaks v{self.protocol_version}"
            )
        if hello.serial != self.serial:
            raise LinkRefused(f"expected satellite {self.serial}, the board says {hello.serial}")
        publish: list[Publish] = []
        new_boot = hello.satellite_boot_id != self.boot_id
        if new_boot:
            # What the old boot had open is closed once its snapshot came: the satellite's
            # journal replays its real end (register and signed record) ahead of it.
            self._close_at_snapshot = bool(self.boot_id)
            self.boot_id = hello.satellite_boot_id
            self.last_seq = 0
            self.gap = None  # a fresh boot: its ring starts at 1
            self.reconcile_due = False
        elif self.gap is not None:
            self.last_seq = hello.last_seq  # the ring lost our cursor: from now on
        if hello.liveness_s > 0:
            self.liveness_s = hello.liveness_s
        # Resume only what this main already holds in order; anything else starts afresh.
        # After a gap, a satellite with a journal replays every transaction's begin and end
        # ahead of a snapshot: its real end register, not the last reading seen, closes what
        # the main holds (a link loss longer than the ring, issue 16).
        journal_gap = self.gap is not None and hello.journal
        snapshot = new_boot or not hello.resumed or self._synced_boot != self.boot_id or journal_gap
        self.synced = not snapshot
        self._last_record_session = ""
        if snapshot:
            self.gap = None  # the snapshot restates everything (reconcile_due stays: what the
            # main closed past the grace may still run on the board and must be stopped)
        request = pb.EventsRequest(
            session_id=hello.session_id,
            after_seq=0 if snapshot else self.last_seq,
            snapshot=snapshot,
        )
        return HelloPlan(request, publish, snapshot)

    def ready_request(self, session_id: str) -> pb.ReadyRequest:
        return pb.ReadyRequest(session_id=session_id, disabled=not self.desired.enabled)

    def link_up(self, now: float) -> None:
        self.up = True
        self._last_heard = now
        self._last_sent = now

    def link_down(self) -> bool:
        """The session ended; True when something is open (the caller runs the grace)."""
        self.up = False
        return self.ledger.has_open

    # ------------------------------------------------------------ events

    def on_wire(self, wire: pb.Event, now: float) -> Sequence[Publish | Warn | Alarm]:
        """One message from the Events stream; what to publish."""
        self._last_heard = now
        kind = wire.WhichOneof("body")
        if kind == "heartbeat":
            return []
        if kind == "contested":
            other = wire.contested
            return [
                Alarm(
                    f"another main (station {other.station_id}, boot {other.main_boot_id[:8]}) "
                    f"at {other.address or 'an unknown address'} tried to take satellite "
                    f"{self.serial}, which this main drives: two mains share one station's "
                    "config; stop one"
                )
            ]
        if kind == "snapshot":
            self.synced = True
            self._synced_boot = self.boot_id
            self.last_seq = max(self.last_seq, wire.snapshot.last_seq)
            closed: list[Publish] = []
            if self._close_at_snapshot:
                # The old boot's records did not end it: PowerLoss at the last reading seen.
                self._close_at_snapshot = False
                closed = [Publish(b) for b in self.ledger.close_open(StopReason.POWER_LOSS)]
                self.ledger.forget_meter()
            return closed + snapshot_events(self.ledger, wire.snapshot, self._last_record_session)
        if wire.seq <= self.last_seq and (self.synced or wire.seq != 0):
            return []  # already delivered before the blip (seq 0: from the board's journal)
        if self.synced:
            self.last_seq = wire.seq  # records before a snapshot leave the cursor to it
        try:
            event = event_from_proto(wire)
        except InvalidArgument as exc:
            return [Warn(f"dropping event {wire.seq}: {exc}")]
        if isinstance(event.body, SessionEvent):
            if not self.synced:
                self._last_record_session = event.body.session_id
            self.desired.observe(event.body)
        if self.ledger.accept(event.body):
            return [Publish(event.body, event.timestamp)]
        return []

    def grace_expired(self, *, hold: bool = False) -> list[Publish]:
        """The satellite stayed away past its grace: close what it had open (reason Other:
        OCPP 1.6 has no "link lost", and a dead board cannot be told from a cut cable).

        `hold`: close nothing yet. A StopTransaction sent cannot be corrected (OCPP 1.6 4.10,
        6.49), and the board keeps metering and journals its own end (its fail-safe stop, at
        the register when it stopped offering current, signed); that end comes when the link
        does, by replay or from the journal. The caller closes at its long deadline
        (`hold_expired`) if the board never returns."""
        if self.up:
            return []
        if hold:
            self.holding = self.ledger.transaction is not None
            if self.holding:
                return []
        self.reconcile_due = True
        return [Publish(b) for b in self.ledger.close_open(StopReason.OTHER)]

    def hold_expired(self) -> list[Publish]:
        """The board stayed away past the hold deadline: close as at the grace."""
        self.holding = False
        return self.grace_expired()

    # ------------------------------------------------------------ liveness

    def tick(self, now: float) -> list[SendHeartbeat | LinkDown]:
        """Heartbeat due, or the satellite silent past the liveness deadline."""
        if not self.up:
            return []
        silent = now - self._last_heard
        # One tick early, so the ticker's period never carries the verdict past liveness_s.
        if silent >= self.liveness_s - self.tick_s:
            return [LinkDown(f"no heartbeat for {silent:.1f} s (liveness {self.liveness_s:g} s)")]
        if now - self._last_sent >= self.heartbeat_s:
            self._last_sent = now
            return [SendHeartbeat()]
        return []

    def sent(self, now: float) -> None:
        """Something went to the satellite (a command counts as a heartbeat)."""
        self._last_sent = now
