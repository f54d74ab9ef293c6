"""UpdateFirmware with a retrieveDate that is no dateTime (OCPP 1.6 section 5.19 / 7: dateTime is
RFC 3339): a PropertyConstraintViolation CALLERROR (OCPP-J 4.2.3), one log line, no traceback."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from ocpp_station_fixture import running_station, until

from simulation.csms import CentralSystem


@pytest.mark.parametrize("date", ["soon", "2026-13-45T99:00:00Z", "", "1e309"])
async def test_update_firmware_bad_retrieve_date_ocpp16_5_19(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, date: str
) -> None:
    async with CentralSystem() as csms, running_station(tmp_path / "db.sqlite", csms.url) as st:
        await until(lambda: st.session.online)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="main_node"):
            frame = (
                f'[2,"u1","UpdateFirmware",{{"location":"http://x/fw","retrieveDate":"{date}"}}]'
            )
            answer = await csms.send_raw(frame, "u1")
        assert answer[:3] == [4, "u1", "PropertyConstraintViolation"]
        ours = [r for r in caplog.records if r.name.startswith("main_node")]
        assert len(ours) == 1, [r.getMessage() for r in ours]
        assert ours[0].exc_info is None and "UpdateFirmware" in ours[0].getMessage()
        assert "\n" not in ours[0].getMessage()
        # The session goes on.
        assert await csms.change_configuration("HeartbeatInterval", "120") == "Accepted"
