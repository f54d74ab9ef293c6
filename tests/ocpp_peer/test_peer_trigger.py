"""TriggerMessage against the strict peer (OCPP 1.6 section 5.17): each message it may ask for
comes, schema-valid, for the connector it names (a satellite's as the local one)."""

from __future__ import annotations

from pathlib import Path

from ocpp_station_fixture import running_station
from strict_peer import StrictPeer


async def test_trigger_message_ocpp16_5_17(tmp_path: Path, peer: StrictPeer) -> None:
    async with running_station(tmp_path / "db.sqlite", peer.url) as station:
        await peer.wait_for(lambda: all(peer.statuses(c) for c in range(5)))
        station.ports[3].meter(2500.0, 0.0)

        async def trigger(message: str, connector: int | None = None) -> str:
            params: dict[str, object] = {"requestedMessage": message}
            if connector is not None:
                params["connectorId"] = connector
            answer = await peer.call("CP-1", "TriggerMessage", params)
            return str(answer["status"])

        before = len(peer.statuses(3))
        assert await trigger("StatusNotification", 3) == "Accepted"
        await peer.wait_for(lambda: len(peer.statuses(3)) == before + 1)
        assert await trigger("MeterValues", 3) == "Accepted"
        await peer.wait_for(lambda: peer.calls("MeterValues"))
        values = peer.calls("MeterValues")[0]
        assert values["connectorId"] == 3
        sampled = values["meterValue"][0]["sampledValue"]
        assert {"Trigger"} == {v["context"] for v in sampled}
        assert not any(v["value"].startswith("-") for v in sampled)  # no "-0" at idle
        assert await trigger("Heartbeat") == "Accepted"
        await peer.wait_for(lambda: peer.calls("Heartbeat"))
        assert await trigger("FirmwareStatusNotification") == "Accepted"
        await peer.wait_for(lambda: peer.calls("FirmwareStatusNotification"))
        assert peer.calls("FirmwareStatusNotification")[0] == {"status": "Idle"}
        assert await trigger("DiagnosticsStatusNotification") == "Accepted"
        await peer.wait_for(lambda: peer.calls("DiagnosticsStatusNotification"))
        assert await trigger("BootNotification") == "Accepted"
        await peer.wait_for(lambda: len(peer.calls("BootNotification")) == 2)
        assert await trigger("StatusNotification", 9) == "Rejected"  # no such connector
