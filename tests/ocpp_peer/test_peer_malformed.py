"""Malformed frames from the CSMS (OCPP-J 1.6 sections 4.1, 4.2.3): each CALL with a usable id
gets one CALLERROR with a 1.6 error code; frames without one are dropped; the connection and
the session go on."""

from __future__ import annotations

import json
from pathlib import Path

from ocpp_station_fixture import running_station
from strict_peer import StrictPeer

# OCPP-J 1.6 section 4.2.3, table "Valid Error Codes".
ERROR_CODES_16 = {
    "NotImplemented",
    "NotSupported",
    "InternalError",
    "ProtocolError",
    "SecurityError",
    "FormationViolation",
    "PropertyConstraintViolation",
    "OccurenceConstraintViolation",
    "TypeConstraintViolation",
    "GenericError",
}

ANSWERED = [
    ('[2,"m1","Heartbeat"]', "FormationViolation"),  # no payload
    (
        '[2,"m2","RemoteStartTransaction",{"connectorId":"x","idTag":"T"}]',
        "TypeConstraintViolation",
    ),
    ('[2,"m3","RemoteStartTransaction",{"connectorId":1}]', "OccurenceConstraintViolation"),
    (
        '[2,"m4","ChangeAvailability",{"connectorId":1,"type":"Sideways"}]',
        "PropertyConstraintViolation",
    ),
    ('[2,"m5","FlyToTheMoon",{}]', "NotImplemented"),  # unknown action (4.2.3)
    (
        '[2,"m6","UpdateFirmware",{"location":"http://x/","retrieveDate":"soon"}]',
        "PropertyConstraintViolation",
    ),
    ('[2,"m7","GetConfiguration",[]]', "FormationViolation"),  # payload not an object
]
DROPPED = ["this is not json", "{}", "[2]", '[2,7,"Reset",{"type":"Hard"}]']


async def test_malformed_frames_ocpp_j_4_2_3(tmp_path: Path, peer: StrictPeer) -> None:
    async with running_station(tmp_path / "db.sqlite", peer.url):
        await peer.wait_for(lambda: all(peer.statuses(c) for c in range(5)))
        for frame in DROPPED:
            await peer.send_raw("CP-1", frame)
        for frame, code in ANSWERED:
            uid = json.loads(frame)[1]
            await peer.send_raw("CP-1", frame)

            def answer(uid: str = uid) -> list[object] | None:
                return next(
                    (f for f in peer.received_frames() if isinstance(f, list) and f[1:2] == [uid]),
                    None,
                )

            await peer.wait_for(answer)
            got = answer()
            assert got is not None and got[0] == 4, got
            assert got[2] == code, (frame, got)
            assert got[2] in ERROR_CODES_16
            assert isinstance(got[3], str) and isinstance(got[4], dict)
        # Only the answered frames were answered, each once.
        errors = [f for f in peer.received_frames() if isinstance(f, list) and f[0] == 4]
        assert sorted(f[1] for f in errors) == sorted(json.loads(f)[1] for f, _ in ANSWERED)
        # Still the same connection, still serving.
        answer = await peer.call("CP-1", "GetConfiguration", {"key": ["HeartbeatInterval"]})
        assert answer["configurationKey"][0]["key"] == "HeartbeatInterval"
        assert len(peer.of("connected")) == 1 and not peer.of("disconnected")
        assert len(peer.calls("BootNotification")) == 1
