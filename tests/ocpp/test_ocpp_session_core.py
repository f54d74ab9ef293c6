"""OCPP 1.6J charge point against a real central system (ocpp package) over loopback websockets."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ocpp_station_fixture import make_ports, running_station

from simulation.csms import CentralSystem


async def test_cold_boot_sends_boot_then_status_for_connectors_0_to_n_ocpp16_4_2(
    tmp_path: Path,
) -> None:
    """Section 4.2 / 4.9: BootNotification first; then StatusNotification for 0..N."""
    async with CentralSystem() as csms, running_station(tmp_path / "db.sqlite", csms.url):
        await csms.wait_for(lambda: {c for c, _, _ in csms.statuses} >= {0, 1, 2, 3, 4})
        assert csms.messages[0][0] == "BootNotification"
        assert {c: s for c, s, _ in csms.statuses} == {
            0: "Available",
            1: "Available",
            2: "Available",
            3: "Available",
            4: "Available",
        }


async def test_remote_start_stop_on_a_satellite_connector_ocpp16_5_11_5_12(
    tmp_path: Path,
) -> None:
    """Section 5.11/5.12: RemoteStart authorizes the port; RemoteStop ends the transaction."""
    ports = make_ports()
    async with CentralSystem() as csms, running_station(tmp_path / "db.sqlite", csms.url, ports):
        await csms.wait_for(lambda: len(csms.statuses) >= 5)
        assert await csms.remote_start("TAG-OK", connector_id=3) == "Accepted"
        await csms.wait_for(lambda: ("authorize", ("TAG-OK", None)) in ports[3].calls)
        ports[3].plug_in()
        ports[3].ev_ready()
        ports[3].meter(1234.0, 7000.0)
        tx = await csms.wait_for(lambda: next(iter(csms.transactions.values()), None))
        assert (tx.connector_id, tx.id_tag) == (3, "TAG-OK")
        await csms.wait_for(lambda: csms.last_status(3) == "Charging")
        assert await csms.remote_stop(tx.transaction_id) == "Accepted"
        await csms.wait_for(lambda: tx.meter_stop is not None)
        assert (tx.meter_stop, tx.reason) == (1234, "Remote")
        assert await csms.remote_stop(999) == "Rejected"


async def test_meter_values_carry_transaction_id_and_increasing_energy_ocpp16_4_7(
    tmp_path: Path,
) -> None:
    """Section 4.7 / 9.1.8: sampled MeterValues with transactionId and per-phase measurands."""
    ports = make_ports()
    async with CentralSystem() as csms, running_station(tmp_path / "db.sqlite", csms.url, ports):
        await csms.wait_for(lambda: len(csms.statuses) >= 5)
        assert await csms.change_configuration("MeterValueSampleInterval", "1") == "Accepted"
        port = ports[2]
        await port.authorize("TAG-OK")
        port.plug_in()
        port.ev_ready()
        energy = 100.0
        tx = await csms.wait_for(lambda: next(iter(csms.transactions.values()), None))
        while len(tx.meter_values) < 3:
            energy += 50.0
            port.meter(energy, 11000.0)
            await asyncio.sleep(0.01)
        registers = [
            float(v["value"])
            for mv in tx.meter_values
            for v in mv["sampled_value"]
            if v["measurand"] == "Energy.Active.Import.Register"
        ]
        assert registers == sorted(registers) and registers[-1] > registers[0]
        measurands = {v["measurand"] for v in tx.meter_values[-1]["sampled_value"]}
        assert {"Energy.Active.Import.Register", "Power.Active.Import"} <= measurands


async def test_change_availability_reaches_only_that_port_and_persists_ocpp16_5_2(
    tmp_path: Path,
) -> None:
    """Section 5.2: Inoperative on connector 3 disables that port; survives a restart."""
    ports = make_ports()
    db = tmp_path / "db.sqlite"
    async with CentralSystem() as csms:
        async with running_station(db, csms.url, ports):
            await csms.wait_for(lambda: len(csms.statuses) >= 5)
            assert await csms.change_availability(3, "Inoperative") == "Accepted"
            await csms.wait_for(lambda: csms.last_status(3) == "Unavailable")
            assert ("disable", ()) in ports[3].calls
            assert all(("disable", ()) not in ports[c].calls for c in (1, 2, 4))
            assert await csms.change_availability(9, "Inoperative") == "Rejected"
        fresh = make_ports()
        csms.statuses.clear()
        async with running_station(db, csms.url, fresh):
            await csms.wait_for(lambda: csms.last_status(3) == "Unavailable")
            assert ("disable", ()) in fresh[3].calls


async def test_smart_charging_limit_reaches_limit_sink_ocpp16_3_13(tmp_path: Path) -> None:
    """Section 3.13 / 5.16: a TxDefaultProfile on connector 2 yields its limit for connector 2."""
    profile = {
        "chargingProfileId": 7,
        "stackLevel": 1,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "chargingRateUnit": "A",
            "startSchedule": "2020-01-01T00:00:00Z",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}],
        },
    }
    async with (
        CentralSystem() as csms,
        running_station(tmp_path / "db.sqlite", csms.url) as station,
    ):
        await csms.wait_for(lambda: len(csms.statuses) >= 5)
        assert await csms.set_charging_profile(2, profile) == "Accepted"
        await csms.wait_for(lambda: (2, 10.0) in station.limits)
        assert (3, 10.0) not in station.limits


async def test_reservation_and_cancel_ocpp16_5_13(tmp_path: Path) -> None:
    """Section 5.13: ReserveNow reaches the port (Reserved), CancelReservation frees it."""
    ports = make_ports()
    async with CentralSystem() as csms, running_station(tmp_path / "db.sqlite", csms.url, ports):
        await csms.wait_for(lambda: len(csms.statuses) >= 5)
        status = await csms.reserve_now(4, "TAG-OK", 42, "2099-01-01T00:00:00Z")
        assert status == "Accepted"
        await csms.wait_for(lambda: csms.last_status(4) == "Reserved")
        assert await csms.reserve_now(4, "OTHER", 43, "2099-01-01T00:00:00Z") == "Occupied"
        from ocpp.v16 import call

        result = await csms.send(call.CancelReservation(reservation_id=42))
        assert result.status == "Accepted"
        await csms.wait_for(lambda: csms.last_status(4) == "Available")


async def test_trigger_message_status_and_meter_values_ocpp16_5_17(tmp_path: Path) -> None:
    """Section 5.17: triggered StatusNotification / Heartbeat / MeterValues follow the answer."""
    ports = make_ports()
    async with CentralSystem() as csms, running_station(tmp_path / "db.sqlite", csms.url, ports):
        await csms.wait_for(lambda: len(csms.statuses) >= 5)
        before = len(csms.statuses)
        assert await csms.trigger("StatusNotification", 2) == "Accepted"
        await csms.wait_for(lambda: len(csms.statuses) > before)
        assert csms.statuses[-1][0] == 2
        assert await csms.trigger("Heartbeat") == "Accepted"
        await csms.wait_for(lambda: csms.actions("Heartbeat"))
        ports[1].meter(500.0, 0.0)
        await asyncio.sleep(0)
        assert await csms.trigger("MeterValues", 1) == "Accepted"
        mv = await csms.wait_for(lambda: csms.actions("MeterValues"))
        assert mv[-1]["meter_value"][0]["sampled_value"][0]["context"] == "Trigger"
        assert await csms.trigger("StatusNotification", 9) == "Rejected"


async def test_bad_frames_get_ocpp16_call_errors_and_station_keeps_running_ocpp_j_4_2_3(
    tmp_path: Path,
) -> None:
    """OCPP-J 1.6 section 4.2.3: FormationViolation, PropertyConstraintViolation, ..."""
    async with CentralSystem() as csms, running_station(tmp_path / "db.sqlite", csms.url):
        await csms.wait_for(lambda: len(csms.statuses) >= 5)
        cases = [
            ('[2,"u1","Reset",{"type":"Sideways"}]', "u1", "PropertyConstraintViolation"),
            ('[2,"u2","Reset",{"type":"Hard","x":1}]', "u2", "FormationViolation"),
            ('[2,"u3","Reset",{}]', "u3", "OccurenceConstraintViolation"),
            (
                '[2,"u4","ChangeAvailability",{"connectorId":"1","type":"Operative"}]',
                "u4",
                "TypeConstraintViolation",
            ),
            # 4.2.3: NotImplemented = action not known; NotSupported = known, not supported.
            ('[2,"u5","NoSuchAction",{}]', "u5", "NotImplemented"),
            (
                '[2,"u6","LogStatusNotification",{"status":"Idle"}]',  # the CP's own CALL
                "u6",
                "NotSupported",
            ),
            ('[2,"u7","Reset"]', "u7", "FormationViolation"),
        ]
        for frame, uid, code in cases:
            answer = await csms.send_raw(frame, uid)
            assert answer[0] == 4 and answer[1] == uid and answer[2] == code, (frame, answer)
        await csms.send_raw("this is not json")
        # Still serving: a valid CALL gets its answer.
        assert await csms.change_configuration("HeartbeatInterval", "120") == "Accepted"
