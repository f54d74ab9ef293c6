"""OCPP 2.0.1 against a central system written with `ocpp.v201` over real websockets:
boot, statuses per EVSE, remote start / stop on the local gun and a satellite gun."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ocpp.v201 import call
from ocpp201_kit import make_ports, running_station, until

from simulation.csms201 import CentralSystem201


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


async def test_sampled_and_clock_aligned_meter_values_j01_j02(tmp_path: Path) -> None:
    """J02: TxUpdatedInterval samples ride on TransactionEvent Updated (MeterValuePeriodic);
    J01: clock-aligned readings as Updated (MeterValueClock) in a transaction, MeterValues
    outside one."""
    ports = make_ports(2)
    async with (
        CentralSystem201() as csms,
        running_station(tmp_path / "db.sqlite", csms.url, ports),
    ):
        await csms.wait_for(lambda: len(csms.statuses) >= 2)
        assert await csms.set_variable("SampledDataCtrlr", "TxUpdatedInterval", "10") == "Accepted"
        ports[1].meter(100.0, 7000.0)
        ports[2].meter(5.0)
        ports[1].plug_in()
        ports[1].ev_ready()
        await csms.request_start("TAG-OK", evse_id=1)
        tx = await csms.wait_for(lambda: csms.transaction_on(1))

        def triggers(name: str) -> list[dict[str, Any]]:
            return [e for e in tx.events if e["trigger_reason"] == name]

        await csms.wait_for(lambda: len(triggers("MeterValuePeriodic")) >= 2)
        periodic = triggers("MeterValuePeriodic")[0]["meter_value"][0]["sampled_value"]
        assert {v["context"] for v in periodic} == {"Sample.Periodic"}
        assert {v["measurand"] for v in periodic} >= {
            "Energy.Active.Import.Register",
            "Power.Active.Import",
        }
        assert await csms.set_variable("AlignedDataCtrlr", "Interval", "30") == "Accepted"
        await csms.wait_for(lambda: triggers("MeterValueClock"))
        clock = triggers("MeterValueClock")[0]["meter_value"][0]["sampled_value"]
        assert {v["context"] for v in clock} == {"Sample.Clock"}
        idle = await csms.wait_for(lambda: csms.actions("MeterValues"))
        assert idle[0]["evse_id"] == 2
        assert idle[0]["meter_value"][0]["sampled_value"][0]["value"] == 5.0


async def test_change_availability_scheduled_while_charging_and_persisted_g03_g04(
    tmp_path: Path,
) -> None:
    """G04: the whole station Inoperative; an EVSE that charges follows when its transaction
    ends (Scheduled); the state survives a main restart, until the station is Operative again."""
    db = tmp_path / "db.sqlite"
    ports = make_ports(2)
    async with CentralSystem201() as csms:
        async with running_station(db, csms.url, ports):
            await csms.wait_for(lambda: len(csms.statuses) >= 2)
            ports[1].plug_in()
            ports[1].ev_ready()
            await csms.request_start("TAG-OK", evse_id=1)
            await csms.wait_for(lambda: csms.transaction_on(1))
            result = await csms.send(call.ChangeAvailability(operational_status="Inoperative"))
            assert result.status == "Scheduled"
            await csms.wait_for(lambda: csms.last_status(2) == "Unavailable")
            assert csms.last_status(1) == "Occupied"
            ports[1].unplug()
            await csms.wait_for(lambda: csms.last_status(1) == "Unavailable")
        restarted = make_ports(2)
        async with running_station(db, csms.url, restarted):
            await until(lambda: ("disable", ()) in restarted[1].calls)
            assert ("disable", ()) in restarted[2].calls
            # an EVSE cannot be Operative while the station is not (the shared store's rule)
            one = await csms.send(
                call.ChangeAvailability(operational_status="Operative", evse={"id": 2})
            )
            assert one.status == "Accepted"
            back = await csms.send(call.ChangeAvailability(operational_status="Operative"))
            assert back.status == "Accepted"
            await until(lambda: all(("enable", ()) in restarted[e].calls for e in (1, 2)))
            await csms.wait_for(
                lambda: csms.last_status(1) == "Available" and csms.last_status(2) == "Available"
            )
