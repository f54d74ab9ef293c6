"""Station config (TOML [ocpp]) supplies the defaults of HeartbeatInterval and
MeterValueSampleInterval; a value the CSMS changed is persisted and wins (OCPP 1.6 section
9.1.14 / 9.1.20, section 5.3 ChangeConfiguration)."""

from __future__ import annotations

from pathlib import Path

from ocpp.v16 import call
from ocpp_station_fixture import running_station

from simulation.csms import CentralSystem


async def _values(csms: CentralSystem) -> dict[str, str]:
    keys = ["HeartbeatInterval", "MeterValueSampleInterval"]
    result = await csms.send(call.GetConfiguration(key=keys))
    return {k["key"]: k["value"] for k in result.configuration_key}


async def test_toml_defaults_apply_until_the_csms_changes_them_ocpp16_9_1(tmp_path: Path) -> None:
    """Defaults from the options; a ChangeConfiguration survives a restart with the same TOML,
    a key the CSMS never touched follows a new TOML value."""
    db = tmp_path / "db.sqlite"
    # interval=0 in BootNotification.conf: the CSMS leaves the heartbeat to the charge point.
    async with CentralSystem(boot_interval=0) as csms:
        async with running_station(
            db, csms.url, heartbeat_interval_s=7, meter_value_sample_interval_s=5
        ):
            await csms.wait_for(lambda: len(csms.statuses) >= 5)
            assert await _values(csms) == {
                "HeartbeatInterval": "7",
                "MeterValueSampleInterval": "5",
            }
            # The default is the one in use: heartbeats come every 7 s (x time_scale).
            await csms.wait_for(lambda: len(csms.actions("Heartbeat")) >= 2)
            assert await csms.change_configuration("MeterValueSampleInterval", "9") == "Accepted"
        async with running_station(
            db, csms.url, heartbeat_interval_s=7, meter_value_sample_interval_s=5
        ):
            await csms.wait_for(lambda: len(csms.actions("BootNotification")) == 2)
            assert await _values(csms) == {
                "HeartbeatInterval": "7",
                "MeterValueSampleInterval": "9",
            }
        async with running_station(
            db, csms.url, heartbeat_interval_s=11, meter_value_sample_interval_s=5
        ):
            await csms.wait_for(lambda: len(csms.actions("BootNotification")) == 3)
            assert await _values(csms) == {
                "HeartbeatInterval": "11",
                "MeterValueSampleInterval": "9",
            }


async def test_boot_interval_from_the_csms_overrides_the_toml_heartbeat_ocpp16_4_2(
    tmp_path: Path,
) -> None:
    """Section 4.2: BootNotification.conf interval > 0 sets HeartbeatInterval."""
    async with CentralSystem(boot_interval=45) as csms:
        async with running_station(tmp_path / "db.sqlite", csms.url, heartbeat_interval_s=7):
            await csms.wait_for(lambda: len(csms.statuses) >= 5)
            assert (await _values(csms))["HeartbeatInterval"] == "45"
