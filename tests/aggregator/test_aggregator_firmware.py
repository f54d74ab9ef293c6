"""UpdateFirmware end to end (OCPP 1.6 §5.19 / §4.5 FirmwareStatusNotification): real HTTP and
FTP servers, two satellites behind real loopback gRPC servers, the local board in-process."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from agg_fixtures import OLD, TARGET, FtpServer, HttpServer, Keys, Station, board, make_bundle

from chargeport.board import FirmwareAction
from chargeport.clock import ManualClock
from system_aggregator.aggregator import SystemAggregator

pytestmark = pytest.mark.integration


def assert_untouched(st: Station) -> None:
    """Every board still runs the old firmware from its original slot, nothing staged."""
    for b in st.boards:
        assert b.firmware_version == OLD, b.serial
        assert b.state.active == "A" and not b.state.tentative and not b.state.staged, b.serial


async def update(st: Station, url: str, retries: int = 1) -> list[str]:
    await st.aggregator.update_firmware(url, 0.0, retries, 0.0, st.record)
    return st.statuses


async def test_http_rollout_installs_one_version_everywhere(
    station: Station, keys: Keys, http_server: HttpServer
) -> None:
    make_bundle(http_server.files, keys.key, "2.0.0")
    progress: list[tuple[int, int]] = []
    await station.aggregator.update_firmware(
        f"{http_server.url}/fw/fw.bundle", 0.0, 1, 0.0, station.record,
        on_progress=lambda sent, total: progress.append((sent, total)),
    )  # fmt: skip
    assert station.statuses == ["Downloading", "Downloaded", "Installing", "Installed"]
    assert http_server.gets == 1  # downloaded once for all boards
    for b in station.boards:
        assert b.firmware_version == "2.0.0"
        assert b.state.active == "B" and not b.state.tentative
        assert b.state.boot_reason == "FirmwareUpdate"
    assert progress and progress[-1][0] == progress[-1][1]
    # The version is read back over gRPC from the satellites after their restart.
    assert [(await r.info()).firmware_version for r in station.remotes] == ["2.0.0"] * 2


async def test_ftp_download_with_credentials(
    station: Station, keys: Keys, ftp_server: FtpServer
) -> None:
    make_bundle(ftp_server.root, keys.key, "2.1.0")
    assert await update(station, f"{ftp_server.url}/fw.bundle") == [
        "Downloading", "Downloaded", "Installing", "Installed",
    ]  # fmt: skip
    assert {b.firmware_version for b in station.boards} == {"2.1.0"}


async def test_bad_signature_refused_invalid_signature(
    station: Station, keys: Keys, http_server: HttpServer
) -> None:
    make_bundle(http_server.files, keys.other_key)
    assert await update(station, f"{http_server.url}/fw/fw.bundle", retries=3) == [
        "Downloading", "InvalidSignature",
    ]  # fmt: skip
    assert http_server.gets == 1  # a bad signature is not retried
    assert_untouched(station)


async def test_wrong_target_refused(station: Station, keys: Keys, http_server: HttpServer) -> None:
    make_bundle(http_server.files, keys.key, target="other-board")
    assert await update(station, f"{http_server.url}/fw/fw.bundle") == [
        "Downloading", "InstallationFailed",
    ]  # fmt: skip
    assert_untouched(station)


async def test_truncated_download_retried_then_download_failed(
    station: Station, keys: Keys, http_server: HttpServer
) -> None:
    make_bundle(http_server.files, keys.key)
    assert await update(station, f"{http_server.url}/truncated/fw.bundle", retries=2) == [
        "Downloading", "DownloadFailed",
    ]  # fmt: skip
    assert http_server.gets == 2  # OCPP 1.6 §6.49: `retries` tries before giving up
    assert_untouched(station)


async def test_corrupted_payload_download_failed(
    station: Station, keys: Keys, http_server: HttpServer
) -> None:
    path = make_bundle(http_server.files, keys.key)
    data = bytearray(path.read_bytes())
    data[-1000] ^= 0xFF  # a flipped payload byte: the signed sha256 no longer matches
    path.write_bytes(bytes(data))
    assert await update(station, f"{http_server.url}/fw/fw.bundle") == [
        "Downloading", "DownloadFailed",
    ]  # fmt: skip
    assert_untouched(station)


async def test_unreachable_url_download_failed(station: Station) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    assert await update(station, f"http://127.0.0.1:{port}/fw.bundle", retries=2) == [
        "Downloading", "DownloadFailed",
    ]  # fmt: skip
    assert_untouched(station)


async def test_one_board_refuses_install_all_roll_back(
    tmp_path: Path, station: Station, keys: Keys, http_server: HttpServer
) -> None:
    # SAT-2 is built for another target: its own verification refuses the bundle mid-rollout.
    station.satellites[1]._target = "other-board"
    make_bundle(http_server.files, keys.key)
    assert await update(station, f"{http_server.url}/fw/fw.bundle") == [
        "Downloading", "Downloaded", "Installing", "InstallationFailed",
    ]  # fmt: skip
    assert_untouched(station)


async def test_board_trusting_other_key_reports_invalid_signature(
    station: Station, keys: Keys, http_server: HttpServer
) -> None:
    from chargeport.bundle import load_trusted_keys

    station.satellites[0]._keys = load_trusted_keys([keys.other_pub])
    make_bundle(http_server.files, keys.key)
    assert (await update(station, f"{http_server.url}/fw/fw.bundle"))[-1] == "InvalidSignature"
    assert_untouched(station)


async def test_activation_failure_rolls_back_activated_boards(
    station: Station, keys: Keys, http_server: HttpServer
) -> None:
    from chargeport.board import BoardUnavailable

    async def broken_restart() -> None:
        raise BoardUnavailable("watchdog: new firmware did not start")

    station.satellites[1]._on_restart = broken_restart
    make_bundle(http_server.files, keys.key)
    assert (await update(station, f"{http_server.url}/fw/fw.bundle"))[-1] == "InstallationFailed"
    for b in station.boards:
        assert b.firmware_version == OLD and not b.state.tentative, b.serial
    # SAT-1 had really restarted into B, so it came back to A with a new boot.
    assert station.satellites[0].state.active == "A"


async def test_unreachable_satellite_refuses_before_touching_any_board(
    station: Station, keys: Keys, http_server: HttpServer
) -> None:
    await station.servers[0].stop(None)
    make_bundle(http_server.files, keys.key)
    assert (await update(station, f"{http_server.url}/fw/fw.bundle"))[-1] == "InstallationFailed"
    assert_untouched(station)


async def test_waits_for_retrieve_date(tmp_path: Path, keys: Keys, http_server: HttpServer) -> None:
    clock = ManualClock(1_000.0)
    local = board(tmp_path, "MAIN-9", "main", keys)
    agg = SystemAggregator(
        local, [], trusted_keys=[keys.pub], target=TARGET, work_dir=tmp_path / "w", clock=clock
    )
    make_bundle(http_server.files, keys.key)
    statuses: list[str] = []

    async def record(s: str) -> None:
        statuses.append(s)

    task = asyncio.create_task(
        agg.update_firmware(f"{http_server.url}/fw/fw.bundle", 1_060.0, 1, 0.0, record)
    )
    for _ in range(5):
        await asyncio.sleep(0)
    assert statuses == [] and http_server.gets == 0
    clock.advance(60.0)
    await task
    assert statuses[-1] == "Installed" and local.firmware_version == "2.0.0"


async def test_resume_after_local_restart_confirms_everyone(
    station: Station, keys: Keys, http_server: HttpServer, tmp_path: Path
) -> None:
    # Simulate the main restarting mid-rollout: everyone tentative on 2.0.0, pending file there.
    data = make_bundle(tmp_path, keys.key).read_bytes()

    async def chunks() -> AsyncIterator[bytes]:
        yield data

    for b in station.boards:
        async for _ in b.install_firmware(chunks(), len(data)):
            pass
        await b.firmware_control(FirmwareAction.ACTIVATE)
    (tmp_path / "work").mkdir(exist_ok=True)
    (tmp_path / "work" / "firmware-pending.json").write_text('{"version": "2.0.0"}')
    await station.aggregator.resume_pending_firmware(station.record)
    assert station.statuses == ["Installed"]
    assert all(not b.state.tentative and b.firmware_version == "2.0.0" for b in station.boards)
    assert not (tmp_path / "work" / "firmware-pending.json").exists()
