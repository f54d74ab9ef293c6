"""Port events -> OCPP 1.6 connector status (ChargePointStatus + ChargePointErrorCode).

Theory of operation: a `ConnectorStatusTracker` folds one port's events into a few facts
(link up, enabled, active faults, reservation, session phase) and derives the status from
them with a fixed precedence (OCPP 1.6 section 4.9 and the status table of section 7.7):

    link lost -> Unavailable (InternalError)   the satellite cannot be reached
    active fault -> Faulted (its code)         `chargeport.port.ErrorCode` values are OCPP codes
    disabled -> Unavailable                    ChangeAvailability Inoperative
    session phase -> Preparing / Charging / SuspendedEV / SuspendedEVSE / Finishing
    reserved -> Reserved
    otherwise -> Available

`apply` returns the new status only when it changed, so the caller sends exactly one
StatusNotification per change. Pure: no I/O, no clock.

Two rules decide *when* a changed status goes out (`StatusGate`, time passed in):

- Boot window: a board that has never linked since the main started is still booting, not
  lost; its connector's status is held until its link first comes up or the window ends. Only
  a board that misses the window, or a link that was up and is lost, is reported as an error.
- MinimumStatusDuration (OCPP 1.6 section 4.9, key 9.1.21): a status is sent only once it has
  held that long, so the transient SuspendedEVSE -> SuspendedEV -> Charging of every start
  reaches the CSMS as one Charging. A status that returns to the last one sent sends nothing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from chargeport.port import (
    LinkChanged,
    PortDisabledChanged,
    PortErrorEvent,
    PortEventBody,
    PortStatus,
    SessionEvent,
    SessionEventType,
    SessionState,
)

__all__ = [
    "ConnectorStatus",
    "ConnectorStatusTracker",
    "Phase",
    "StatusGate",
    "station_status",
]

NO_ERROR = "NoError"
_EPSILON = 1e-6  # seconds: a deadline computed as since + d is due at exactly that time


class Phase(enum.Enum):
    """The session phase of a connector as OCPP sees it."""

    IDLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"
    FINISHING = "Finishing"


@dataclass(frozen=True, slots=True)
class ConnectorStatus:
    """One StatusNotification's worth: status, errorCode and optional info."""

    status: str
    error_code: str = NO_ERROR
    info: str | None = None


# SessionEvent -> phase (OCPP 1.6 section 4.9 state descriptions); None = phase unchanged.
_SESSION_PHASE: dict[SessionEventType, Phase | None] = {
    SessionEventType.ENABLED: None,
    SessionEventType.DISABLED: None,
    SessionEventType.SESSION_STARTED: Phase.PREPARING,
    SessionEventType.AUTH_REQUIRED: Phase.PREPARING,
    SessionEventType.AUTHORIZED: Phase.PREPARING,
    SessionEventType.DEAUTHORIZED: Phase.IDLE,  # only emitted with no EV: back to idle
    SessionEventType.TRANSACTION_STARTED: Phase.PREPARING,
    SessionEventType.PREPARE_CHARGING: Phase.PREPARING,
    SessionEventType.CHARGING_STARTED: Phase.CHARGING,
    SessionEventType.CHARGING_RESUMED: Phase.CHARGING,
    SessionEventType.CHARGING_PAUSED_EV: Phase.SUSPENDED_EV,
    SessionEventType.CHARGING_PAUSED_EVSE: Phase.SUSPENDED_EVSE,
    SessionEventType.WAITING_FOR_ENERGY: Phase.SUSPENDED_EVSE,
    SessionEventType.STOPPING_CHARGING: Phase.FINISHING,
    SessionEventType.CHARGING_FINISHED: Phase.FINISHING,
    SessionEventType.TRANSACTION_FINISHED: Phase.FINISHING,
    SessionEventType.SESSION_FINISHED: Phase.IDLE,
    SessionEventType.PLUGIN_TIMEOUT: Phase.IDLE,
    SessionEventType.RESERVATION_START: None,
    SessionEventType.RESERVATION_END: None,
}

_STATE_PHASE: dict[SessionState, Phase] = {
    SessionState.IDLE: Phase.IDLE,
    SessionState.RESERVED: Phase.IDLE,
    SessionState.WAITING_FOR_AUTH: Phase.PREPARING,
    SessionState.PREPARING: Phase.PREPARING,
    SessionState.CHARGING: Phase.CHARGING,
    SessionState.PAUSED_EV: Phase.SUSPENDED_EV,
    SessionState.PAUSED_EVSE: Phase.SUSPENDED_EVSE,
    SessionState.FINISHING: Phase.FINISHING,
    SessionState.FAULTED: Phase.IDLE,
    SessionState.DISABLED: Phase.IDLE,
}


class ConnectorStatusTracker:
    """Folds one port's events into its OCPP connector status."""

    def __init__(self, snapshot: PortStatus | None = None, link_up: bool = True) -> None:
        self.link_up = link_up
        self.linked_once = link_up  # False while the board has not linked since we started
        self.enabled = True
        self.reserved = False
        self.phase = Phase.IDLE
        self.faults: dict[str, str] = {}  # OCPP error code -> message, in arrival order
        if snapshot is not None:
            self.enabled = snapshot.enabled and snapshot.session_state is not SessionState.DISABLED
            self.reserved = snapshot.reservation_id is not None
            self.phase = _STATE_PHASE[snapshot.session_state]
            for err in snapshot.errors:
                if err.active:
                    self.faults[err.code.value] = err.message
        self._current = self.derive()

    @property
    def current(self) -> ConnectorStatus:
        return self._current

    def derive(self) -> ConnectorStatus:
        """The status the facts imply, by the precedence in the module docstring."""
        if not self.link_up:
            info = "link to satellite lost" if self.linked_once else "satellite did not link"
            return ConnectorStatus("Unavailable", "InternalError", info)
        if self.faults:
            code, message = next(iter(self.faults.items()))
            return ConnectorStatus("Faulted", code, message[:50] or None)
        if not self.enabled:
            return ConnectorStatus("Unavailable")
        if self.phase is not Phase.IDLE:
            return ConnectorStatus(self.phase.value)
        if self.reserved:
            return ConnectorStatus("Reserved")
        return ConnectorStatus("Available")

    def apply(self, body: PortEventBody) -> ConnectorStatus | None:
        """Fold one event in; the new status when it changed, else None."""
        if isinstance(body, LinkChanged):
            self.link_up = body.connected
            self.linked_once = self.linked_once or body.connected
        elif isinstance(body, PortErrorEvent):
            if body.active:
                self.faults[body.code.value] = body.message
            else:
                self.faults.pop(body.code.value, None)
        elif isinstance(body, PortDisabledChanged):
            self.enabled = body.enabled
        elif isinstance(body, SessionEvent):
            self._apply_session(body.type)
        else:
            return None
        new = self.derive()
        if new == self._current:
            return None
        self._current = new
        return new

    def _apply_session(self, kind: SessionEventType) -> None:
        if kind is SessionEventType.ENABLED:
            self.enabled = True
        elif kind is SessionEventType.DISABLED:
            self.enabled = False
        elif kind is SessionEventType.RESERVATION_START:
            self.reserved = True
        elif kind is SessionEventType.RESERVATION_END:
            self.reserved = False
        elif kind in (SessionEventType.SESSION_STARTED, SessionEventType.AUTHORIZED):
            self.reserved = False  # a reservation ends when its id tag is used (section 5.13)
        phase = _SESSION_PHASE[kind]
        if phase is not None:
            self.phase = phase


def station_status(operative: bool) -> ConnectorStatus:
    """Connector 0 (the charge point as a whole): only Available or Unavailable here."""
    return ConnectorStatus("Available" if operative else "Unavailable")


class StatusGate:
    """When each connector's changed status may go out: boot window and debounce (section 4.9).

    `changed` is fed every status change with `now`; it answers True when the status goes out
    at once. Otherwise `due(now)` later names the connectors whose status has held long enough
    (or whose board's boot window has ended); `next_deadline` says when to look again.
    """

    def __init__(self, boot_deadline: float) -> None:
        self.boot_deadline = boot_deadline
        self.min_duration_s = 0.0
        self._pending: dict[int, tuple[ConnectorStatus, float]] = {}  # status, since
        self._sent: dict[int, ConnectorStatus] = {}
        self._held: set[int] = set()  # connectors held by the boot window

    def booting(self, linked_once: bool, now: float) -> bool:
        """A board that never linked yet is still starting while the boot window lasts."""
        return not linked_once and now < self.boot_deadline

    def hold(self, cid: int) -> None:
        """The connector's board is still booting: say nothing about it yet."""
        self._held.add(cid)

    def changed(self, cid: int, status: ConnectorStatus, now: float) -> bool:
        """A new status for `cid`: True = send it now; False = wait for `due`."""
        self._held.discard(cid)
        if self.min_duration_s <= 0:
            self._pending.pop(cid, None)
            return True
        self._pending[cid] = (status, now)
        return False

    def sent(self, cid: int, status: ConnectorStatus) -> None:
        """`status` went out for `cid` (also a triggered or boot-time StatusNotification)."""
        self._sent[cid] = status
        pending = self._pending.get(cid)
        if pending is not None and pending[0] == status:
            del self._pending[cid]

    def due(self, now: float) -> list[int]:
        """Connectors whose status must go out at `now` (held long enough, or boot over)."""
        out: list[int] = []
        for cid, (status, since) in sorted(self._pending.items()):
            if now - since >= self.min_duration_s - _EPSILON:
                del self._pending[cid]
                if self._sent.get(cid) != status:
                    out.append(cid)
        if self._held and now >= self.boot_deadline:
            out.extend(sorted(self._held - set(out)))
            self._held.clear()
        return sorted(out)

    def next_deadline(self) -> float | None:
        """The earliest moment `due` may name a connector, or None."""
        times = [since + self.min_duration_s for _, since in self._pending.values()]
        if self._held:
            times.append(self.boot_deadline)
        return min(times, default=None)
