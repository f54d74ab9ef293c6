"""A rollout that waits for a board whose supervisor is not running says so, then fails it
(OCPP 1.6 4.5 FirmwareStatusNotification: InstallationFailed) with the reason in the log."""

from __future__ import annotations

import logging

import pytest
from agg_fixtures import OLD, TARGET, HttpServer, Keys, Station, make_bundle

from system_aggregator.aggregator import SystemAggregator

pytestmark = pytest.mark.integration


async def test_board_that_never_restarts_is_reported_then_failed(
    station: Station, keys: Keys, http_server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def exits_and_nobody_restarts_it() -> None:
        return None  # exit 75 with no systemd: the old boot keeps answering, nothing changes

    station.satellites[0]._on_restart = exits_and_nobody_restarts_it
    impatient = SystemAggregator(
        station.local, station.remotes, trusted_keys=[keys.pub], target=TARGET,
        work_dir=station.aggregator._work, station_id="ST-1", restart_timeout_s=0.4,
        poll_s=0.01,
    )  # fmt: skip
    make_bundle(http_server.files, keys.key)
    with caplog.at_level(logging.WARNING, logger="system_aggregator"):
        await impatient.update_firmware(
            f"{http_server.url}/fw/fw.bundle", 0.0, 1, 0.0, station.record
        )
    await impatient.aclose()
    assert station.statuses[-1] == "InstallationFailed"
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("waiting for SAT-1 to restart into 2.0.0 (") for m in messages)
    assert any(
        "board SAT-1 did not restart into 2.0.0 within 0.4 s (still running its old boot); "
        "check that its service manager (systemd) restarts it after exit 75" in m
        for m in messages
    ), messages
    for b in station.boards:  # and the station stays on one version
        assert b.firmware_version == OLD, b.serial
