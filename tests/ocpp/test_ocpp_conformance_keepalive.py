"""WebSocketPingInterval (OCPP 1.6 key 9.1.33) means what GetConfiguration says: the client
pings at that interval, and a ChangeConfiguration applies at once."""

from __future__ import annotations

from pathlib import Path

from ocpp.v16 import call
from ocpp_station_fixture import running_station, until

from simulation.csms import CentralSystem


async def test_websocket_ping_interval_is_used_and_changes_apply_ocpp16_9_1_33(
    tmp_path: Path,
) -> None:
    async with CentralSystem() as csms, running_station(tmp_path / "db.sqlite", csms.url) as st:
        await until(lambda: st.session.online)
        result = await csms.send(call.GetConfiguration(key=["WebSocketPingInterval"]))
        assert result.configuration_key == [
            {"key": "WebSocketPingInterval", "readonly": False, "value": "60"}
        ]
        # 60 s, shrunk by the fixture's time scale: the client pings, the CSMS pongs.
        await until(lambda: st.session.pongs >= 1)
        # 3600 s (72 s scaled) would not ping within this test; at most the ping already in
        # flight when the key changed still completes.
        assert await csms.change_configuration("WebSocketPingInterval", "3600") == "Accepted"
        seen = st.session.pongs
        assert await csms.change_configuration("WebSocketPingInterval", "1") == "Accepted"
        await until(lambda: st.session.pongs >= seen + 2)
        assert await csms.change_configuration("WebSocketPingInterval", "-5") == "Rejected"
        assert await csms.change_configuration("WebSocketPingInterval", "0") == "Accepted"
