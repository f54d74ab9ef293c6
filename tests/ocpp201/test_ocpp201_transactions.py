"""OCPP 2.0.1 against a central system written with `ocpp.v201` over real websockets:
boot, statuses per EVSE, remote start / stop on the local gun and a satellite gun."""

from __future__ import annotations

from pathlib import Path

import pytest
from ocpp201_kit import make_ports, running_station

from chargeport.sim.csms201 import CentralSystem201


async def test_boot_then_a_status_per_evse_connector_1_b01_g01(tmp_path: Path) -> None:
    """B01: BootNotification first, with its reason; G01: a StatusNotification per EVSE."""
    async with CentralSystem201() as csms, running_station(tmp_path / "db.sqlite", csms.url):
        await csms.wait_for(lambda: {e for e, _ in csms.statuses} == {1, 2, 3, 4})
        first = csms.messages[0]
        assert first[0] == "BootNotification"
        assert first[1]["reason"] == "PowerUp"
        assert first[1]["charging_station"]["model"] == "chargeport-4"
        assert all(s == "Available" for _, s in csms.statuses)


@pytest.mark.parametrize("evse", [1, 2], ids=["local", "satellite"])
async def test_remote_start_then_stop_f01_f03(tmp_path: Path, evse: int) -> None:
    """F01 / F03: RequestStartTransaction authorizes the gun; the station generates the
    transactionId; Started / Updated / Ended carry seqNo 0.. and RequestStopTransaction ends it
    with stoppedReason Remote."""
    ports = make_ports()
    async with CentralSystem201() as csms, running_station(tmp_path / "db.sqlite", csms.url, ports):
        await csms.wait_for(lambda: len(csms.statuses) >= 4)
        ports[evse].meter(1000.0)
        ports[evse].plug_in()
        ports[evse].ev_ready()  # the EV waits for authorization (state C)
        result = await csms.request_start("TAG-OK", evse_id=evse)
        assert result.status == "Accepted"
        tx = await csms.wait_for(lambda: csms.transaction_on(evse))
        assert tx.events[0]["event_type"] == "Started"
        assert tx.events[0]["trigger_reason"] == "RemoteStart"
        assert tx.remote_start_id is not None
        assert tx.id_token == "TAG-OK"
        await csms.wait_for(lambda: csms.last_status(evse) == "Occupied")
        ports[evse].meter(1500.0)
        stop = await csms.request_stop(tx.transaction_id)
        assert stop.status == "Accepted"
        await csms.wait_for(lambda: tx.ended)
        assert tx.stopped_reason == "Remote"
        assert [e["seq_no"] for e in tx.events] == list(range(len(tx.events)))
        assert tx.energy_wh("Started") == 1000.0
        assert tx.energy_wh("Ended") == 1500.0
        assert tx.events[-1]["trigger_reason"] == "RemoteStop"


async def test_unknown_transaction_stop_is_rejected_f03(tmp_path: Path) -> None:
    async with CentralSystem201() as csms, running_station(tmp_path / "db.sqlite", csms.url):
        await csms.wait_for(lambda: len(csms.statuses) >= 4)
        result = await csms.request_stop("no-such-tx")
        assert result.status == "Rejected"
