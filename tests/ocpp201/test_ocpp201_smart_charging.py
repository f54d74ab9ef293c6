"""OCPP 2.0.1 smart charging on a satellite gun (K01, K08, K09, K10): a TxProfile set by the
CSMS reaches the gun through the energy manager and the ChargePort contract."""

from __future__ import annotations

from pathlib import Path

from ocpp.v201 import call
from ocpp201_kit import make_ports, running_station, until

from chargeport.clock import RealClock
from chargeport.config import EnergyConfig
from main_node.energy import EnergyManager
from simulation.csms201 import CentralSystem201


def _profile(pid: int, purpose: str, limit: float, **kw: object) -> dict[str, object]:
    return {
        "id": pid,
        "stack_level": 0,
        "charging_profile_purpose": purpose,
        "charging_profile_kind": "Absolute",
        "charging_schedule": [
            {
                "id": pid,
                "charging_rate_unit": "A",
                "start_schedule": "2020-01-01T00:00:00Z",
                "charging_schedule_period": [{"start_period": 0, "limit": limit}],
            }
        ],
        **kw,
    }


async def test_tx_profile_on_satellite_gun_limits_it_then_clears_k01_k08_k10(
    tmp_path: Path,
) -> None:
    ports = make_ports()
    energy = EnergyManager(ports, EnergyConfig(site_limit_a=63.0, refresh_s=0.2), RealClock())
    await energy.start()
    try:
        async with (
            CentralSystem201() as csms,
            running_station(
                tmp_path / "db.sqlite", csms.url, ports, limit_sink=energy.set_profile_limit
            ),
        ):
            await csms.wait_for(lambda: len(csms.statuses) >= 4)
            sat = ports[2]
            sat.plug_in()
            sat.ev_ready()
            await csms.request_start("TAG-OK", evse_id=2)
            tx = await csms.wait_for(lambda: csms.transaction_on(2))
            # A TxProfile for another transaction is refused (K01.FR.09).
            wrong = await csms.send(
                call.SetChargingProfile(
                    evse_id=2, charging_profile=_profile(5, "TxProfile", 8.0, transaction_id="x")
                )
            )
            assert wrong.status == "Rejected"
            result = await csms.send(
                call.SetChargingProfile(
                    evse_id=2,
                    charging_profile=_profile(
                        6, "TxProfile", 10.0, transaction_id=tx.transaction_id
                    ),
                )
            )
            assert result.status == "Accepted"

            def limited_to(amps: float) -> bool:
                return any(name == "set_limit" and args[0] == amps for name, args in sat.calls[-3:])

            await until(lambda: limited_to(10.0))
            composite = await csms.send(
                call.GetCompositeSchedule(duration=600, evse_id=2, charging_rate_unit="A")
            )
            assert composite.status == "Accepted"
            periods = composite.schedule["charging_schedule_period"]
            assert periods[0]["limit"] == 10.0
            got = await csms.send(
                call.GetChargingProfiles(
                    request_id=3, charging_profile={"charging_profile_id": [6]}
                )
            )
            assert got.status == "Accepted"
            report = await csms.wait_for(lambda: csms.actions("ReportChargingProfiles"))
            assert report[0]["evse_id"] == 2
            assert report[0]["charging_profile"][0]["id"] == 6
            cleared = await csms.send(call.ClearChargingProfile(charging_profile_id=6))
            assert cleared.status == "Accepted"
            again = await csms.send(call.ClearChargingProfile(charging_profile_id=6))
            assert again.status == "Unknown"
    finally:
        await energy.stop()


async def test_station_max_profile_only_on_evse_0_k01(tmp_path: Path) -> None:
    async with (
        CentralSystem201() as csms,
        running_station(tmp_path / "db.sqlite", csms.url) as station,
    ):
        await csms.wait_for(lambda: len(csms.statuses) >= 4)
        on_gun = await csms.send(
            call.SetChargingProfile(
                evse_id=1, charging_profile=_profile(1, "ChargingStationMaxProfile", 20.0)
            )
        )
        assert on_gun.status == "Rejected"
        station_wide = await csms.send(
            call.SetChargingProfile(
                evse_id=0, charging_profile=_profile(2, "ChargingStationMaxProfile", 20.0)
            )
        )
        assert station_wide.status == "Accepted"
        await until(lambda: (0, 20.0) in station.limits)
