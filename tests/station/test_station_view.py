"""StationView folds port events into what a person sees (pure, synchronous)."""

from __future__ import annotations

from chargeport.port import (
    ErrorCode,
    LinkChanged,
    MeterValue,
    PortErrorEvent,
    PortEvent,
    PortInfo,
    SessionEvent,
    SessionEventType,
    TransactionData,
)
from main_node.view import StationView


def info(n: int) -> PortInfo:
    return PortInfo(n, f"S{n}", "1.0.0", 32.0, 3, remote=n > 1)


def ev(seq: int, body: object) -> PortEvent:
    return PortEvent(seq=seq, timestamp=1000.0 + seq, body=body)  # type: ignore[arg-type]


def session(kind: SessionEventType, tx: TransactionData | None = None) -> SessionEvent:
    return SessionEvent(kind, "sess-1", tx)


def test_a_finished_transaction_counts_once_with_its_energy() -> None:
    view = StationView("ST", [info(1), info(2)])
    view.apply(1, ev(1, session(SessionEventType.SESSION_STARTED)))
    view.apply(
        1, ev(2, session(SessionEventType.TRANSACTION_STARTED, TransactionData("t1", "TAG", 100.0)))
    )
    view.apply(1, ev(3, MeterValue(energy_wh=150.0, power_w=11000.0, current_a=(16.0, 16.0, 16.0))))
    gun = view.snapshot()["guns"][0]
    assert gun["state"] == "Transaction started"
    assert gun["session_energy_wh"] == 50.0
    view.apply(
        1,
        ev(4, session(SessionEventType.TRANSACTION_FINISHED, TransactionData("t1", "TAG", 180.0))),
    )
    view.apply(1, ev(5, session(SessionEventType.SESSION_FINISHED)))
    snap = view.snapshot()
    assert snap["guns"][0]["sessions_completed"] == 1
    assert snap["guns"][0]["energy_delivered_wh"] == 80.0
    assert snap["guns"][0]["transaction_id"] == ""
    assert snap["guns"][1]["sessions_completed"] == 0


def test_link_loss_and_errors_are_visible() -> None:
    view = StationView("ST", [info(2)])
    view.apply(2, ev(1, LinkChanged(connected=True, boot_id="b1", firmware_version="1.2.0")))
    view.apply(2, ev(2, PortErrorEvent(ErrorCode.GROUND_FAILURE, "RCD tripped", True)))
    gun = view.snapshot()["guns"][0]
    assert gun["boot_id"] == "b1" and gun["firmware_version"] == "1.2.0"
    assert gun["active_errors"] == {"GroundFailure": "RCD tripped"}
    assert gun["faults"] == ["GroundFailure"]
    view.apply(2, ev(3, PortErrorEvent(ErrorCode.GROUND_FAILURE, "", False)))
    view.apply(2, ev(4, LinkChanged(connected=False)))
    gun = view.snapshot()["guns"][0]
    assert gun["active_errors"] == {}
    assert gun["link_up"] is False and gun["state"] == "Link lost"
    assert gun["power_w"] == 0.0 and gun["current_a"] == []


def test_listeners_hear_every_change_and_unknown_connectors_are_ignored() -> None:
    view = StationView("ST", [info(1)])
    heard: list[int] = []
    remove = view.add_listener(lambda: heard.append(view.version))
    view.apply(9, ev(1, session(SessionEventType.SESSION_STARTED)))
    view.apply(1, ev(2, session(SessionEventType.SESSION_STARTED)))
    view.set_allocation({1: 16.0})
    view.set_allocation({1: 16.0})  # unchanged: no notification
    remove()
    view.set_status(firmware="Installing")
    assert heard == [1, 2]


def test_seed_from_a_snapshot_shows_what_happened_before_subscribing() -> None:
    from chargeport.port import CpState, LimitsChanged, PortStatus, SessionState

    view = StationView("ST", [info(1)])
    view.seed(
        1,
        PortStatus(
            cp_state=CpState.C,
            enabled=True,
            session_state=SessionState.CHARGING,
            session_id="s1",
            transaction_id="t1",
            meter=MeterValue(energy_wh=12.0, power_w=7000.0),
            limits=LimitsChanged(16.0, 3),
            errors=(PortErrorEvent(ErrorCode.HIGH_TEMPERATURE, "hot", True),),
        ),
    )
    gun = view.snapshot()["guns"][0]
    assert (gun["state"], gun["cp_state"], gun["transaction_id"]) == ("Charging", "C", "t1")
    assert (gun["power_w"], gun["limit_a"]) == (7000.0, 16.0)
    assert gun["active_errors"] == {"HighTemperature": "hot"}


def test_discovery_problems_are_part_of_the_status_and_notify_once() -> None:
    view = StationView("ST", [info(1)])
    heard: list[int] = []
    view.add_listener(lambda: heard.append(view.version))
    problem = "satellite SAT-9 is configured but was never seen on mDNS - check it is powered"
    view.set_discovery_problems([problem])
    view.set_discovery_problems([problem])
    assert view.snapshot()["discovery_problems"] == [problem]
    view.set_discovery_problems([])
    assert view.snapshot()["discovery_problems"] == []
    assert len(heard) == 2


def test_after_a_link_blip_the_gun_shows_its_session_again_not_link_lost() -> None:
    """Issue 11: one record per gun; the shown state is derived from it, so "Link lost" lasts
    exactly as long as the link is down, and what happened during the blip still counts."""
    view = StationView("ST", [info(2)])
    up = LinkChanged(connected=True, boot_id="b1", firmware_version="1")
    down = LinkChanged(connected=False, boot_id="b1")
    view.apply(2, ev(1, up))
    view.apply(2, ev(2, SessionEvent(SessionEventType.CHARGING_STARTED, "s1")))
    view.apply(2, ev(3, down))
    assert (view.gun_snapshot(2)["link_up"], view.gun_snapshot(2)["state"]) == (False, "Link lost")
    view.apply(2, ev(4, up))  # a blip: nothing happened meanwhile
    for gun in (view.gun_snapshot(2), view.snapshot()["guns"][0]):
        assert (gun["link_up"], gun["state"]) == (True, "Charging")
    view.apply(2, ev(5, down))
    view.apply(2, ev(6, SessionEvent(SessionEventType.CHARGING_PAUSED_EV, "s1")))  # replayed
    assert view.gun_snapshot(2)["state"] == "Link lost"  # still down
    view.apply(2, ev(7, up))
    assert (view.gun_snapshot(2)["link_up"], view.gun_snapshot(2)["state"]) == (
        True,
        "Paused by EV",
    )


def test_a_satellite_gun_is_not_reachable_until_its_link_first_comes_up() -> None:
    """At boot a satellite's gun says Connecting with link_up false, never 'up' by default."""
    view = StationView("ST", [info(1), info(2)])
    local, remote = view.snapshot()["guns"]
    assert (local["link_up"], remote["link_up"], remote["state"]) == (True, False, "Connecting")
    view.apply(2, ev(1, LinkChanged(True, "boot-1", "1.0.0")))
    view.apply(2, ev(2, LinkChanged(False, "boot-1", "1.0.0")))
    remote = view.snapshot()["guns"][1]
    assert (remote["link_up"], remote["state"]) == (False, "Link lost")
