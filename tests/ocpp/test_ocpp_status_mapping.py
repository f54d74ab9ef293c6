"""Pure cores: port events -> OCPP 1.6 connector status (section 4.9, 7.7) and meter timing."""

from __future__ import annotations

import pytest

from chargeport.port import (
    ErrorCode,
    LinkChanged,
    MeterValue,
    PortDisabledChanged,
    PortErrorEvent,
    PortEventBody,
    SessionEvent,
)
from chargeport.port import (
    SessionEventType as E,
)
from main_node.ocpp.connector_status import ConnectorStatus, ConnectorStatusTracker
from main_node.ocpp.meter_values import MeterTimer, sampled_values


def _s(kind: E) -> SessionEvent:
    return SessionEvent(kind, "s1")


CASES: list[tuple[str, list[PortEventBody], ConnectorStatus]] = [
    ("plug in -> Preparing", [_s(E.SESSION_STARTED)], ConnectorStatus("Preparing")),
    ("charging", [_s(E.SESSION_STARTED), _s(E.CHARGING_STARTED)], ConnectorStatus("Charging")),
    ("EV pauses -> SuspendedEV", [_s(E.CHARGING_PAUSED_EV)], ConnectorStatus("SuspendedEV")),
    (
        "EVSE pauses -> SuspendedEVSE",
        [_s(E.CHARGING_PAUSED_EVSE)],
        ConnectorStatus("SuspendedEVSE"),
    ),
    (
        "tx over, EV plugged -> Finishing",
        [_s(E.TRANSACTION_FINISHED)],
        ConnectorStatus("Finishing"),
    ),
    (
        "unplug -> Available",
        [_s(E.TRANSACTION_FINISHED), _s(E.SESSION_FINISHED)],
        ConnectorStatus("Available"),
    ),
    ("reserved", [_s(E.RESERVATION_START)], ConnectorStatus("Reserved")),
    ("disabled -> Unavailable", [PortDisabledChanged(False)], ConnectorStatus("Unavailable")),
    (
        "satellite link lost -> Unavailable",
        [_s(E.CHARGING_STARTED), LinkChanged(False)],
        ConnectorStatus("Unavailable", "InternalError", "link to satellite lost"),
    ),
    (
        "link back -> previous state",
        [_s(E.CHARGING_STARTED), LinkChanged(False), LinkChanged(True)],
        ConnectorStatus("Charging"),
    ),
    (
        "RCD trip -> Faulted GroundFailure",
        [PortErrorEvent(ErrorCode.GROUND_FAILURE, "RCD", True)],
        ConnectorStatus("Faulted", "GroundFailure", "RCD"),
    ),
    (
        "welded contactor -> PowerSwitchFailure",
        [PortErrorEvent(ErrorCode.POWER_SWITCH_FAILURE, "welded", True)],
        ConnectorStatus("Faulted", "PowerSwitchFailure", "welded"),
    ),
    (
        "fault cleared -> Available",
        [
            PortErrorEvent(ErrorCode.HIGH_TEMPERATURE, "hot", True),
            PortErrorEvent(ErrorCode.HIGH_TEMPERATURE, "", False),
        ],
        ConnectorStatus("Available"),
    ),
    (
        "fault outranks disabled",
        [PortDisabledChanged(False), PortErrorEvent(ErrorCode.OVER_VOLTAGE, "ov", True)],
        ConnectorStatus("Faulted", "OverVoltage", "ov"),
    ),
]


@pytest.mark.parametrize(("name", "events", "expected"), CASES, ids=[c[0] for c in CASES])
def test_status_from_port_events_ocpp16_4_9(
    name: str, events: list[PortEventBody], expected: ConnectorStatus
) -> None:
    tracker = ConnectorStatusTracker()
    for event in events:
        tracker.apply(event)
    assert tracker.current == expected


def test_apply_reports_only_changes_ocpp16_4_9() -> None:
    """One StatusNotification per change: a repeated fact yields None."""
    tracker = ConnectorStatusTracker()
    assert tracker.apply(_s(E.SESSION_STARTED)) == ConnectorStatus("Preparing")
    assert tracker.apply(_s(E.AUTH_REQUIRED)) is None
    assert tracker.apply(MeterValue(1.0, 2.0)) is None


def test_sampled_interval_runs_only_in_transaction_and_aligned_is_clock_based_9_1_8() -> None:
    """MeterValueSampleInterval counts from tx start; ClockAlignedDataInterval from midnight."""
    timer = MeterTimer([1, 2], sample_s=10, aligned_s=900)
    assert timer.due(1000.0) == []
    timer.start(2, 1000.0)
    assert timer.due(1009.0) == []
    assert timer.due(1010.0) == [(2, "Sample.Periodic")]
    assert timer.due(1035.0) == [(2, "Sample.Periodic")]  # missed slots are not burst
    assert timer.next_deadline(1035.0) == 1040.0
    assert timer.due(1800.0) == [(2, "Sample.Periodic"), (1, "Sample.Clock"), (2, "Sample.Clock")]
    timer.stop(2)
    assert timer.due(1850.0) == []


def test_per_phase_measurands_get_one_value_per_phase_7_31() -> None:
    mv = MeterValue(1500.0, 11000.0, (230.0, 231.0, 229.0), (16.0, 16.1, 15.9), 50.0, 35.5)
    values = sampled_values(mv, "Sample.Periodic", ["Current.Import", "Voltage", "Temperature"])
    assert [(v["measurand"], v.get("phase")) for v in values] == [
        ("Current.Import", "L1"),
        ("Current.Import", "L2"),
        ("Current.Import", "L3"),
        ("Voltage", "L1-N"),
        ("Voltage", "L2-N"),
        ("Voltage", "L3-N"),
        ("Temperature", None),
    ]
