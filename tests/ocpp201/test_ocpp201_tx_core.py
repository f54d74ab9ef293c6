"""The pure TransactionEvent core (2.0.1 Part 2 section E), table-driven, no I/O."""

from __future__ import annotations

import itertools

import pytest

from chargeport.port import SessionEventType as Ev
from chargeport.port import StopReason, TransactionData
from main_node.ocpp201.device_model import VarKey, VarSpec, normalise
from main_node.ocpp201.tx_events import EvseTx, TxPoints

_DATA = TransactionData("port-tx", "TAG-1", 100.0)
_DONE = TransactionData("port-tx", "TAG-1", 150.0, stop_reason=StopReason.REMOTE)

# One plug-in, authorization, charging and unplug, as a port reports it.
_SESSION = [
    (Ev.SESSION_STARTED, None),
    (Ev.AUTHORIZED, None),
    (Ev.TRANSACTION_STARTED, _DATA),
    (Ev.CHARGING_STARTED, None),
    (Ev.CHARGING_PAUSED_EV, None),
    (Ev.TRANSACTION_FINISHED, _DONE),
    (Ev.SESSION_FINISHED, None),
]


def _run(points: TxPoints) -> list[tuple[str, str, str]]:
    ids = itertools.count(1)
    machine = EvseTx(3, lambda: f"tx-{next(ids)}")
    out = []
    for kind, data in _SESSION:
        for p in machine.on_event(kind, data, points, 0.0, offline=False):
            out.append((p["eventType"], p["triggerReason"], p["transactionInfo"]["chargingState"]))
    return out


@pytest.mark.parametrize(
    ("start", "stop", "expected"),
    [
        # E01 default: TxStartPoint PowerPathClosed, TxStopPoint EVConnected,Authorized
        (
            {"PowerPathClosed"},
            {"EVConnected", "Authorized"},
            [
                ("Started", "ChargingStateChanged", "Charging"),
                ("Updated", "ChargingStateChanged", "SuspendedEV"),
                ("Ended", "RemoteStop", "EVConnected"),
            ],
        ),
        # E01 EVConnected: the transaction begins with the cable and takes the token later
        (
            {"EVConnected"},
            {"EVConnected"},
            [
                ("Started", "CablePluggedIn", "EVConnected"),
                ("Updated", "Authorized", "EVConnected"),
                ("Updated", "ChargingStateChanged", "Charging"),
                ("Updated", "ChargingStateChanged", "SuspendedEV"),
                ("Ended", "RemoteStop", "EVConnected"),  # the port's own end always ends it
            ],
        ),
        # E01 Authorized; E06 EnergyTransfer: a pause ends it
        (
            {"Authorized"},
            {"EnergyTransfer"},
            [
                ("Started", "Authorized", "EVConnected"),
                ("Updated", "Authorized", "EVConnected"),
                ("Updated", "ChargingStateChanged", "Charging"),
                ("Ended", "ChargingStateChanged", "SuspendedEV"),
            ],
        ),
    ],
)
def test_tx_start_and_stop_points_e01_e06(
    start: set[str], stop: set[str], expected: list[tuple[str, str, str]]
) -> None:
    assert _run(TxPoints(frozenset(start), frozenset(stop))) == expected


def test_seq_no_counts_every_message_of_a_transaction_and_token_goes_once_e01() -> None:
    machine = EvseTx(1, lambda: "tx-a")
    points = TxPoints(frozenset({"EVConnected"}), frozenset({"EVConnected"}))
    payloads = [p for k, d in _SESSION for p in machine.on_event(k, d, points, 5.0, True)]
    assert [p["seqNo"] for p in payloads] == list(range(len(payloads)))
    assert [("idToken" in p) for p in payloads] == [False, True, False, False, False]
    assert all(p["offline"] is True for p in payloads)
    assert payloads[-1]["transactionInfo"]["stoppedReason"] == "Remote"
    assert {p["transactionInfo"]["transactionId"] for p in payloads} == {"tx-a"}


def test_remote_start_id_and_trigger_f01() -> None:
    machine = EvseTx(2, lambda: "tx-r")
    machine.authorize({"idToken": "T", "type": "Central"}, remote_start_id=42)
    (started,) = machine.on_event(Ev.CHARGING_STARTED, None, TxPoints(), 0.0, False)
    assert started["triggerReason"] == "RemoteStart"
    assert started["transactionInfo"]["remoteStartId"] == 42
    assert started["idToken"] == {"idToken": "T", "type": "Central"}


def test_an_authorization_that_ends_without_a_transaction_is_forgotten() -> None:
    machine = EvseTx(2, lambda: "tx")
    machine.authorize({"idToken": "T", "type": "Central"}, remote_start_id=1)
    assert machine.on_event(Ev.SESSION_FINISHED, None, TxPoints(), 0.0, False) == []
    (started,) = machine.on_event(Ev.CHARGING_STARTED, None, TxPoints(), 0.0, False)
    assert "idToken" not in started and started["triggerReason"] == "ChargingStateChanged"


@pytest.mark.parametrize(
    ("kind", "values", "value", "stored"),
    [
        ("integer", (), " 60 ", "60"),
        ("integer", (), "-1", None),
        ("integer", (), "1.5", None),
        ("boolean", (), "TRUE", "true"),
        ("boolean", (), "yes", None),
        ("MemberList", ("A", "B"), "A, B", "A,B"),
        ("MemberList", ("A", "B"), "A,C", None),
        ("MemberList", ("A", "B"), "", None),
        ("decimal", (), "0.5", "0.5"),
        ("decimal", (), "nan?", None),
    ],
)
def test_set_value_checked_against_the_variable_type_b05(
    kind: str, values: tuple[str, ...], value: str, stored: str | None
) -> None:
    spec = VarSpec(VarKey("C", "V"), kind, "", True, values)  # type: ignore[arg-type]
    assert normalise(spec, value) == stored
