"""GetConfiguration / ChangeConfiguration against the strict peer (OCPP 1.6 sections 5.8, 5.3,
9.1)."""

from __future__ import annotations

from pathlib import Path

from ocpp_station_fixture import running_station, until
from strict_peer import StrictPeer


async def test_get_and_change_configuration_ocpp16_5_3_5_8(
    tmp_path: Path, peer: StrictPeer
) -> None:
    """Every key schema-valid; unknown keys reported; read-only keys Rejected, bad values
    Rejected, unknown keys NotSupported; an accepted change reads back and applies."""
    async with running_station(tmp_path / "db.sqlite", peer.url) as station:
        await peer.wait_for(lambda: all(peer.statuses(c) for c in range(5)))
        everything = await peer.call("CP-1", "GetConfiguration", {})
        keys = {k["key"]: k for k in everything["configurationKey"]}
        for needed in (
            "ConnectionTimeOut",
            "MinimumStatusDuration",
            "WebSocketPingInterval",
            "NumberOfConnectors",
        ):
            assert needed in keys
        assert keys["NumberOfConnectors"] == {
            "key": "NumberOfConnectors",
            "readonly": True,
            "value": "4",
        }
        some = await peer.call(
            "CP-1", "GetConfiguration", {"key": ["HeartbeatInterval", "NoSuchKey"]}
        )
        assert [k["key"] for k in some["configurationKey"]] == ["HeartbeatInterval"]
        assert some["unknownKey"] == ["NoSuchKey"]

        async def change(key: str, value: str) -> str:
            answer = await peer.call("CP-1", "ChangeConfiguration", {"key": key, "value": value})
            return str(answer["status"])

        assert await change("NumberOfConnectors", "9") == "Rejected"
        assert await change("HeartbeatInterval", "soon") == "Rejected"
        assert await change("NoSuchKey", "1") == "NotSupported"
        for key, value in (
            ("ConnectionTimeOut", "45"),
            ("MinimumStatusDuration", "2"),
            ("WebSocketPingInterval", "1"),
            ("HeartbeatInterval", "1"),
        ):
            assert await change(key, value) == "Accepted"
            got = await peer.call("CP-1", "GetConfiguration", {"key": [key]})
            assert got["configurationKey"][0]["value"] == value
        # They apply: heartbeats at the new interval, pings at the new interval.
        await peer.wait_for(lambda: peer.calls("Heartbeat"))
        seen = station.session.pongs
        await until(lambda: station.session.pongs >= seen + 2)
