"""The satellite's side of the link as a sans-IO core: messages and ticks in, effects out.

Theory of operation (the gRPC agent feeds it and executes what it returns; no awaits here):
  * Hello: a protocol mismatch is refused. A fresh session id every time; the previous
    session's streams end (`EndStreams`). A main boot id seen before = resume; a new one
    resets the main's wishes. The grace timer starts at Hello: a main that dies between Hello
    and Events must not keep the port running for ever.
  * Events open (only for the current session) cancels the grace; the last stream closing
    starts it again. A resume needs every event after the main's cursor (`resume_refusal`).
  * Ready (current session, at least one Events stream) gates commands and applies the main's
    availability wish (`SetEnabled`), every time: desired state is re-applied on each Ready.
  * Liveness: anything the main sends (a Commands-stream heartbeat, a command, Ready, an
    Events subscription) is `heard`. `tick(now)` after `liveness_s` of silence ends the
    session exactly as if the streams had dropped: a SIGSTOPped main keeps its sockets open.
  * Grace: `StartGrace(token)` is a timer the agent runs on its clock; `grace_expired(token)`
    answers `FailSafe` only if that timer is still the current one and no main came back
    (IEC 61851-1: stop offering current when the controlling side is lost).
Time (`now`) is real monotonic seconds, injected by the caller.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from chargeport.port import (
    CommandRefused,
    PortError,
    PortEventBody,
    PortNotFound,
    SessionEvent,
    SessionEventType,
    TransactionData,
)

__all__ = [
    "CancelGrace",
    "EndStreams",
    "FailSafe",
    "HelloOutcome",
    "LogWarning",
    "OpenSession",
    "SatelliteCore",
    "SatelliteEffect",
    "SetEnabled",
    "StartGrace",
    "TellHolder",
    "resume_refusal",
]

DEFAULT_LIVENESS_S = 2.0
HEARTBEATS_PER_LIVENESS = 5  # a heartbeat every liveness_s / 5
TICKS_PER_LIVENESS = 10  # the silence check runs every liveness_s / 10


@dataclass(frozen=True, slots=True)
class EndStreams:
    """Wake every Events stream: those of an older session end."""


@dataclass(frozen=True, slots=True)
class StartGrace:
    """Run the fail-safe grace timer; report back with `grace_expired(token)`."""

    token: int


@dataclass(frozen=True, slots=True)
class CancelGrace:
    """A main is back: the running grace timer no longer matters."""


@dataclass(frozen=True, slots=True)
class SetEnabled:
    """Apply the main's availability wish to the port."""

    enabled: bool


@dataclass(frozen=True, slots=True)
class FailSafe:
    """The main stayed away past the grace: stop a running transaction, disable the port."""


@dataclass(frozen=True, slots=True)
class LogWarning:
    message: str


@dataclass(frozen=True, slots=True)
class TellHolder:
    """Tell the main that holds this satellite that another main tried to take it."""

    station_id: str
    main_boot_id: str
    address: str


SatelliteEffect = (
    EndStreams | StartGrace | CancelGrace | SetEnabled | FailSafe | LogWarning | TellHolder
)


def resume_refusal(after_seq: int, first_seq: int, last_seq: int) -> str | None:
    """Why Events cannot resume after `after_seq` from a ring holding first_seq..last_seq
    (the main then re-syncs from status); None when every later event is still held."""
    if after_seq > last_seq:
        return f"after_seq {after_seq} is beyond the last event {last_seq}"
    if after_seq < last_seq and after_seq + 1 < first_seq:
        return f"events {after_seq + 1}..{first_seq - 1} are no longer held"
    return None


@dataclass(frozen=True, slots=True)
class HelloOutcome:
    """Hello's answer: a refusal, or the session and whether the main resumed."""

    refusal: str | None
    session_id: str = ""
    resumed: bool = False
    liveness_s: float = DEFAULT_LIVENESS_S
    effects: tuple[SatelliteEffect, ...] = ()
    held: bool = False  # refused because another live main holds this satellite


class SatelliteCore:
    """Session, readiness, streams, liveness and grace of one satellite's link."""

    def __init__(
        self,
        *,
        serial: str,
        connector: int,
        protocol_version: int,
        session_ids: Callable[[], str],
        liveness_s: float = DEFAULT_LIVENESS_S,
    ) -> None:
        self.serial = serial
        self.connector = connector
        self.protocol_version = protocol_version
        self._session_ids = session_ids
        self.default_liveness_s = liveness_s
        self.liveness_s = liveness_s
        self.session_id: str | None = None
        self.main_boot_id: str | None = None
        self.main_station_id = ""
        self.main_address = ""
        self.ready = False
        self.streams = 0
        self.main_wants_enabled = True
        self.last_heard = 0.0
        self.failsafe_count = 0
        self._grace_tokens = itertools.count(1)
        self._grace: int | None = None  # the token of the running grace timer

    @property
    def heartbeat_s(self) -> float:
        """How often an idle Events stream carries a heartbeat."""
        return self.liveness_s / HEARTBEATS_PER_LIVENESS

    @property
    def tick_s(self) -> float:
        """How often the agent ticks the core."""
        return self.liveness_s / TICKS_PER_LIVENESS

    # ------------------------------------------------------------ handshake

    def hello(
        self,
        *,
        station_id: str,
        main_boot_id: str,
        protocol_version: int,
        liveness_s: float,
        now: float,
        address: str = "",
    ) -> HelloOutcome:
        if protocol_version != self.protocol_version:
            return HelloOutcome(
                f"protocol version mismatch: main speaks v{protocol_version}, satellite "
                f"{self.serial} speaks v{self.protocol_version}; update the older board"
            )
        resumed = main_boot_id == self.main_boot_id
        if not resumed and self._held(now):
            # One main at a time: a second main with the same config would otherwise take the
            # port from the first at every reconnect, for ever. A restarted main is not held
            # off for long: its predecessor's streams closed, or it fell silent.
            return HelloOutcome(
                f"satellite {self.serial} is driven by main {self.main_station_id} "
                f"(boot {(self.main_boot_id or '')[:8]}) at {self.main_address or 'unknown'}; "
                "a satellite serves one main: stop the other main or fix its config",
                held=True,
                effects=(TellHolder(station_id, main_boot_id, address),),
            )
        self.main_station_id, self.main_address = station_id, address
        if not resumed:
            self.main_boot_id = main_boot_id
            self.main_wants_enabled = True
        self.liveness_s = liveness_s if liveness_s > 0 else self.default_liveness_s
        self.session_id = self._session_ids()
        self.ready = False
        self.last_heard = now
        return HelloOutcome(
            None,
            self.session_id,
            resumed,
            self.liveness_s,
            (EndStreams(), self._start_grace()),
        )

    def _held(self, now: float) -> bool:
        """A main holds this satellite: subscribed on the current session and heard lately."""
        return (
            self.session_id is not None
            and self.streams > 0
            and now - self.last_heard < self.liveness_s
        )

    def is_current(self, session_id: str) -> bool:
        return bool(session_id) and session_id == self.session_id

    def open_events(self, session_id: str, now: float) -> tuple[SatelliteEffect, ...]:
        """A main subscribed (the caller checked `is_current`)."""
        self.streams += 1
        self.last_heard = now
        return self._cancel_grace()

    def close_events(self, session_id: str) -> tuple[SatelliteEffect, ...]:
        """One Events stream ended; the last one of the current session starts the grace."""
        self.streams -= 1
        if self.streams == 0 and self.session_id == session_id:
            return (self._start_grace(),)
        return ()

    def ready_refusal(self, session_id: str) -> str | None:
        if not self.is_current(session_id):
            return "unknown session: call Hello first"
        if self.streams == 0:
            return "Ready before subscribing to Events"
        return None

    def on_ready(self, disabled: bool, now: float) -> tuple[SatelliteEffect, ...]:
        """Ready accepted (after `ready_refusal` said None): apply the main's wish, every time."""
        self.ready = True
        self.last_heard = now
        self.main_wants_enabled = not disabled
        return (SetEnabled(self.main_wants_enabled),)

    # ------------------------------------------------------------ commands and liveness

    def heard(self, session_id: str, now: float) -> None:
        """Anything from the main on the current session proves it is alive."""
        if self.is_current(session_id):
            self.last_heard = now

    def command_refusal(self, session_id: str, connector: int) -> PortError | None:
        if not self.ready or session_id != self.session_id:
            return CommandRefused("link not ready: call Hello, open Events, then Ready")
        if connector != self.connector:
            return PortNotFound(
                f"no connector {connector} on {self.serial} (it has {self.connector})"
            )
        return None

    def on_command(self, name: str) -> None:
        """Enable/disable from the main are its wish until the next one (or a new main)."""
        if name in ("enable", "disable"):
            self.main_wants_enabled = name == "enable"

    def tick(self, now: float) -> tuple[SatelliteEffect, ...]:
        """Liveness: a session whose main fell silent ends as if its streams had dropped."""
        # Declared one tick early, so the ticker's period never carries it past liveness_s.
        if self.session_id is None or now - self.last_heard < self.liveness_s - self.tick_s:
            return ()
        silent = now - self.last_heard
        self.session_id = None
        self.ready = False
        grace = () if self._grace is not None else (self._start_grace(),)
        return (
            LogWarning(
                f"main silent for {silent:.1f} s (liveness {self.liveness_s:g} s): link down, "
                "fail-safe grace running"
            ),
            EndStreams(),
            *grace,
        )

    # ------------------------------------------------------------ grace

    def _start_grace(self) -> StartGrace:
        self._grace = next(self._grace_tokens)
        return StartGrace(self._grace)

    def _cancel_grace(self) -> tuple[SatelliteEffect, ...]:
        if self._grace is None:
            return ()
        self._grace = None
        return (CancelGrace(),)

    def grace_expired(self, token: int) -> tuple[SatelliteEffect, ...]:
        """The grace timer `token` fired: fail-safe unless a main came back meanwhile."""
        if token != self._grace or (self.streams and self.session_id is not None):
            return ()
        self._grace = None
        self.failsafe_count += 1
        self.ready = False
        self.session_id = None
        return (EndStreams(), FailSafe())


class OpenSession:
    """The open transaction's record, folded from the port's own events: a Snapshot carries
    it (a PortStatus names the transaction, not its id tag, meter start and reservation)."""

    def __init__(self) -> None:
        self.transaction: TransactionData | None = None

    def observe(self, body: PortEventBody) -> None:
        if not isinstance(body, SessionEvent):
            return
        kind = body.type
        if kind is SessionEventType.TRANSACTION_STARTED and body.transaction is not None:
            self.transaction = body.transaction
        elif kind in (SessionEventType.TRANSACTION_FINISHED, SessionEventType.SESSION_FINISHED):
            self.transaction = None
