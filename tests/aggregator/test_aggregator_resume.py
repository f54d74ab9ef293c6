"""Resuming a rollout after the main restarted into its new slot (OCPP 1.6 §5.19, §4.5): a board
that is not on the new version, or cannot be reached, sends every board back to its old slot and
the CSMS hears InstallationFailed exactly once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from agg_fixtures import OLD, TARGET, Keys, Station, make_bundle

from chargeport.board import FirmwareAction
from satellite.board_system import LocalBoardSystem
from system_aggregator.aggregator import PENDING_FILE, SystemAggregator

pytestmark = pytest.mark.integration

NEW = "2.0.0"


async def install(board: LocalBoardSystem, data: bytes) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield data

    async for _ in board.install_firmware(chunks(), len(data)):
        pass


async def mid_rollout(st: Station, tmp_path: Path, keys: Keys, lagging: LocalBoardSystem) -> None:
    """Every board installed NEW and restarted into it, except `lagging`, which came back on
    OLD (its tentative slot failed to boot twice and fell back); the pending file is there."""
    data = make_bundle(tmp_path, keys.key, NEW).read_bytes()
    for b in st.boards:
        await install(b, data)
        await b.firmware_control(FirmwareAction.ACTIVATE)
    # A tentative slot gets one boot to be confirmed; the second boot rolls it back.
    lagging._set_state(lagging.state.boot("second-boot"))
    assert lagging.firmware_version == OLD
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    (work / PENDING_FILE).write_text(f'{{"version": "{NEW}"}}')


def assert_all_old(st: Station, tmp_path: Path) -> None:
    for b in st.boards:
        assert b.firmware_version == OLD, b.serial
        assert b.state.active == "A" and not b.state.tentative and not b.state.staged, b.serial
    assert not (tmp_path / "work" / PENDING_FILE).exists()


@pytest.mark.parametrize("lagging", ["satellite", "local"])
async def test_board_back_on_wrong_version_rolls_everyone_back_once(
    station: Station, keys: Keys, tmp_path: Path, lagging: str
) -> None:
    board = station.satellites[1] if lagging == "satellite" else station.local
    await mid_rollout(station, tmp_path, keys, board)
    await station.aggregator.resume_pending_firmware(station.record)
    assert station.statuses == ["InstallationFailed"]
    assert_all_old(station, tmp_path)
    # The pending file is gone: a further restart reports nothing more (no flood).
    await station.aggregator.resume_pending_firmware(station.record)
    assert station.statuses == ["InstallationFailed"]


async def test_unreachable_satellite_after_restart_rolls_everyone_back(
    station: Station, keys: Keys, tmp_path: Path
) -> None:
    data = make_bundle(tmp_path, keys.key, NEW).read_bytes()
    for b in station.boards:
        await install(b, data)
        await b.firmware_control(FirmwareAction.ACTIVATE)
    (tmp_path / "work" / PENDING_FILE).parent.mkdir(exist_ok=True)
    (tmp_path / "work" / PENDING_FILE).write_text(f'{{"version": "{NEW}"}}')
    await station.servers[0].stop(None)  # SAT-1 never comes back
    agg = SystemAggregator(
        station.local, station.remotes, trusted_keys=[keys.pub], target=TARGET,
        work_dir=tmp_path / "work", restart_timeout_s=0.3, poll_s=0.01,
    )  # fmt: skip
    await agg.resume_pending_firmware(station.record)
    assert station.statuses == ["InstallationFailed"]
    # The boards that could be reached are back on the old slot; SAT-1 stays tentative and
    # rolls back by itself on its next boot (board_system.SlotState.boot).
    for b in [station.satellites[1], station.local]:
        assert b.firmware_version == OLD and not b.state.tentative, b.serial
    sat1 = station.satellites[0]
    assert sat1.state.tentative
    assert sat1.state.boot("next").version(OLD) == OLD
    assert not (tmp_path / "work" / PENDING_FILE).exists()
