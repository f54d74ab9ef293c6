"""When a StatusNotification goes out (OCPP 1.6 section 4.9 and key 9.1.21
MinimumStatusDuration), and a cold boot that does not report healthy satellites as faulted."""

from __future__ import annotations

from pathlib import Path

import pytest
from ocpp_station_fixture import make_ports, running_station, until

from chargeport.fake_port import FakePort
from chargeport.port import (
    LinkChanged,
    PortInfo,
    PortStatus,
    PortUnavailable,
    SessionEvent,
    SessionEventType,
)
from main_node.ocpp.connector_status import ConnectorStatus, ConnectorStatusTracker, StatusGate
from simulation.csms import CentralSystem

AVAILABLE = ConnectorStatus("Available")
CHARGING = ConnectorStatus("Charging")
SUSP_EV = ConnectorStatus("SuspendedEV")
SUSP_EVSE = ConnectorStatus("SuspendedEVSE")


# ---------------------------------------------------------------- the pure gate

# (name, MinimumStatusDuration, [(t, status)], due at t=check, check)
DEBOUNCE = [
    ("0 s: every status goes out at once", 0.0, [(0.0, SUSP_EVSE)], [], 0.0),
    ("a status that held goes out", 1.0, [(0.0, CHARGING)], [2], 1.0),
    ("not before it held", 1.0, [(0.0, CHARGING)], [], 0.99),
    (
        "a burst reaches the CSMS as its last status",
        1.0,
        [(0.0, SUSP_EVSE), (0.02, SUSP_EV), (0.05, CHARGING)],
        [2],
        1.05,
    ),
    ("back to the status last sent: nothing", 1.0, [(0.0, CHARGING), (0.1, AVAILABLE)], [], 5.0),
]


@pytest.mark.parametrize(
    ("name", "minimum", "changes", "due", "check"), DEBOUNCE, ids=[c[0] for c in DEBOUNCE]
)
def test_minimum_status_duration_ocpp16_4_9(
    name: str,
    minimum: float,
    changes: list[tuple[float, ConnectorStatus]],
    due: list[int],
    check: float,
) -> None:
    gate = StatusGate(boot_deadline=0.0)
    gate.min_duration_s = minimum
    gate.sent(2, AVAILABLE)
    immediate = [gate.changed(2, status, t) for t, status in changes]
    assert all(immediate) == (minimum == 0)
    assert gate.due(check) == due


def test_boot_window_holds_a_board_that_never_linked_ocpp16_4_9() -> None:
    """Within the window a never-linked board is booting; after it, its status is due."""
    gate = StatusGate(boot_deadline=30.0)
    assert gate.booting(linked_once=False, now=29.9)
    assert not gate.booting(linked_once=True, now=1.0)  # was up: a loss is an error at once
    assert not gate.booting(linked_once=False, now=30.0)
    gate.hold(3)
    assert gate.next_deadline() == 30.0
    assert gate.due(29.0) == []
    assert gate.due(30.0) == [3]
    gate.hold(4)
    assert gate.changed(4, AVAILABLE, 5.0)  # linked in time: no longer held
    assert gate.due(31.0) == []


# ---------------------------------------------------------------- live: debounce


def _burst(port: FakePort) -> None:
    """What every start looks like from a board: three statuses within milliseconds."""
    for kind in (
        SessionEventType.CHARGING_PAUSED_EVSE,
        SessionEventType.CHARGING_PAUSED_EV,
        SessionEventType.CHARGING_STARTED,
    ):
        port.emit(SessionEvent(kind, "s"))


async def _start(csms: CentralSystem, port: FakePort, cid: int) -> None:
    assert await csms.remote_start("TAG-OK", connector_id=cid) == "Accepted"
    await until(lambda: ("authorize", ("TAG-OK", None)) in port.calls)
    port.plug_in()
    await csms.wait_for(lambda: csms.last_status(cid) == "Preparing")


async def test_start_burst_is_one_charging_status_ocpp16_4_9(tmp_path: Path) -> None:
    """With MinimumStatusDuration (default 1 s), SuspendedEVSE -> SuspendedEV -> Charging
    within milliseconds reaches the CSMS as Preparing -> Charging."""
    async with CentralSystem() as csms:
        async with running_station(tmp_path / "db.sqlite", csms.url) as station:
            await csms.wait_for(lambda: len(csms.statuses) >= 5)
            await _start(csms, station.ports[2], 2)
            seen = len(csms.statuses)
            _burst(station.ports[2])
            await csms.wait_for(lambda: csms.last_status(2) == "Charging")
            assert [s for c, s, _ in csms.statuses[seen:] if c == 2] == ["Charging"]


async def test_minimum_status_duration_0_sends_every_status_ocpp16_4_9(tmp_path: Path) -> None:
    """MinimumStatusDuration=0 (ChangeConfiguration applies at once): every status goes out."""
    async with CentralSystem() as csms:
        async with running_station(tmp_path / "db.sqlite", csms.url) as station:
            await csms.wait_for(lambda: len(csms.statuses) >= 5)
            assert await csms.change_configuration("MinimumStatusDuration", "0") == "Accepted"
            await _start(csms, station.ports[4], 4)
            seen = len(csms.statuses)
            _burst(station.ports[4])
            await csms.wait_for(lambda: csms.last_status(4) == "Charging")
            sent = [s for c, s, _ in csms.statuses[seen:] if c == 4]
            assert sent == ["SuspendedEVSE", "SuspendedEV", "Charging"]


# ---------------------------------------------------------------- live: cold boot


class BootingSatellite(FakePort):
    """A satellite port whose board has not linked yet: status() fails until `link()`."""

    linked = False

    async def status(self) -> PortStatus:
        if not self.linked:
            raise PortUnavailable("satellite not linked yet")
        return await super().status()

    def link(self, up: bool = True) -> None:
        self.linked = up
        self.emit(LinkChanged(up, "boot-1", "1.0.0"))


def _ports() -> dict[int, FakePort]:
    ports = make_ports()
    ports[3] = BootingSatellite(PortInfo(3, "SER-3", "1.0.0", 32.0, 3, remote=True))
    return ports


async def test_satellite_booting_is_not_reported_faulted_ocpp16_4_9(tmp_path: Path) -> None:
    """At a cold boot a satellite not linked yet is held, not sent as Unavailable/InternalError;
    once its link comes up it is Available. A link that was up and is lost is an error."""
    ports = _ports()
    async with CentralSystem() as csms:
        async with running_station(tmp_path / "db.sqlite", csms.url, ports, boot_window_s=30.0):
            await csms.wait_for(lambda: {c for c, _, _ in csms.statuses} == {0, 1, 2, 4})
            assert all(s == "Available" for _, s, _ in csms.statuses)
            ports[3].link()  # type: ignore[attr-defined]
            await csms.wait_for(lambda: csms.last_status(3) == "Available")
            assert [s for c, s, _ in csms.statuses if c == 3] == ["Available"]
            ports[3].link(False)  # type: ignore[attr-defined]
            await csms.wait_for(lambda: csms.last_status(3) == "Unavailable")
            assert csms.statuses[-1] == (3, "Unavailable", "InternalError")


async def test_satellite_missing_the_boot_window_is_an_error_ocpp16_4_9(tmp_path: Path) -> None:
    """A board that does not link within the boot window is reported Unavailable
    (InternalError) when the window ends."""
    ports = _ports()
    async with CentralSystem() as csms:
        async with running_station(tmp_path / "db.sqlite", csms.url, ports, boot_window_s=0.3):
            await csms.wait_for(lambda: csms.last_status(3) is not None)
            assert [(s, e) for c, s, e in csms.statuses if c == 3] == [
                ("Unavailable", "InternalError")
            ]


def test_withdrawn_authorization_frees_the_connector_ocpp16_9_1_6() -> None:
    """A board ends an authorization no EV used (ConnectionTimeOut) with Deauthorized: the
    connector leaves Preparing for Available (section 4.9)."""
    tracker = ConnectorStatusTracker()
    assert tracker.apply(SessionEvent(SessionEventType.AUTHORIZED, "")) == ConnectorStatus(
        "Preparing"
    )
    assert tracker.apply(SessionEvent(SessionEventType.DEAUTHORIZED, "")) == AVAILABLE
