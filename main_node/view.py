"""StationView: what a person watching the station sees, folded from the ports' events.

Pure: `apply(connector, event, now)` updates the view, `snapshot()` returns plain JSON-able
data. The dashboard, the MQTT API and `chargeport sim --headless` all read the same snapshot,
so a gun's "sessions completed" means the same thing everywhere.

Each gun keeps facts (link up, the session's headline, ...) and derives what it shows from
them: `state` is "Link lost" exactly while the link is down, so a view can never say
"Link lost" with `link_up` true (or the other way round) after a blip.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chargeport.port import (
    CpStateChanged,
    LimitsChanged,
    LinkChanged,
    MeterValue,
    PortDisabledChanged,
    PortErrorEvent,
    PortEvent,
    PortInfo,
    PortStatus,
    SessionEvent,
    SessionEventType,
    SessionState,
)

__all__ = ["GunView", "StationView"]

# Session events that set the gun's headline state (EVerest vocabulary -> what a person reads).
_HEADLINE = {
    SessionEventType.SESSION_STARTED: "Plugged in",
    SessionEventType.AUTH_REQUIRED: "Waiting for authorization",
    SessionEventType.AUTHORIZED: "Authorized",
    SessionEventType.TRANSACTION_STARTED: "Transaction started",
    SessionEventType.CHARGING_STARTED: "Charging",
    SessionEventType.CHARGING_RESUMED: "Charging",
    SessionEventType.CHARGING_PAUSED_EV: "Paused by EV",
    SessionEventType.CHARGING_PAUSED_EVSE: "Paused by station",
    SessionEventType.WAITING_FOR_ENERGY: "Waiting for energy",
    SessionEventType.STOPPING_CHARGING: "Stopping",
    SessionEventType.TRANSACTION_FINISHED: "Finished",
    SessionEventType.SESSION_FINISHED: "Available",
    SessionEventType.PLUGIN_TIMEOUT: "Plug-in timeout",
    SessionEventType.RESERVATION_START: "Reserved",
    SessionEventType.RESERVATION_END: "Available",
    SessionEventType.DISABLED: "Disabled",
    SessionEventType.ENABLED: "Available",
}

# A snapshot's session state -> the same words the session events use.
_SESSION_STATE = {
    SessionState.IDLE: "Available",
    SessionState.RESERVED: "Reserved",
    SessionState.WAITING_FOR_AUTH: "Waiting for authorization",
    SessionState.PREPARING: "Authorized",
    SessionState.CHARGING: "Charging",
    SessionState.PAUSED_EV: "Paused by EV",
    SessionState.PAUSED_EVSE: "Paused by station",
    SessionState.FINISHING: "Finished",
    SessionState.FAULTED: "Faulted",
    SessionState.DISABLED: "Disabled",
}

HISTORY = 120  # power samples kept per gun for the charts


@dataclass
class GunView:
    info: PortInfo
    headline: str = "Unknown"  # the session's state in words, whatever the link does
    cp_state: str = "?"
    enabled: bool = True
    link_up: bool = True
    boot_id: str = ""
    firmware_version: str = ""
    session_id: str = ""
    id_tag: str = ""
    transaction_id: str = ""
    meter_start_wh: float = 0.0
    energy_wh: float = 0.0  # meter register
    session_energy_wh: float = 0.0
    energy_delivered_wh: float = 0.0  # summed over finished transactions
    signed_meter: str = ""  # the last OCMF record the gun's own board signed (issue 16)
    power_w: float = 0.0
    current_a: tuple[float, ...] = ()
    temperature_c: float = 0.0
    limit_a: float = 0.0
    sessions_completed: int = 0
    faults: list[str] = field(default_factory=list)
    active_errors: dict[str, str] = field(default_factory=dict)
    history: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=HISTORY))

    linked_once: bool = False  # the board answered at least once since the main started

    def __post_init__(self) -> None:
        # A satellite's gun is reachable only once its link has come up.
        self.link_up = not self.info.remote

    @property
    def state(self) -> str:
        """What a person reads: derived, never stored, so it cannot disagree with `link_up`."""
        if self.link_up:
            return self.headline
        return "Link lost" if self.linked_once else "Connecting"


class StationView:
    """Per-gun state for the whole station."""

    def __init__(self, station_id: str, infos: list[PortInfo]) -> None:
        self.station_id = station_id
        self.guns = {info.connector_id: GunView(info) for info in infos}
        self.firmware_status = "Idle"
        self.diagnostics_status = "Idle"
        self.allocation: dict[int, float] = {}
        self.ocpp_connected = False
        self.discovery_problems: list[str] = []  # duplicate / missing / unconfigured boards
        self.storage_fault: str | None = None  # the OCPP journal cannot write (disk full, ...)
        self.version = 0  # bumps on every change; the dashboard pushes when it moves
        self._listeners: list[Callable[[], None]] = []

    def add_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` after every change; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _changed(self) -> None:
        self.version += 1
        for listener in list(self._listeners):
            listener()

    def apply(self, connector: int, event: PortEvent) -> None:
        gun = self.guns.get(connector)
        if gun is None:
            return
        body = event.body
        if isinstance(body, SessionEvent):
            self._apply_session(gun, body)
        elif isinstance(body, MeterValue):
            gun.energy_wh = body.energy_wh
            gun.power_w = body.power_w
            gun.current_a = body.current_a
            gun.temperature_c = body.temperature_c
            if gun.transaction_id:
                gun.session_energy_wh = max(0.0, body.energy_wh - gun.meter_start_wh)
            gun.history.append((event.timestamp, body.power_w))
        elif isinstance(body, CpStateChanged):
            gun.cp_state = body.state.value
        elif isinstance(body, LimitsChanged):
            gun.limit_a = body.max_current_a
        elif isinstance(body, PortErrorEvent):
            if body.active:
                gun.active_errors[body.code.value] = body.message
                gun.faults.append(body.code.value)
            else:
                gun.active_errors.pop(body.code.value, None)
        elif isinstance(body, PortDisabledChanged):
            gun.enabled = body.enabled
        elif isinstance(body, LinkChanged):
            gun.link_up = body.connected
            gun.linked_once = gun.linked_once or body.connected
            if body.connected:
                gun.boot_id = body.boot_id
                gun.firmware_version = body.firmware_version or gun.firmware_version
            else:
                gun.power_w = 0.0
                gun.current_a = ()  # nothing measured while the board is unreachable
        self._changed()

    def seeded(self, connector: int) -> bool:
        """True once the gun's state came from its port (a snapshot or a session event)."""
        gun = self.guns.get(connector)
        return gun is None or gun.headline != "Unknown"

    def seed(self, connector: int, status: PortStatus) -> None:
        """Start from a port's snapshot (what happened before we subscribed)."""
        gun = self.guns.get(connector)
        if gun is None:
            return
        # The port answered, so it is reachable now (a link loss after this is an event).
        gun.link_up = gun.linked_once = True
        gun.headline = _SESSION_STATE.get(status.session_state, status.session_state.value)
        gun.cp_state = status.cp_state.value
        gun.enabled = status.enabled
        gun.session_id = status.session_id or ""
        gun.transaction_id = status.transaction_id or ""
        if status.meter is not None:
            gun.energy_wh = status.meter.energy_wh
            gun.power_w = status.meter.power_w
            gun.current_a = status.meter.current_a
            gun.temperature_c = status.meter.temperature_c
        if status.limits is not None:
            gun.limit_a = status.limits.max_current_a
        gun.active_errors = {e.code.value: e.message for e in status.errors if e.active}
        self._changed()

    def _apply_session(self, gun: GunView, event: SessionEvent) -> None:
        gun.headline = _HEADLINE.get(event.type, gun.headline)
        gun.session_id = event.session_id
        tx = event.transaction
        if tx is not None and tx.signed_meter:
            gun.signed_meter = tx.signed_meter
        if event.type is SessionEventType.TRANSACTION_STARTED and tx is not None:
            gun.transaction_id = tx.transaction_id
            gun.id_tag = tx.id_tag
            gun.meter_start_wh = tx.meter_wh
            gun.session_energy_wh = 0.0
        elif event.type is SessionEventType.TRANSACTION_FINISHED and tx is not None:
            delivered = max(0.0, tx.meter_wh - gun.meter_start_wh)
            gun.energy_delivered_wh += delivered
            gun.session_energy_wh = delivered
            gun.sessions_completed += 1
            gun.transaction_id = ""
        elif event.type is SessionEventType.SESSION_FINISHED:
            gun.id_tag = ""
            gun.power_w = 0.0

    def set_status(self, *, firmware: str | None = None, diagnostics: str | None = None) -> None:
        if firmware is not None:
            self.firmware_status = firmware
        if diagnostics is not None:
            self.diagnostics_status = diagnostics
        self._changed()

    def set_allocation(self, allocation: dict[int, float]) -> None:
        if allocation != self.allocation:
            self.allocation = dict(allocation)
            self._changed()

    def set_discovery_problems(self, problems: list[str]) -> None:
        if problems != self.discovery_problems:
            self.discovery_problems = list(problems)
            self._changed()

    def set_storage_fault(self, fault: str | None) -> None:
        if fault != self.storage_fault:
            self.storage_fault = fault
            self._changed()

    def set_ocpp_connected(self, connected: bool) -> None:
        if connected != self.ocpp_connected:
            self.ocpp_connected = connected
            self._changed()

    def gun_snapshot(self, connector: int, *, history: bool = True) -> dict[str, Any]:
        """One gun as in `snapshot()["guns"]`; `history=False` leaves out the power history."""
        return _gun_json(self.guns[connector], history=history)

    def snapshot(self) -> dict[str, Any]:
        return {
            "station_id": self.station_id,
            "version": self.version,
            "ocpp_connected": self.ocpp_connected,
            "firmware_status": self.firmware_status,
            "diagnostics_status": self.diagnostics_status,
            "allocation": {str(k): v for k, v in sorted(self.allocation.items())},
            "discovery_problems": list(self.discovery_problems),
            "storage_fault": self.storage_fault,
            "guns": [_gun_json(g) for _, g in sorted(self.guns.items())],
        }


def _gun_json(gun: GunView, *, history: bool = True) -> dict[str, Any]:
    data = {
        "connector": gun.info.connector_id,
        "serial": gun.info.serial,
        "remote": gun.info.remote,
        "state": gun.state,
        "cp_state": gun.cp_state,
        "enabled": gun.enabled,
        "link_up": gun.link_up,
        "boot_id": gun.boot_id,
        "firmware_version": gun.firmware_version or gun.info.firmware_version,
        "session_id": gun.session_id,
        "id_tag": gun.id_tag,
        "transaction_id": gun.transaction_id,
        "power_w": round(gun.power_w, 1),
        "current_a": [round(c, 2) for c in gun.current_a],
        "temperature_c": round(gun.temperature_c, 1),
        "energy_wh": round(gun.energy_wh, 2),
        "session_energy_wh": round(gun.session_energy_wh, 2),
        "energy_delivered_wh": round(gun.energy_delivered_wh, 2),
        "signed_meter": gun.signed_meter,
        "limit_a": gun.limit_a,
        "sessions_completed": gun.sessions_completed,
        "faults": list(gun.faults),
        "active_errors": dict(gun.active_errors),
    }
    if history:
        data["history"] = [[round(t, 2), round(p, 1)] for t, p in gun.history]
    return data
