"""OCPP 2.0.1 against the independent strict central system (npm `ocpp-rpc`, strictMode,
protocol `ocpp2.0.1`): every message in both directions is validated against the official
2.0.1 JSON schemas; the `peer201` fixture fails the test on any schema failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ocpp201_kit import make_ports, running_station, until
from strict_peer import StrictPeer

from chargeport.port import ErrorCode, PortErrorEvent
from system_aggregator.fake import FakeStationSystem

ID = "CP-201"


async def _booted(peer: StrictPeer, n: int = 4) -> None:
    await peer.wait_for(
        lambda: {p["evseId"] for p in peer.calls("StatusNotification")} == set(range(1, n + 1))
    )


def _events(peer: StrictPeer, evse: int) -> list[dict[str, Any]]:
    return [p for p in peer.calls("TransactionEvent") if p["evse"]["id"] == evse]


async def test_boot_statuses_and_device_model_b01_b05_b06_b07(
    peer201: StrictPeer, tmp_path: Path
) -> None:
    peer = peer201
    async with running_station(tmp_path / "db.sqlite", peer.url):
        await _booted(peer)
        boot = peer.calls("BootNotification")[0]
        assert boot["reason"] == "PowerUp"
        got = await peer.call(
            ID,
            "GetVariables",
            {
                "getVariableData": [
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                    },
                    {
                        "component": {"name": "Connector", "evse": {"id": 3, "connectorId": 1}},
                        "variable": {"name": "AvailabilityState"},
                    },
                    {"component": {"name": "Nope"}, "variable": {"name": "Nope"}},
                ]
            },
        )
        statuses = [r["attributeStatus"] for r in got["getVariableResult"]]
        assert statuses == ["Accepted", "Accepted", "UnknownComponent"]
        done = await peer.call(
            ID,
            "SetVariables",
            {
                "setVariableData": [
                    {
                        "attributeValue": "15",
                        "component": {"name": "SampledDataCtrlr"},
                        "variable": {"name": "TxUpdatedInterval"},
                    }
                ]
            },
        )
        assert done["setVariableResult"][0]["attributeStatus"] == "Accepted"
        for base in ("FullInventory", "ConfigurationInventory", "SummaryInventory"):
            answer = await peer.call(ID, "GetBaseReport", {"requestId": 9, "reportBase": base})
            assert answer["status"] == "Accepted"
        await peer.wait_for(
            lambda: sum(not r.get("tbc", False) for r in peer.calls("NotifyReport")) == 3
        )
        trig = await peer.call(ID, "TriggerMessage", {"requestedMessage": "Heartbeat"})
        assert trig["status"] == "Accepted"
        await peer.wait_for(lambda: peer.calls("Heartbeat"))
        trig = await peer.call(
            ID, "TriggerMessage", {"requestedMessage": "StatusNotification", "evse": {"id": 2}}
        )
        assert trig["status"] == "Accepted"
        unknown = await peer.call(
            ID, "TriggerMessage", {"requestedMessage": "PublishFirmwareStatusNotification"}
        )
        assert unknown["status"] == "NotImplemented"


@pytest.mark.parametrize("evse", [1, 2], ids=["local", "satellite"])
async def test_remote_start_stop_with_meter_values_f01_f03_j02(
    peer201: StrictPeer, tmp_path: Path, evse: int
) -> None:
    peer = peer201
    ports = make_ports()
    async with running_station(tmp_path / "db.sqlite", peer.url, ports):
        await _booted(peer)
        ports[evse].meter(2000.0)
        ports[evse].plug_in()
        ports[evse].ev_ready()
        answer = await peer.call(
            ID,
            "RequestStartTransaction",
            {
                "idToken": {"idToken": "TAG-OK", "type": "Central"},
                "remoteStartId": 7,
                "evseId": evse,
            },
        )
        assert answer["status"] == "Accepted"
        await peer.wait_for(lambda: _events(peer, evse))
        started = _events(peer, evse)[0]
        tx_id = started["transactionInfo"]["transactionId"]
        triggered = await peer.call(
            ID, "TriggerMessage", {"requestedMessage": "TransactionEvent", "evse": {"id": evse}}
        )
        assert triggered["status"] == "Accepted"
        await peer.wait_for(lambda: len(_events(peer, evse)) >= 2)
        meter = await peer.call(
            ID, "TriggerMessage", {"requestedMessage": "MeterValues", "evse": {"id": evse}}
        )
        assert meter["status"] == "Accepted"
        await peer.wait_for(lambda: peer.calls("MeterValues"))
        assert peer.calls("MeterValues")[0]["evseId"] == evse
        status = await peer.call(ID, "GetTransactionStatus", {"transactionId": tx_id})
        assert status["ongoingIndicator"] is True
        ports[evse].meter(2600.0)
        stop = await peer.call(ID, "RequestStopTransaction", {"transactionId": tx_id})
        assert stop["status"] == "Accepted"
        await peer.wait_for(lambda: _events(peer, evse)[-1]["eventType"] == "Ended")
        ended = _events(peer, evse)[-1]
        assert ended["transactionInfo"]["stoppedReason"] == "Remote"
        assert ended["meterValue"][0]["sampledValue"][0]["value"] == 2600.0
        assert started["transactionInfo"]["remoteStartId"] == 7


async def test_smart_charging_on_a_satellite_gun_k01_k08_k09_k10(
    peer201: StrictPeer, tmp_path: Path
) -> None:
    peer = peer201
    ports = make_ports()
    async with running_station(tmp_path / "db.sqlite", peer.url, ports) as station:
        await _booted(peer)
        ports[3].plug_in()
        ports[3].ev_ready()
        await peer.call(
            ID,
            "RequestStartTransaction",
            {"idToken": {"idToken": "TAG-OK", "type": "Central"}, "remoteStartId": 1, "evseId": 3},
        )
        await peer.wait_for(lambda: _events(peer, 3))
        tx_id = _events(peer, 3)[0]["transactionInfo"]["transactionId"]
        profile = {
            "id": 30,
            "stackLevel": 1,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative",
            "transactionId": tx_id,
            "chargingSchedule": [
                {
                    "id": 1,
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [
                        {"startPeriod": 0, "limit": 12.5},
                        {"startPeriod": 3600, "limit": 8},
                    ],
                }
            ],
        }
        answer = await peer.call(
            ID, "SetChargingProfile", {"evseId": 3, "chargingProfile": profile}
        )
        assert answer["status"] == "Accepted"
        await until(lambda: (3, 12.5) in station.limits)
        composite = await peer.call(
            ID, "GetCompositeSchedule", {"duration": 7200, "evseId": 3, "chargingRateUnit": "W"}
        )
        assert composite["status"] == "Accepted"
        assert len(composite["schedule"]["chargingSchedulePeriod"]) == 2
        got = await peer.call(
            ID,
            "GetChargingProfiles",
            {"requestId": 4, "chargingProfile": {"chargingProfilePurpose": "TxProfile"}},
        )
        assert got["status"] == "Accepted"
        await peer.wait_for(lambda: peer.calls("ReportChargingProfiles"))
        assert peer.calls("ReportChargingProfiles")[0]["chargingProfile"][0]["id"] == 30
        cleared = await peer.call(
            ID, "ClearChargingProfile", {"chargingProfileCriteria": {"evseId": 3}}
        )
        assert cleared["status"] == "Accepted"
        await until(lambda: station.limits[-1] == (3, None))
        none = await peer.call(ID, "GetChargingProfiles", {"requestId": 5, "chargingProfile": {}})
        assert none["status"] == "NoProfiles"


async def test_authorization_reservation_availability_and_faults_c_d_g_h_n(
    peer201: StrictPeer, tmp_path: Path
) -> None:
    peer = peer201
    ports = make_ports()
    async with running_station(tmp_path / "db.sqlite", peer.url, ports):
        await _booted(peer)
        sent = await peer.call(
            ID,
            "SendLocalList",
            {
                "versionNumber": 3,
                "updateType": "Full",
                "localAuthorizationList": [
                    {
                        "idToken": {"idToken": "LOCAL-1", "type": "ISO14443"},
                        "idTokenInfo": {"status": "Accepted"},
                    }
                ],
            },
        )
        assert sent["status"] == "Accepted"
        assert (await peer.call(ID, "GetLocalListVersion", {}))["versionNumber"] == 3
        assert (await peer.call(ID, "ClearCache", {}))["status"] == "Accepted"
        reserve = await peer.call(
            ID,
            "ReserveNow",
            {
                "id": 11,
                "expiryDateTime": "2099-01-01T00:00:00Z",
                "idToken": {"idToken": "LOCAL-1", "type": "ISO14443"},
                "evseId": 4,
            },
        )
        assert reserve["status"] == "Accepted"
        await peer.wait_for(
            lambda: any(
                p["evseId"] == 4 and p["connectorStatus"] == "Reserved"
                for p in peer.calls("StatusNotification")
            )
        )
        assert (await peer.call(ID, "CancelReservation", {"reservationId": 11}))[
            "status"
        ] == "Accepted"
        assert (await peer.call(ID, "CancelReservation", {"reservationId": 11}))[
            "status"
        ] == "Rejected"
        unlock = await peer.call(ID, "UnlockConnector", {"evseId": 2, "connectorId": 1})
        assert unlock["status"] == "Unlocked"
        off = await peer.call(
            ID, "ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 2}}
        )
        assert off["status"] == "Accepted"
        await peer.wait_for(
            lambda: any(
                p["evseId"] == 2 and p["connectorStatus"] == "Unavailable"
                for p in peer.calls("StatusNotification")
            )
        )
        assert (await peer.call(ID, "DataTransfer", {"vendorId": "acme"}))[
            "status"
        ] == "UnknownVendorId"
        assert (await peer.call(ID, "Reset", {"type": "OnIdle"}))[
            "status"
        ] == "Rejected"  # no system
        ports[1].fault(PortErrorEvent(ErrorCode.HIGH_TEMPERATURE, "71 C", active=True))
        await peer.wait_for(lambda: peer.calls("NotifyEvent"))
        event = peer.calls("NotifyEvent")[0]["eventData"][0]
        assert event["component"] == {"name": "Connector", "evse": {"id": 1, "connectorId": 1}}
        # An RFID swipe of a local-list token at the local gun starts a transaction offline-free.
        ports[1].fault(PortErrorEvent(ErrorCode.HIGH_TEMPERATURE, "", active=False))
        ports[1].plug_in()
        ports[1].ev_ready()
        await ports[1].authorize("LOCAL-1")
        await peer.wait_for(lambda: _events(peer, 1))


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('[2,"m1","GetVariables",{}]', "OccurrenceConstraintViolation"),
        ('[2,"m2","ClearCache",{"bogus":true}]', "FormatViolation"),
        ('[2,"m3","FlyToTheMoon",{}]', "NotImplemented"),
        (
            '[2,"m4","ClearVariableMonitoring",{"id":[1]}]',
            "NotSupported",
        ),
        ('[2,"m5","Reset",{"type":"Sometime"}]', "PropertyConstraintViolation"),
    ],
)
async def test_bad_calls_get_2_0_1_error_codes_ocppj_4_3(
    peer201: StrictPeer, tmp_path: Path, frame: str, code: str
) -> None:
    peer = peer201
    async with running_station(tmp_path / "db.sqlite", peer.url):
        await _booted(peer)
        unique_id = frame.split('"')[1]
        await peer.send_raw(ID, frame)
        await peer.wait_for(
            lambda: any(
                isinstance(f, list) and f[0] == 4 and f[1] == unique_id
                for f in peer.received_frames()
            )
        )
        (error,) = [f for f in peer.received_frames() if isinstance(f, list) and f[1] == unique_id]
        assert error[2] == code
        # the station keeps serving
        assert (await peer.call(ID, "GetLocalListVersion", {}))["versionNumber"] == 0


async def test_firmware_log_and_reset_through_the_aggregator_l01_n01_b12(
    peer201: StrictPeer, tmp_path: Path
) -> None:
    peer = peer201
    system = FakeStationSystem(diagnostics_statuses=("Uploading", "UploadFailed"))
    async with running_station(tmp_path / "db.sqlite", peer.url, system=system):
        await _booted(peer)
        fw = await peer.call(
            ID,
            "UpdateFirmware",
            {
                "requestId": 1,
                "firmware": {
                    "location": "http://127.0.0.1:1/fw.bundle",
                    "retrieveDateTime": "2030-01-01T00:00:00Z",
                },
            },
        )
        assert fw["status"] == "Accepted"
        await peer.wait_for(lambda: len(peer.calls("FirmwareStatusNotification")) == 4)
        got = await peer.call(
            ID,
            "GetLog",
            {"logType": "DiagnosticsLog", "requestId": 2, "log": {"remoteLocation": "ftp://x/y"}},
        )
        assert got["status"] == "Accepted" and got["filename"]
        await peer.wait_for(lambda: len(peer.calls("LogStatusNotification")) == 2)
        assert peer.calls("LogStatusNotification")[-1]["status"] == "UploadFailure"
        trig = await peer.call(ID, "TriggerMessage", {"requestedMessage": "LogStatusNotification"})
        assert trig["status"] == "Accepted"
        await peer.wait_for(lambda: len(peer.calls("LogStatusNotification")) == 3)
        assert (await peer.call(ID, "Reset", {"type": "Immediate"}))["status"] == "Accepted"
        await until(lambda: bool(system.resets))


async def test_offline_transaction_events_drain_in_order_e04_e12(
    peer201: StrictPeer, tmp_path: Path
) -> None:
    """Transactions while the CSMS is away; a strict peer started again on the same port takes
    the journaled events (offline flag, meter values) in order, each valid."""
    first = peer201
    ports = make_ports()
    async with running_station(tmp_path / "db.sqlite", first.url, ports) as station:
        await _booted(first)
        await until(lambda: station.session.security_events.next() is None)
        port_no = first.port
        await first.__aexit__(None, None, None)  # the CSMS goes away (the fixture exit: no-op)
        await until(lambda: not station.session.online)
        for evse in (1, 2):
            await ports[evse].authorize("TAG-OK")
            ports[evse].meter(10.0 * evse)
            ports[evse].plug_in()
            ports[evse].ev_ready()
            ports[evse].meter(20.0 * evse)
            ports[evse].unplug()
        async with StrictPeer("ocpp2.0.1", port=port_no) as again:
            await again.wait_for(lambda: len(again.calls("TransactionEvent")) == 4)
            events = again.calls("TransactionEvent")
            assert [(e["evse"]["id"], e["eventType"]) for e in events] == [
                (1, "Started"),
                (1, "Ended"),
                (2, "Started"),
                (2, "Ended"),
            ]
            assert all(e["offline"] is True for e in events)
            assert again.schema_failures == []
