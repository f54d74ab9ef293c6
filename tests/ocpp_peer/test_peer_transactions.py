"""Remote start / stop against the strict peer, on the main's own connector and on a satellite's
(OCPP 1.6 sections 5.11 RemoteStartTransaction, 5.12 RemoteStopTransaction, 6.45 / 6.49
Start/StopTransaction, 4.7 MeterValues)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ocpp_station_fixture import running_station, until
from strict_peer import StrictPeer


@pytest.mark.parametrize("connector", [1, 3], ids=["local", "satellite"])
async def test_remote_start_then_remote_stop_ocpp16_5_11_5_12(
    tmp_path: Path, peer: StrictPeer, connector: int
) -> None:
    """RemoteStartTransaction is Accepted, the EV plugs in, StartTransaction carries the tag;
    RemoteStopTransaction with the CSMS's transactionId ends it with reason Remote."""
    async with running_station(
        tmp_path / "db.sqlite", peer.url, meter_value_sample_interval_s=5
    ) as station:
        await peer.wait_for(lambda: all(peer.statuses(c) for c in range(5)))
        answer = await peer.call(
            "CP-1", "RemoteStartTransaction", {"connectorId": connector, "idTag": "TAG-RS"}
        )
        assert answer == {"status": "Accepted"}
        port = station.ports[connector]
        await until(lambda: ("authorize", ("TAG-RS", None)) in port.calls)
        port.meter(1000.0, 7000.0)
        port.plug_in()
        port.ev_ready()
        await peer.wait_for(lambda: peer.calls("StartTransaction"))
        start = peer.calls("StartTransaction")[0]
        assert (start["connectorId"], start["idTag"], start["meterStart"]) == (
            connector,
            "TAG-RS",
            1000,
        )
        await peer.wait_for(lambda: peer.last_status(connector) == "Charging")
        port.meter(1500.0, 7000.0)
        await peer.wait_for(lambda: peer.calls("MeterValues"))  # sampled, in the transaction
        transaction_id = 1  # the peer numbers transactions from 1
        assert peer.calls("MeterValues")[0]["transactionId"] == transaction_id
        answer = await peer.call("CP-1", "RemoteStopTransaction", {"transactionId": transaction_id})
        assert answer == {"status": "Accepted"}
        await peer.wait_for(lambda: peer.calls("StopTransaction"))
        stop = peer.calls("StopTransaction")[0]
        assert (stop["transactionId"], stop["reason"], stop["meterStop"]) == (1, "Remote", 1500)
        answer = await peer.call("CP-1", "RemoteStopTransaction", {"transactionId": 99})
        assert answer == {"status": "Rejected"}
