"""Bad CSMS input against a running station and a real central system (issue 12): every
frame can fail only itself, the session stays up, and each CALL gets its one answer."""

from __future__ import annotations

import json
from pathlib import Path

from ocpp_station_fixture import running_station, until

from main_node.ocpp.framing import MAX_FRAME_BYTES
from simulation.csms import CentralSystem

PROFILE_1E27 = (
    '{"chargingProfileId":1,"stackLevel":1,"chargingProfilePurpose":"TxDefaultProfile",'
    '"chargingProfileKind":"Absolute","chargingSchedule":{"chargingRateUnit":"A",'
    '"chargingSchedulePeriod":[{"startPeriod":0,"limit":1e27}]}}'
)


async def test_issue_12_frames_get_call_errors_and_the_session_stays_up_ocpp_j_4_2_3(
    tmp_path: Path,
) -> None:
    async with CentralSystem() as csms, running_station(tmp_path / "db.sqlite", csms.url) as st:
        await until(lambda: st.session.online)
        cases = [
            (
                '[2,"p1","SetChargingProfile",{"connectorId":1,"csChargingProfiles":'
                + PROFILE_1E27
                + "}]",
                "p1",
                "PropertyConstraintViolation",
            ),
            (
                '[2,"p2","RemoteStartTransaction",{"idTag":"TAG-OK","chargingProfile":'
                + PROFILE_1E27.replace("TxDefaultProfile", "TxProfile")
                + "}]",
                "p2",
                "PropertyConstraintViolation",
            ),
            (
                '[2,"p3","DataTransfer",{"vendorId":"v","data":' + "[" * 400_000,
                "p3",
                "FormationViolation",
            ),
            (
                '[2,"p4","ChangeAvailability",{"connectorId":-3,"type":"Inoperative"}]',
                "p4",
                "PropertyConstraintViolation",
            ),
            (
                '[2,"p5","RemoteStopTransaction",{"transactionId":99999999999999999999}]',
                "p5",
                "TypeConstraintViolation",
            ),
            (
                '[2,"p6","UpdateFirmware",{"location":"http://x/","retrieveDate":"soon"}]',
                "p6",
                "PropertyConstraintViolation",
            ),
            ('[2,"p7","FlyToTheMoon",{}]', "p7", "NotImplemented"),
            # Served since the security extension: its schema says what is missing.
            ('[2,"p8","SignedUpdateFirmware",{}]', "p8", "OccurenceConstraintViolation"),
            ('[2,"p9","SecurityEventNotification",{}]', "p9", "NotSupported"),
        ]
        for frame, uid, code in cases:
            answer = await csms.send_raw(frame, uid)
            assert answer[:3] == [4, uid, code], (frame[:80], answer)
        # Frames without a usable id are dropped: nobody to answer to (OCPP-J 4.2.1).
        for frame in ["[" * 400_000, '[2,12,"Reset",{"type":"Hard"}]', "[2,null]", "{}"]:
            await csms.send_raw(frame, None)
        # Still the same connection, still serving, never booted twice.
        assert await csms.change_configuration("HeartbeatInterval", "120") == "Accepted"
        assert csms.connects == 1
        assert len(csms.actions("BootNotification")) == 1
        assert st.session.online


async def test_oversized_frame_closes_with_1009_and_the_station_reconnects(
    tmp_path: Path,
) -> None:
    """A frame over MAX_FRAME_BYTES never reaches the decoder: the websocket closes with 1009
    (message too big) and the session reconnects, without a second BootNotification."""
    async with CentralSystem() as csms, running_station(tmp_path / "db.sqlite", csms.url) as st:
        await until(lambda: st.session.online)
        conn = await csms.connection()
        data = "x" * (MAX_FRAME_BYTES + 10)
        await conn.ws.send(json.dumps([2, "big", "DataTransfer", {"vendorId": "v", "data": data}]))
        await conn.ws.wait_closed()
        assert conn.ws.close_code == 1009
        await csms.wait_for(lambda: csms.connects == 2 and csms.connections)
        assert await csms.change_configuration("HeartbeatInterval", "120") == "Accepted"
        assert len(csms.actions("BootNotification")) == 1
