"""The sans-IO link cores, both sides, as synchronous tables: handshake, resume or snapshot,
liveness and grace (link.proto "Theory of operation" 1-7; IEC 61851-1 fail-safe)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from chargeport import PROTOCOL_VERSION
from chargeport.port import (
    CommandRefused,
    CpState,
    CpStateChanged,
    LimitsChanged,
    MeterValue,
    PortDisabledChanged,
    PortNotFound,
    SessionEvent,
    SessionEventType,
    StopReason,
    TransactionData,
)
from chargeport.v1 import link_pb2 as pb
from main_node.link_core import (
    DesiredPort,
    LinkDown,
    LinkRefused,
    MainLinkCore,
    Publish,
    SendHeartbeat,
)
from satellite.link_core import (
    CancelGrace,
    EndStreams,
    FailSafe,
    HelloOutcome,
    LogWarning,
    SatelliteCore,
    SetEnabled,
    StartGrace,
    resume_refusal,
)

Ev = SessionEventType

# ------------------------------------------------------------------ the satellite's core


def sat(liveness_s: float = 2.0) -> SatelliteCore:
    ids = (f"s{i}" for i in itertools.count(1))
    return SatelliteCore(
        serial="SAT-1",
        connector=1,
        protocol_version=PROTOCOL_VERSION,
        session_ids=lambda: next(ids),
        liveness_s=liveness_s,
    )


def hello(
    core: SatelliteCore, boot: str = "m1", now: float = 0.0, liveness_s: float = 0.0
) -> HelloOutcome:
    return core.hello(
        station_id="st",
        main_boot_id=boot,
        protocol_version=PROTOCOL_VERSION,
        liveness_s=liveness_s,
        now=now,
    )


def linked(core: SatelliteCore, disabled: bool = False) -> str:
    out = hello(core)
    core.open_events(out.session_id, 0.0)
    core.on_ready(disabled, 0.0)
    return out.session_id


def test_sat_hello_refuses_another_protocol_version() -> None:
    core = sat()
    out = core.hello(
        station_id="st",
        main_boot_id="m",
        protocol_version=PROTOCOL_VERSION + 1,
        liveness_s=0,
        now=0,
    )
    assert out.refusal is not None and "protocol version mismatch" in out.refusal
    assert core.session_id is None


@pytest.mark.parametrize(
    ("first", "second", "resumed"),
    [("m1", "m1", True), ("m1", "m2", False)],
    ids=["same-main-boot-resumes", "new-main-boot-starts-afresh"],
)
def test_sat_hello_resumes_only_the_same_main_boot(first: str, second: str, resumed: bool) -> None:
    core = sat()
    a = hello(core, first)
    b = hello(core, second)
    assert not a.resumed and b.resumed is resumed
    assert a.session_id != b.session_id  # every Hello is a fresh session
    assert b.effects == (EndStreams(), StartGrace(2))  # older streams end; grace until Events


def test_sat_hello_takes_the_mains_liveness_or_its_own_default() -> None:
    core = sat(liveness_s=3.0)
    assert hello(core, liveness_s=0.5).liveness_s == 0.5
    assert hello(core, liveness_s=0.0).liveness_s == 3.0


@pytest.mark.parametrize(
    ("setup", "refusal"),
    [
        ("no-hello", "unknown session: call Hello first"),
        ("no-events", "Ready before subscribing to Events"),
        ("subscribed", None),
    ],
)
def test_sat_ready_needs_the_session_and_a_subscription(setup: str, refusal: str | None) -> None:
    core = sat()
    sid = "" if setup == "no-hello" else hello(core).session_id
    if setup == "subscribed":
        assert core.open_events(sid, 0.0) == (CancelGrace(),)
    assert core.ready_refusal(sid) == refusal


@pytest.mark.parametrize("disabled", [False, True])
def test_sat_every_ready_applies_the_mains_availability(disabled: bool) -> None:
    """Desired state re-applied on every Ready, whatever the board did meanwhile."""
    core = sat()
    sid = hello(core).session_id
    core.open_events(sid, 0.0)
    assert core.on_ready(disabled, 0.0) == (SetEnabled(not disabled),)
    assert core.on_ready(disabled, 0.0) == (SetEnabled(not disabled),)  # again: idempotent


@pytest.mark.parametrize(
    ("ready", "session", "connector", "error"),
    [
        (False, "s1", 1, CommandRefused),
        (True, "other", 1, CommandRefused),
        (True, "s1", 2, PortNotFound),
        (True, "s1", 1, None),
    ],
    ids=["before-ready", "stale-session", "wrong-connector", "ok"],
)
def test_sat_commands_need_ready_the_session_and_the_connector(
    ready: bool, session: str, connector: int, error: type | None
) -> None:
    core = sat()
    if ready:
        linked(core)
    else:
        hello(core)
    refusal = core.command_refusal(session, connector)
    assert (None if refusal is None else type(refusal)) is error


@pytest.mark.parametrize(
    ("silent_s", "ends"),
    [(0.0, False), (1.7, False), (1.8, True), (30.0, True)],
)
def test_sat_a_silent_main_ends_the_session_within_liveness(silent_s: float, ends: bool) -> None:
    """Declared one tick (liveness / 10) early, so a ticker never carries it past 2 s."""
    core = sat(liveness_s=2.0)
    linked(core)
    effects = core.tick(silent_s)
    if not ends:
        assert effects == () and core.ready
        return
    assert isinstance(effects[0], LogWarning) and "main silent" in effects[0].message
    assert effects[1:] == (EndStreams(), StartGrace(2))
    assert core.session_id is None and not core.ready
    assert core.tick(silent_s + 10) == ()  # said once


def test_sat_heartbeats_keep_the_session() -> None:
    core = sat(liveness_s=2.0)
    sid = linked(core)
    for now in (1.0, 2.0, 3.0):
        core.heard(sid, now)
        assert core.tick(now + 0.5) == ()
    core.heard("stale", 10.0)  # another session's message proves nothing
    assert core.tick(10.0) != ()


def test_sat_grace_expiry_fails_safe_only_if_no_main_came_back() -> None:
    core = sat()
    sid = linked(core)
    assert core.close_events(sid) == (StartGrace(2),)
    assert core.grace_expired(1) == ()  # an older timer
    sid2 = hello(core).session_id  # a main is back: Hello re-arms the grace ...
    core.open_events(sid2, 0.0)  # ... and Events cancels it
    assert core.grace_expired(3) == ()
    assert core.close_events(sid2) == (StartGrace(4),)
    assert core.grace_expired(4) == (EndStreams(), FailSafe())
    assert core.failsafe_count == 1 and core.session_id is None


def test_sat_grace_after_silence_fails_safe_though_the_hung_streams_linger() -> None:
    core = sat(liveness_s=2.0)
    linked(core)
    (_, _, start) = core.tick(5.0)
    assert isinstance(start, StartGrace)
    assert core.streams == 1  # the silent main's stream has not closed yet
    assert core.grace_expired(start.token) == (EndStreams(), FailSafe())


# ------------------------------------------------------------------ the main's core


def main_core(liveness_s: float = 2.0) -> MainLinkCore:
    return MainLinkCore(
        "SAT-1",
        station_id="st",
        main_boot_id="m1",
        protocol_version=PROTOCOL_VERSION,
        liveness_s=liveness_s,
    )


def answer(
    boot: str = "b1",
    *,
    resumed: bool = False,
    last_seq: int = 0,
    serial: str = "SAT-1",
    protocol_version: int = PROTOCOL_VERSION,
) -> pb.HelloResponse:
    return pb.HelloResponse(
        serial=serial,
        satellite_boot_id=boot,
        session_id="s",
        protocol_version=protocol_version,
        last_seq=last_seq,
        resumed=resumed,
    )


def snapshot(core: MainLinkCore, last_seq: int, **status: object) -> list[Publish]:
    st = pb.PortStatus(
        cp_state=pb.CP_STATE_A, enabled=True, session_state="Idle", reservation_id=-1
    )
    for k, v in status.items():
        if k == "meter_wh":
            st.meter.energy_wh = v  # type: ignore[assignment]
        else:
            setattr(st, k, v)
    wire = pb.Event(snapshot=pb.Snapshot(status=st, last_seq=last_seq))
    out = core.on_wire(wire, 0.0)
    return [p for p in out if isinstance(p, Publish)]


@pytest.mark.parametrize(
    ("hello_kw", "message"),
    [
        ({"protocol_version": PROTOCOL_VERSION + 1}, "protocol version mismatch"),
        ({"serial": "SAT-9"}, "expected satellite SAT-1"),
    ],
)
def test_main_refuses_a_wrong_protocol_or_board(hello_kw: dict[str, Any], message: str) -> None:
    with pytest.raises(LinkRefused, match=message):
        main_core().on_hello(answer(**hello_kw))


def test_main_new_to_a_board_asks_for_a_snapshot_not_the_history() -> None:
    core = main_core()
    plan = core.on_hello(answer(last_seq=40))
    assert plan.snapshot and plan.events.snapshot and plan.publish == []
    assert not core.synced
    snapshot(core, last_seq=41)
    assert core.synced and core.last_seq == 41


def test_main_blip_within_one_boot_resumes_after_the_last_seq() -> None:
    core = main_core()
    core.on_hello(answer())
    snapshot(core, last_seq=5)
    core.on_wire(pb.Event(seq=6, meter=pb.MeterValue(energy_wh=6)), 0.0)
    plan = core.on_hello(answer(resumed=True, last_seq=9))
    assert not plan.snapshot and plan.events.after_seq == 6 and not plan.events.snapshot


def test_main_a_drop_before_the_snapshot_asks_for_it_again() -> None:
    core = main_core()
    core.on_hello(answer())
    plan = core.on_hello(answer(resumed=True, last_seq=9))  # the satellite knows us now
    assert plan.snapshot


def test_main_a_restarted_board_closes_what_it_had_open_with_power_loss() -> None:
    """OCPP 1.6 6.49 Reason PowerLoss, with the last meter value the main saw."""
    core = main_core()
    core.on_hello(answer("b1"))
    snapshot(core, last_seq=1)
    tx = pb.TransactionData(transaction_id="t1", id_tag="TAG", meter_wh=10, reservation_id=-1)
    for seq, wire in enumerate(
        [
            pb.Event(session=pb.SessionEvent(type="SessionStarted", session_id="x")),
            pb.Event(
                session=pb.SessionEvent(type="TransactionStarted", session_id="x", transaction=tx)
            ),
            pb.Event(meter=pb.MeterValue(energy_wh=55)),
        ],
        start=2,
    ):
        wire.seq = seq
        core.on_wire(wire, 0.0)
    plan = core.on_hello(answer("b2"))
    # Issue 16: closed once the new boot's snapshot came (its journal replays a real end first).
    assert plan.publish == []
    assert plan.snapshot and core.last_seq == 0 and core.boot_id == "b2"
    published = snapshot(core, last_seq=0)
    kinds = [(p.body.type, p.body.transaction) for p in published[:2]]  # type: ignore[union-attr]
    assert [k for k, _ in kinds] == [Ev.TRANSACTION_FINISHED, Ev.SESSION_FINISHED]
    finished = kinds[0][1]
    assert finished is not None
    assert (finished.meter_wh, finished.stop_reason) == (55.0, StopReason.POWER_LOSS)


def test_main_replayed_wire_events_are_dropped_once_seen() -> None:
    core = main_core()
    core.on_hello(answer())
    snapshot(core, last_seq=0)
    published = [
        core.on_wire(pb.Event(seq=seq, meter=pb.MeterValue(energy_wh=seq)), 0.0)
        for seq in (1, 2, 2, 1, 3)
    ]
    assert [len(p) for p in published] == [1, 1, 0, 0, 1]


def test_main_heartbeats_publish_nothing() -> None:
    core = main_core()
    assert core.on_wire(pb.Event(heartbeat=pb.Heartbeat()), 0.0) == []


def test_main_snapshot_of_an_idle_port_is_its_state_only() -> None:
    core = main_core()
    core.on_hello(answer())
    bodies = [p.body for p in snapshot(core, last_seq=9, meter_wh=120.0)]
    assert not any(isinstance(b, SessionEvent) for b in bodies)
    assert CpStateChanged(CpState.A) in bodies and PortDisabledChanged(True) in bodies
    assert any(isinstance(b, MeterValue) and b.energy_wh == 120.0 for b in bodies)


def test_main_snapshot_of_a_charging_port_restates_session_transaction_and_phase() -> None:
    """OCPP 1.6 4.9: the connector shows Charging at once, without Preparing in between."""
    core = main_core()
    core.on_hello(answer())
    st = pb.PortStatus(
        cp_state=pb.CP_STATE_C,
        enabled=True,
        session_state="Charging",
        session_id="x",
        transaction_id="t1",
        reservation_id=-1,
    )
    st.limits.CopyFrom(pb.Limits(max_current_a=16, phases=3))
    tx = pb.TransactionData(transaction_id="t1", id_tag="TAG", meter_wh=10, reservation_id=-1)
    wire = pb.Event(snapshot=pb.Snapshot(status=st, transaction=tx, last_seq=7))
    bodies = [p.body for p in core.on_wire(wire, 0.0) if isinstance(p, Publish)]
    sessions = [b for b in bodies if isinstance(b, SessionEvent)]
    assert [s.type for s in sessions] == [
        Ev.SESSION_STARTED,
        Ev.TRANSACTION_STARTED,
        Ev.CHARGING_STARTED,
    ]
    assert sessions[1].transaction is not None and sessions[1].transaction.id_tag == "TAG"
    assert LimitsChanged(16.0, 3) in bodies
    assert core.ledger.transaction is not None and core.ledger.session_id == "x"


@pytest.mark.parametrize(
    ("silent_s", "effects"),
    [
        (0.1, []),
        (0.4, [SendHeartbeat()]),
        (1.9, [LinkDown("no heartbeat for 1.9 s (liveness 2 s)")]),
    ],
    ids=["quiet", "heartbeat-due", "silent-down"],
)
def test_main_tick_sends_heartbeats_and_declares_a_silent_board_down(
    silent_s: float, effects: list[object]
) -> None:
    core = main_core(liveness_s=2.0)
    core.link_up(100.0)
    assert core.tick(100.0 + silent_s) == effects


def test_main_tick_does_nothing_while_down() -> None:
    core = main_core()
    core.link_up(0.0)
    core.link_down()
    assert core.tick(60.0) == []


@pytest.mark.parametrize(
    ("limit", "now", "expected"),
    [
        (None, 0.0, None),
        ((16.0, 3, 0.0, 100.0), 500.0, (16.0, 3, 0.0)),  # until replaced
        ((16.0, 3, 60.0, 100.0), 130.0, (16.0, 3, 30.0)),  # what is left of its validity
        ((16.0, 3, 60.0, 100.0), 170.0, None),  # expired
    ],
)
def test_desired_limit_is_reapplied_with_what_is_left_of_its_validity(
    limit: tuple[float, int, float, float] | None,
    now: float,
    expected: tuple[float, int, float] | None,
) -> None:
    assert DesiredPort(limit=limit).limit_to_apply(now) == expected


def test_ready_carries_the_desired_availability() -> None:
    core = main_core()
    assert not core.ready_request("s").disabled
    core.desired.enabled = False
    assert core.ready_request("s").disabled


@pytest.mark.parametrize(
    ("event", "kept"),
    [
        (SessionEvent(Ev.RESERVATION_END, ""), False),
        (
            SessionEvent(
                Ev.TRANSACTION_STARTED, "x", TransactionData("t", "TAG7", 0.0, reservation_id=7)
            ),
            False,
        ),
        (
            SessionEvent(Ev.TRANSACTION_STARTED, "x", TransactionData("t", "TAG1", 0.0)),
            True,
        ),
        (SessionEvent(Ev.SESSION_STARTED, "x"), True),
    ],
    ids=["ended", "used", "another-transaction", "unrelated"],
)
def test_a_reservation_the_port_ended_is_no_longer_desired_ocpp16_5_13(
    event: SessionEvent, kept: bool
) -> None:
    desired = DesiredPort(reservation=(7, "TAG7", 1e12))
    desired.observe(event)
    assert (desired.reservation is not None) is kept


@pytest.mark.parametrize(
    ("after", "first", "last", "refusal"),
    [
        (0, 1, 0, None),  # an empty ring, from the start
        (5, 1, 9, None),  # every later event held
        (9, 1, 9, None),  # nothing new
        (12, 1, 9, "after_seq 12 is beyond the last event 9"),  # not from this boot
        (2, 5, 9, "events 3..4 are no longer held"),  # the ring moved on: re-sync
        (19, 20, 19, None),  # seen everything, nothing held beyond it
    ],
)
def test_sat_resume_needs_every_event_after_the_cursor(
    after: int, first: int, last: int, refusal: str | None
) -> None:
    assert resume_refusal(after, first, last) == refusal
