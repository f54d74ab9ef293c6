"""UpdateFirmware, GetDiagnostics and Reset reach the StationSystem seam (OCPP 1.6 sections
5.19, 5.9, 5.14); the statuses it reports come back as notifications, over real websockets."""

from __future__ import annotations

from pathlib import Path

import pytest
from ocpp.v16 import call
from ocpp_station_fixture import make_ports, running_station, until

from chargeport.board import ResetKind
from chargeport.port import StopReason
from simulation.csms import CentralSystem
from system_aggregator.fake import FakeStationSystem


def _statuses(csms: CentralSystem, action: str) -> list[str]:
    return [p["status"] for p in csms.actions(action)]


def _answered_before(csms: CentralSystem, since: int, action: str) -> bool:
    """The charge point's CALLRESULT came before its first `action` CALL after `since`."""
    frames = csms.frames[since:]
    result = next(i for i, (kind, _) in enumerate(frames) if kind == "CALLRESULT")
    notice = next(i for i, f in enumerate(frames) if f == ("CALL", action))
    return result < notice


@pytest.mark.parametrize(
    "script",
    [
        ("Downloading", "Downloaded", "Installing", "Installed"),
        ("Downloading", "DownloadFailed"),
        ("Downloading", "Downloaded", "Installing", "InstallationFailed"),
    ],
)
async def test_update_firmware_statuses_follow_the_system_ocpp16_5_19_6_25(
    tmp_path: Path, script: tuple[str, ...]
) -> None:
    """Section 5.19: UpdateFirmware.conf first, then one FirmwareStatusNotification per status."""
    system = FakeStationSystem(firmware_statuses=script)
    async with (
        CentralSystem() as csms,
        running_station(tmp_path / "db.sqlite", csms.url, system=system),
    ):
        await csms.wait_for(lambda: len(csms.statuses) >= 5)
        since = len(csms.frames)
        await csms.send(
            call.UpdateFirmware(
                location="http://127.0.0.1:1/fw.bundle",
                retrieve_date="2030-01-01T00:00:00Z",
                retries=2,
                retry_interval=5,
            )
        )
        name = "FirmwareStatusNotification"
        await csms.wait_for(lambda: len(csms.actions(name)) == len(script))
        assert _statuses(csms, name) == list(script)
        assert system.calls == [
            ("update_firmware", ("http://127.0.0.1:1/fw.bundle", 1893456000.0, 2, 5.0))
        ]
        assert _answered_before(csms, since, name)
        # TriggerMessage reports the last status again (section 5.17).
        assert await csms.trigger(name) == "Accepted"
        await csms.wait_for(lambda: len(csms.actions(name)) == len(script) + 1)
        assert _statuses(csms, name)[-1] == script[-1]


@pytest.mark.parametrize("status_first", [False, True])
@pytest.mark.parametrize("script", [("Uploading", "Uploaded"), ("Uploading", "UploadFailed")])
async def test_get_diagnostics_answers_file_name_before_any_status_ocpp16_5_9_6_19(
    tmp_path: Path, status_first: bool, script: tuple[str, ...]
) -> None:
    """Section 5.9: GetDiagnostics.conf carries the file name and precedes Uploading, even
    when the system reports Uploading before it returns the name."""
    system = FakeStationSystem(
        diagnostics_statuses=script,
        diagnostics_file="diag-CP-1.tar.gz",
        diagnostics_status_first=status_first,
        return_delay_s=0.2,
    )
    try:
        async with (
            CentralSystem() as csms,
            running_station(tmp_path / "db.sqlite", csms.url, system=system),
        ):
            await csms.wait_for(lambda: len(csms.statuses) >= 5)
            since = len(csms.frames)
            result = await csms.send(
                call.GetDiagnostics(
                    location="ftp://127.0.0.1:1/upload/",
                    retries=1,
                    start_time="2030-01-01T00:00:00Z",
                )
            )
            assert result.file_name == "diag-CP-1.tar.gz"
            name = "DiagnosticsStatusNotification"
            await csms.wait_for(lambda: len(csms.actions(name)) == 2)
            assert _statuses(csms, name) == list(script)
            assert _answered_before(csms, since, name)
            assert system.calls == [
                ("get_diagnostics", ("ftp://127.0.0.1:1/upload/", 1893456000.0, None, 1, 0.0))
            ]
    finally:
        await system.aclose()


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("Soft", StopReason.SOFT_RESET), ("Hard", StopReason.HARD_RESET)],
)
async def test_reset_stops_transactions_then_resets_the_system_ocpp16_5_14(
    tmp_path: Path, kind: str, reason: StopReason
) -> None:
    """Section 5.14: running transactions stop with reason SoftReset / HardReset and their
    StopTransaction is journaled before the system resets the boards."""
    ports = make_ports()
    seen: list[tuple[ResetKind, bool, bool]] = []
    system = FakeStationSystem(
        on_reset=lambda k: seen.append(
            (
                k,
                ("stop_transaction", (reason,)) in ports[2].calls,
                2 not in station.session.active_tx,  # i.e. StopTransaction journaled
            )
        )
    )
    async with (
        CentralSystem() as csms,
        running_station(tmp_path / "db.sqlite", csms.url, ports, system=system) as station,
    ):
        await csms.wait_for(lambda: len(csms.statuses) >= 5)
        await ports[2].authorize("TAG-OK")
        ports[2].meter(250.0, 7000.0)
        ports[2].plug_in()
        ports[2].ev_ready()
        tx = await csms.wait_for(lambda: next(iter(csms.transactions.values()), None))
        result = await csms.send(call.Reset(type=kind))
        assert result.status == "Accepted"
        await until(lambda: system.resets)
        expected = ResetKind.SOFT if kind == "Soft" else ResetKind.HARD
        assert seen == [(expected, True, True)]
        await csms.wait_for(lambda: tx.reason is not None)
        assert (tx.reason, tx.meter_stop) == (reason.value, 250)


async def test_reset_without_a_system_is_rejected_ocpp16_5_14(tmp_path: Path) -> None:
    """Section 5.14: no StationSystem wired means the reset cannot be carried out."""
    async with CentralSystem() as csms, running_station(tmp_path / "db.sqlite", csms.url):
        await csms.wait_for(lambda: len(csms.statuses) >= 5)
        assert (await csms.send(call.Reset(type="Soft"))).status == "Rejected"
