"""What the energy manager knows about each port, and the snapshot it shows. Plain data.

`DEMAND` / `DEMAND_STATES` say which session events and states mean a port wants energy;
`PortFacts` is the manager's record of one port; `EnergySnapshot` is its projection for the
dashboard and the MQTT API.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from chargeport.port import SessionEventType, SessionState
from main_node.energy_policy import MainsStatus

__all__ = ["DEMAND", "DEMAND_STATES", "EnergySnapshot", "PortFacts", "check_amps"]

# Session events that start (True) or end (False) a port's demand for energy. Before
# authorization the session machine offers no PWM, so a plugged-in EV cannot draw yet.
DEMAND: dict[SessionEventType, bool] = {
    SessionEventType.AUTHORIZED: True,
    SessionEventType.TRANSACTION_STARTED: True,
    SessionEventType.PREPARE_CHARGING: True,
    SessionEventType.CHARGING_STARTED: True,
    SessionEventType.CHARGING_RESUMED: True,
    SessionEventType.CHARGING_PAUSED_EV: True,  # the EV may resume at any moment (B -> C)
    SessionEventType.CHARGING_PAUSED_EVSE: True,  # paused by us: resumes when current frees up
    SessionEventType.WAITING_FOR_ENERGY: True,
    SessionEventType.DEAUTHORIZED: False,
    SessionEventType.STOPPING_CHARGING: False,
    SessionEventType.CHARGING_FINISHED: False,
    SessionEventType.TRANSACTION_FINISHED: False,
    SessionEventType.SESSION_FINISHED: False,
    SessionEventType.PLUGIN_TIMEOUT: False,
    SessionEventType.DISABLED: False,
}

DEMAND_STATES = {
    SessionState.PREPARING,
    SessionState.CHARGING,
    SessionState.PAUSED_EV,
    SessionState.PAUSED_EVSE,
}


@dataclass(frozen=True, slots=True)
class EnergySnapshot:
    """What the dashboard and the MQTT API show."""

    site_limit_a: float
    available_a: float
    mains_a: tuple[float, float, float] | None
    station_limit_a: float | None
    allocation: dict[int, float]
    active: tuple[int, ...]
    paused: tuple[int, ...]  # active, but below the minimum share: allocated 0
    reserved: dict[int, float] = field(default_factory=dict)  # link lost, limit not expired
    mains_status: MainsStatus = MainsStatus.NONE  # stale: the fallback limit is in force
    pv_phases: int | None = None  # PV surplus mode: the phase count the ports are told

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able data (connector ids as strings)."""
        return {
            "site_limit_a": self.site_limit_a,
            "available_a": round(self.available_a, 2),
            "mains_a": list(self.mains_a) if self.mains_a is not None else None,
            "station_limit_a": self.station_limit_a,
            "allocation": {str(k): v for k, v in sorted(self.allocation.items())},
            "active": list(self.active),
            "paused": list(self.paused),
            "reserved": {str(k): v for k, v in sorted(self.reserved.items())},
            "mains_status": self.mains_status.value,
            "pv_phases": self.pv_phases,
        }


@dataclass
class PortFacts:
    active: bool = False
    order: int = 0
    link_up: bool = True
    enabled: bool = True
    current_a: tuple[float, ...] = ()
    power_w: float = 0.0
    profile_limit_a: float | None = None  # OCPP per-connector profile
    local_limit_a: float | None = None  # operator limit (MQTT / dashboard)
    local_phases: int | None = None
    last_sent: float | None = None  # last limit the port acknowledged
    push_error: str = ""  # why the last set_limit failed ("" = it worked): logged on change
    reserve_a: float = 0.0
    reserve_until: float = 0.0
    drift_resent_at: float = -math.inf


def check_amps(amps: float | None) -> None:
    if amps is not None and not (math.isfinite(amps) and amps >= 0):
        raise ValueError(f"a current limit must be a finite number >= 0, got {amps!r}")
