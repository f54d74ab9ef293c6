"""OCPP 2.0.1 through the system aggregator's seam (a scripted `FakeStationSystem`): UpdateFirmware
(L01), GetLog (N01) and Reset (B11 OnIdle, B12 Immediate), against a real 2.0.1 CSMS."""

from __future__ import annotations

from pathlib import Path

import pytest
from ocpp.v201 import call
from ocpp201_kit import make_ports, running_station, until

from chargeport.board import ResetKind
from chargeport.port import StopReason
from chargeport.security_log import security_event
from simulation.csms201 import CentralSystem201
from system_aggregator.fake import FakeStationSystem


async def test_update_firmware_statuses_carry_the_request_id_l01(tmp_path: Path) -> None:
    system = FakeStationSystem()
    async with (
        CentralSystem201() as csms,
        running_station(tmp_path / "db.sqlite", csms.url, system=system),
    ):
        await csms.wait_for(lambda: len(csms.statuses) >= 4)
        result = await csms.send(
            call.UpdateFirmware(
                request_id=5,
                firmware={
                    "location": "http://127.0.0.1:1/fw.bundle",
                    "retrieve_date_time": "2030-01-01T00:00:00Z",
                },
                retries=2,
                retry_interval=5,
            )
        )
        assert result.status == "Accepted"
        name = "FirmwareStatusNotification"
        await csms.wait_for(lambda: len(csms.actions(name)) == 4)
        assert [p["status"] for p in csms.actions(name)] == [
            "Downloading",
            "Downloaded",
            "Installing",
            "Installed",
        ]
        assert {p.get("request_id") for p in csms.actions(name)} == {5}
        assert system.calls == [
            ("update_firmware", ("http://127.0.0.1:1/fw.bundle", 1893456000.0, 2, 5.0))
        ]


@pytest.mark.parametrize("script", [("Uploading", "Uploaded"), ("Uploading", "UploadFailed")])
async def test_get_log_answers_the_file_name_before_any_status_n01(
    tmp_path: Path, script: tuple[str, ...]
) -> None:
    system = FakeStationSystem(
        diagnostics_statuses=script, diagnostics_status_first=True, return_delay_s=0.05
    )
    async with (
        CentralSystem201() as csms,
        running_station(tmp_path / "db.sqlite", csms.url, system=system),
    ):
        await csms.wait_for(lambda: len(csms.statuses) >= 4)
        since = len(csms.frames)
        result = await csms.send(
            call.GetLog(
                log_type="DiagnosticsLog",
                request_id=9,
                log={"remote_location": "ftp://127.0.0.1:1/up"},
            )
        )
        assert (result.status, result.filename) == ("Accepted", "diagnostics-CP-1.tar.gz")
        await csms.wait_for(lambda: len(csms.actions("LogStatusNotification")) == 2)
        expected = ["Uploading", "Uploaded" if script[-1] == "Uploaded" else "UploadFailure"]
        assert [p["status"] for p in csms.actions("LogStatusNotification")] == expected
        # the CALLRESULT came before the first status, though the system reported it first
        kinds = [k for k, _ in csms.frames[since:]]
        assert kinds.index("CALLRESULT") < csms.frames[since:].index(
            ("CALL", "LogStatusNotification")
        )
        security = await csms.send(
            call.GetLog(log_type="SecurityLog", request_id=10, log={"remote_location": "x"})
        )
        assert security.status == "Rejected"


async def test_reset_on_idle_waits_for_the_transaction_b11(tmp_path: Path) -> None:
    system = FakeStationSystem()
    ports = make_ports()
    async with (
        CentralSystem201() as csms,
        running_station(tmp_path / "db.sqlite", csms.url, ports, system=system),
    ):
        await csms.wait_for(lambda: len(csms.statuses) >= 4)
        ports[2].plug_in()
        ports[2].ev_ready()
        await csms.request_start("TAG-OK", evse_id=2)
        await csms.wait_for(lambda: csms.transaction_on(2))
        result = await csms.send(call.Reset(type="OnIdle"))
        assert result.status == "Scheduled"
        assert system.resets == []
        ports[2].unplug()
        await until(lambda: system.resets == [ResetKind.SOFT])
        assert csms.transaction_on(2) is not None
        await csms.wait_for(lambda: csms.transaction_on(2).ended)  # type: ignore[union-attr]


async def test_reset_immediate_ends_transactions_first_b12(tmp_path: Path) -> None:
    ended_first: list[bool] = []
    ports = make_ports()
    async with CentralSystem201() as csms:

        def on_reset(_kind: ResetKind) -> None:
            stopped = ("stop_transaction", (StopReason.HARD_RESET,)) in ports[1].calls
            ended_first.append(stopped)

        system = FakeStationSystem(on_reset=on_reset)
        async with running_station(tmp_path / "db.sqlite", csms.url, ports, system=system):
            await csms.wait_for(lambda: len(csms.statuses) >= 4)
            ports[1].plug_in()
            ports[1].ev_ready()
            await csms.request_start("TAG-OK", evse_id=1)
            await csms.wait_for(lambda: csms.transaction_on(1))
            result = await csms.send(call.Reset(type="Immediate"))
            assert result.status == "Accepted"
            await until(lambda: system.resets == [ResetKind.HARD])
            tx = csms.transaction_on(1)
            assert tx is not None
            await csms.wait_for(lambda: tx.ended)
            assert tx.stopped_reason == "ImmediateReset"
            assert ended_first == [True]
            await csms.wait_for(
                lambda: any(
                    e["type"] == "ResetOrReboot" for e in csms.actions("SecurityEventNotification")
                )
            )


async def test_security_events_journaled_offline_arrive_in_order_a04(tmp_path: Path) -> None:
    """A04, with the 1.6 security extension's journal and log handler: the station's start is
    StartupOfTheDevice; an event of an offline period is sent once connected, in order."""
    csms = CentralSystem201()
    await csms.start()
    port_no = csms.port
    try:
        async with running_station(tmp_path / "db.sqlite", csms.url) as station:
            name = "SecurityEventNotification"
            first = await csms.wait_for(lambda: csms.actions(name))
            assert first[0]["type"] == "StartupOfTheDevice"
            # delivered means answered (at least once: a stop before the answer repeats it)
            await until(lambda: station.session.security_events.next() is None)
            await csms.stop()
            await until(lambda: not station.session.online)
            security_event("InvalidFirmwareSignature", "bundle 2.0 from http://x: bad signature")
            security_event("SettingSystemTime", "clock moved by 90 s")
            await csms.start(port_no)
            await csms.wait_for(lambda: len(csms.actions(name)) == 3)
            assert [e["type"] for e in csms.actions(name)][1:] == [
                "InvalidFirmwareSignature",
                "SettingSystemTime",
            ]
            assert csms.actions(name)[1]["tech_info"] == "bundle 2.0 from http://x: bad signature"
            await until(lambda: station.session.security_events.next() is None)
    finally:
        await csms.stop()
