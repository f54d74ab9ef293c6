"""The main's ledger of what is open on a remote port (pure): synthesised ends, dedupe so OCPP
sees one StopTransaction per transaction (OCPP 1.6 4.10), reconciliation against a status."""

from __future__ import annotations

import pytest

from chargeport.port import (
    CpState,
    CpStateChanged,
    ErrorCode,
    LimitsChanged,
    MeterValue,
    PortDisabledChanged,
    PortErrorEvent,
    PortStatus,
    SessionEvent,
    SessionEventType,
    SessionState,
    StopReason,
    TransactionData,
)
from main_node.port_ledger import Ledger

T = SessionEventType
TX = TransactionData("tx1", "TAG", 100.0)


def charging() -> Ledger:
    led = Ledger()
    for body in (
        SessionEvent(T.SESSION_STARTED, "s1"),
        SessionEvent(T.TRANSACTION_STARTED, "s1", TX),
        MeterValue(150.0, 7000.0),
    ):
        assert led.accept(body)
    return led


def test_close_open_ends_the_transaction_with_the_last_meter_then_the_session() -> None:
    led = charging()
    fin, end = led.close_open(StopReason.OTHER)
    assert fin == SessionEvent(
        T.TRANSACTION_FINISHED, "s1", TransactionData("tx1", "TAG", 150.0, None, StopReason.OTHER)
    )
    assert end == SessionEvent(T.SESSION_FINISHED, "s1")
    assert not led.has_open and led.close_open(StopReason.OTHER) == []


def test_close_without_meter_values_uses_the_meter_start() -> None:
    led = Ledger()
    led.accept(SessionEvent(T.TRANSACTION_STARTED, "s1", TX))
    [fin] = led.close_transaction(StopReason.POWER_LOSS)
    assert isinstance(fin, SessionEvent) and fin.transaction is not None
    assert fin.transaction.meter_wh == 100.0


REPLAYED = [
    (
        "the satellite's own TransactionFinished",
        SessionEvent(T.TRANSACTION_FINISHED, "s1", TX),
        False,
    ),
    ("the satellite's own SessionFinished", SessionEvent(T.SESSION_FINISHED, "s1"), False),
    (
        "another transaction's end",
        SessionEvent(T.TRANSACTION_FINISHED, "s2", TransactionData("tx2", "T", 0)),
        True,
    ),
    ("a later session's end", SessionEvent(T.SESSION_FINISHED, "s2"), True),
    # A closed transaction or session stays closed when its start is replayed.
    ("the closed transaction's start", SessionEvent(T.TRANSACTION_STARTED, "s1", TX), False),
    ("the closed session's start", SessionEvent(T.SESSION_STARTED, "s1"), False),
    (
        "another transaction's start",
        SessionEvent(T.TRANSACTION_STARTED, "s2", TransactionData("tx2", "T", 0)),
        True,
    ),
    ("a meter value", MeterValue(160.0, 0.0), True),
]


@pytest.mark.parametrize(("name", "body", "passed_on"), REPLAYED, ids=[r[0] for r in REPLAYED])
def test_ends_the_main_synthesised_are_dropped_when_replayed(
    name: str, body: object, passed_on: bool
) -> None:
    led = charging()
    led.close_open(StopReason.OTHER)
    assert led.accept(body) is passed_on  # type: ignore[arg-type]
    if not passed_on:
        assert not led.has_open


def status(**kw: object) -> PortStatus:
    base: dict[str, object] = {
        "cp_state": CpState.A,
        "enabled": True,
        "session_state": SessionState.IDLE,
        "meter": MeterValue(300.0, 0.0),
        "limits": LimitsChanged(10.0, 1),
    }
    base.update(kw)
    return PortStatus(**base)  # type: ignore[arg-type]


def test_reconcile_after_a_gap_closes_what_ended_and_restates_the_port() -> None:
    led = charging()
    led.accept(PortErrorEvent(ErrorCode.HIGH_TEMPERATURE, "hot", True))
    err = PortErrorEvent(ErrorCode.GROUND_FAILURE, "rcd", True)
    plan = led.reconcile(status(errors=(err,)), gap="events after #8 lost")
    gap_on, gap_off, fin, end, *state = plan.events
    assert gap_on == PortErrorEvent(ErrorCode.OTHER_ERROR, gap_on.message, True)  # type: ignore[union-attr]
    assert gap_off == PortErrorEvent(ErrorCode.OTHER_ERROR, gap_on.message, False)  # type: ignore[union-attr]
    assert isinstance(fin, SessionEvent) and fin.transaction is not None
    assert (fin.transaction.meter_wh, fin.transaction.stop_reason) == (150.0, StopReason.OTHER)
    assert end == SessionEvent(T.SESSION_FINISHED, "s1")
    assert state == [
        CpStateChanged(CpState.A),
        PortDisabledChanged(True),
        LimitsChanged(10.0, 1),
        MeterValue(300.0, 0.0),
        PortErrorEvent(ErrorCode.HIGH_TEMPERATURE, "hot", False),
        err,
    ]
    assert plan.stop_transaction is None and led.energy_wh == 300.0


def test_reconcile_keeps_what_is_still_open() -> None:
    led = charging()
    plan = led.reconcile(status(session_id="s1", transaction_id="tx1"), gap=None)
    assert plan.events == [] and led.transaction == TX and led.session_id == "s1"


def test_reconcile_closes_only_the_transaction_when_the_session_goes_on() -> None:
    led = charging()
    plan = led.reconcile(status(session_id="s1"), gap=None)
    assert [b.type for b in plan.events] == [T.TRANSACTION_FINISHED]  # type: ignore[union-attr]
    assert led.session_id == "s1"


def test_reconcile_asks_to_stop_a_transaction_the_main_already_closed() -> None:
    led = charging()
    led.close_open(StopReason.OTHER)
    plan = led.reconcile(status(session_id="s1", transaction_id="tx1"), gap=None)
    assert plan.events == [] and plan.stop_transaction == "tx1"
