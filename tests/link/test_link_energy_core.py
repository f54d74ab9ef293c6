"""The main's link core and the energy chain (issue 16), pure: a lost or restarted satellite's
transaction ends with the board's own end register when the board can still tell it.

OCPP 1.6 4.10 / 6.49: one StopTransaction per transaction, and a StopTransaction sent cannot be
corrected, so the main waits for the board's end rather than guessing it.
"""

from __future__ import annotations

from chargeport import PROTOCOL_VERSION
from chargeport.port import SessionEvent, StopReason
from chargeport.port import SessionEventType as Ev
from chargeport.v1 import link_pb2 as pb
from main_node.link_core import MainLinkCore, Publish

TX = pb.TransactionData(transaction_id="t1", id_tag="TAG", meter_wh=10, reservation_id=-1)


def core_with_open_tx() -> MainLinkCore:
    core = MainLinkCore(
        "SAT-1", station_id="st", main_boot_id="m1", protocol_version=PROTOCOL_VERSION
    )
    core.on_hello(hello("b1"))
    core.on_wire(snap(0), 0.0)
    for seq, wire in enumerate(
        [
            pb.Event(session=pb.SessionEvent(type="SessionStarted", session_id="x")),
            pb.Event(
                session=pb.SessionEvent(type="TransactionStarted", session_id="x", transaction=TX)
            ),
            pb.Event(meter=pb.MeterValue(energy_wh=55)),
        ],
        start=1,
    ):
        wire.seq = seq
        core.on_wire(wire, 0.0)
    core.link_up(0.0)
    return core


def hello(boot: str, resumed: bool = False) -> pb.HelloResponse:
    return pb.HelloResponse(
        serial="SAT-1",
        satellite_boot_id=boot,
        session_id="s",
        protocol_version=PROTOCOL_VERSION,
        resumed=resumed,
    )


def snap(last_seq: int) -> pb.Event:
    st = pb.PortStatus(cp_state=pb.CP_STATE_B, enabled=True, session_state="Idle")
    st.reservation_id = -1
    return pb.Event(snapshot=pb.Snapshot(status=st, last_seq=last_seq))


def finished(events: list[Publish]) -> list[SessionEvent]:
    return [
        p.body
        for p in events
        if isinstance(p.body, SessionEvent) and p.body.type is Ev.TRANSACTION_FINISHED
    ]


def test_past_the_grace_with_hold_nothing_is_closed_until_the_board_tells_its_end() -> None:
    core = core_with_open_tx()
    core.link_down()
    assert core.grace_expired(hold=True) == [] and core.holding
    # Back with the same boot: the ring replays the fail-safe stop at the board's register.
    end = pb.TransactionData(
        transaction_id="t1", id_tag="TAG", meter_wh=61.5, reservation_id=-1, stop_reason="Other"
    )
    end.signed_meter = "OCMF|{}|{}"
    wire = pb.Event(
        seq=4, session=pb.SessionEvent(type="TransactionFinished", session_id="x", transaction=end)
    )
    core.link_up(1.0)
    [stop] = finished(list(core.on_wire(wire, 1.0)))  # type: ignore[arg-type]
    assert stop.transaction is not None
    assert (stop.transaction.meter_wh, stop.transaction.signed_meter) == (61.5, "OCMF|{}|{}")
    assert core.hold_expired() == []  # came back: the deadline closes nothing


def test_past_the_hold_deadline_the_last_reading_closes_it_once() -> None:
    core = core_with_open_tx()
    core.link_down()
    core.grace_expired(hold=True)
    [stop] = finished(core.hold_expired())
    assert stop.transaction is not None
    assert (stop.transaction.meter_wh, stop.transaction.stop_reason) == (55.0, StopReason.OTHER)
    assert core.reconcile_due and not core.holding


def test_without_hold_the_grace_closes_at_once() -> None:
    core = core_with_open_tx()
    core.link_down()
    [stop] = finished(core.grace_expired())
    assert stop.transaction is not None and stop.transaction.meter_wh == 55.0


def test_a_restarted_board_ends_its_transaction_with_the_journals_real_register() -> None:
    """The journal's records come with seq 0 ahead of the snapshot; no PowerLoss is invented."""
    core = core_with_open_tx()
    core.link_down()
    plan = core.on_hello(hello("b2"))
    assert plan.snapshot and plan.publish == []
    end = pb.TransactionData(
        transaction_id="t1",
        id_tag="TAG",
        meter_wh=70.25,
        reservation_id=-1,
        stop_reason="PowerLoss",
        signed_meter="OCMF|{p}|{}",
    )
    records = [
        pb.Event(
            seq=0,
            session=pb.SessionEvent(type="TransactionStarted", session_id="x", transaction=TX),
        ),
        pb.Event(
            seq=0,
            session=pb.SessionEvent(type="TransactionFinished", session_id="x", transaction=end),
        ),
    ]
    out: list[Publish] = []
    for wire in records:
        out += core.on_wire(wire, 1.0)  # type: ignore[arg-type]
    out += core.on_wire(snap(0), 1.0)  # type: ignore[arg-type]
    stops = finished(out)
    assert len(stops) == 1 and stops[0].transaction is not None
    assert stops[0].transaction.meter_wh == 70.25
    assert stops[0].transaction.signed_meter == "OCMF|{p}|{}"


def test_a_restarted_board_without_a_journal_is_closed_at_the_last_reading_seen() -> None:
    core = core_with_open_tx()
    core.link_down()
    core.on_hello(hello("b2"))
    [stop] = finished(list(core.on_wire(snap(0), 1.0)))  # type: ignore[arg-type]
    assert stop.transaction is not None
    assert (stop.transaction.meter_wh, stop.transaction.stop_reason) == (
        55.0,
        StopReason.POWER_LOSS,
    )
