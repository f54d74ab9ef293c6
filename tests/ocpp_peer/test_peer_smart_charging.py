"""Smart charging on a satellite connector against the strict peer (OCPP 1.6 sections 3.13,
5.16 SetChargingProfile, 5.7 GetCompositeSchedule, 5.5 ClearChargingProfile)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ocpp_station_fixture import running_station, until
from strict_peer import StrictPeer


def _tx_profile(profile_id: int, amps: float, transaction_id: int | None) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "chargingProfileId": profile_id,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": {
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": amps}],
        },
    }
    if transaction_id is not None:
        profile["transactionId"] = transaction_id
    return profile


async def test_tx_profile_on_a_satellite_connector_ocpp16_3_13_4_5_16(
    tmp_path: Path, peer: StrictPeer
) -> None:
    """With transactions on connectors 1 and 3: a TxProfile for connector 3 naming connector
    1's transaction is Rejected (3.13.4) and limits nothing; one naming its own transaction is
    Accepted, limits connector 3 only, shows in its composite schedule, and clears."""
    async with running_station(tmp_path / "db.sqlite", peer.url) as station:
        await peer.wait_for(lambda: all(peer.statuses(c) for c in range(5)))
        for connector, tag in ((1, "TAG-A"), (3, "TAG-B")):
            await peer.call(
                "CP-1", "RemoteStartTransaction", {"connectorId": connector, "idTag": tag}
            )
            await until(
                lambda c=connector, t=tag: ("authorize", (t, None)) in station.ports[c].calls
            )
            station.ports[connector].plug_in()
            await peer.wait_for(lambda c=connector: peer.last_status(c) == "Preparing")
        await peer.wait_for(lambda: len(peer.calls("StartTransaction")) == 2)
        await until(lambda: all(station.session.ocpp_transaction_id(c) for c in (1, 3)))
        tx1, tx3 = (station.session.ocpp_transaction_id(c) for c in (1, 3))
        assert tx1 != tx3

        wrong = {"connectorId": 3, "csChargingProfiles": _tx_profile(7, 8.0, tx1)}
        assert await peer.call("CP-1", "SetChargingProfile", wrong) == {"status": "Rejected"}
        assert station.session.profiles.profiles() == []

        right = {"connectorId": 3, "csChargingProfiles": _tx_profile(8, 10.0, tx3)}
        assert await peer.call("CP-1", "SetChargingProfile", right) == {"status": "Accepted"}
        await until(lambda: (3, 10.0) in station.limits)
        assert not any(cid == 1 and amps is not None for cid, amps in station.limits)

        composite = await peer.call(
            "CP-1", "GetCompositeSchedule", {"connectorId": 3, "duration": 600}
        )
        assert composite["status"] == "Accepted"
        periods = composite["chargingSchedule"]["chargingSchedulePeriod"]
        assert periods[0]["limit"] == 10.0

        cleared = await peer.call("CP-1", "ClearChargingProfile", {"id": 8})
        assert cleared == {"status": "Accepted"}
        await until(lambda: station.limits[-1] == (3, None))
