"""Boot against the strict peer (OCPP 1.6 section 4.2 BootNotification, 4.9 StatusNotification)."""

from __future__ import annotations

from pathlib import Path

from ocpp_station_fixture import running_station
from strict_peer import StrictPeer


async def test_boot_then_every_connector_status_ocpp16_4_2_4_9(
    tmp_path: Path, peer: StrictPeer
) -> None:
    """BootNotification first (4.2), then a StatusNotification for connector 0 and each of the
    four connectors (local and satellites alike), all schema-valid."""
    async with running_station(tmp_path / "db.sqlite", peer.url):
        await peer.wait_for(lambda: all(peer.statuses(c) for c in range(5)))
        actions = [e["action"] for e in peer.of("call")]
        assert actions[0] == "BootNotification"
        assert peer.connected("CP-1")
        boot = peer.calls("BootNotification")[0]
        assert boot["chargePointVendor"] == "chargeport"
        assert [peer.last_status(c) for c in range(5)] == ["Available"] * 5
