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

__all__ = ["ConnectorStatus", "ConnectorStatusTracker", "Phase", "station_status"]

NO_ERROR = "NoError"


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
    SessionEventType.DEAUTHORIZED: None,
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
            return ConnectorStatus("Unavailable", "InternalError", "link to satellite lost")
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
