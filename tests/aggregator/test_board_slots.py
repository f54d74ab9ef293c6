"""LocalBoardSystem: A/B slots (pure `SlotState` table first), logs by window, time, reset."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from agg_fixtures import OLD, TARGET, Keys, board, make_bundle

from chargeport.board import FirmwareAction, FirmwareRejected, FirmwareStage, ResetKind
from chargeport.clock import ManualClock
from satellite.board_system import LocalBoardSystem, SlotState


def test_slot_table_tentative_gets_one_boot() -> None:
    s = SlotState().install_started().install_done("2.0").activate()
    assert (s.active, s.tentative, s.version("1.0")) == ("B", True, "2.0")
    s = s.boot("b1")  # the boot into the new slot
    assert (s.active, s.boot_reason) == ("B", "FirmwareUpdate")
    s2 = s.boot("b2")  # rebooted before confirm: back to the old slot
    assert (s2.active, s2.tentative, s2.version("1.0")) == ("A", False, "1.0")
    s3 = s.confirm().boot("b3")
    assert (s3.active, s3.tentative, s3.boot_reason) == ("B", False, "PowerUp")


@pytest.mark.parametrize(
    ("state", "step"),
    [
        (SlotState(), lambda s: s.activate()),  # nothing staged
        (SlotState(), lambda s: s.confirm()),  # nothing tentative
        (SlotState(staged=True).activate(), lambda s: s.install_started()),
    ],
)
def test_slot_table_illegal_steps(state: SlotState, step: object) -> None:
    with pytest.raises(FirmwareRejected):
        step(state)  # type: ignore[operator]


async def _bytes(data: bytes, chunk: int = 4096) -> AsyncIterator[bytes]:
    for i in range(0, len(data), chunk):
        yield data[i : i + chunk]


async def test_install_activate_survives_process_restart(tmp_path: Path, keys: Keys) -> None:
    b = board(tmp_path, "SAT-1", "satellite", keys)
    data = make_bundle(tmp_path, keys.key, "2.0.0").read_bytes()
    stages = [p.stage async for p in b.install_firmware(_bytes(data), len(data))]
    assert stages[-1] is FirmwareStage.INSTALLED and b.firmware_version == OLD
    restarts: list[int] = []

    async def on_restart() -> None:
        restarts.append(1)

    b._on_restart = on_restart
    await b.firmware_control(FirmwareAction.ACTIVATE)
    assert restarts == [1]
    # The supervisor starts a new process: it boots the tentative slot once.
    b2 = board(tmp_path, "SAT-1", "satellite", keys)
    assert (b2.firmware_version, b2.state.tentative) == ("2.0.0", True)
    assert (tmp_path / "SAT-1/firmware/B/payload.bin").stat().st_size == 300_000
    # Not confirmed and restarted again: automatic rollback.
    b3 = board(tmp_path, "SAT-1", "satellite", keys)
    assert (b3.firmware_version, b3.state.active) == (OLD, "A")


async def test_refused_install_leaves_running_slot(tmp_path: Path, keys: Keys) -> None:
    b = board(tmp_path, "SAT-1", "satellite", keys)
    data = make_bundle(tmp_path, keys.key).read_bytes()
    with pytest.raises(FirmwareRejected) as err:
        async for _ in b.install_firmware(_bytes(data[:-1]), len(data)):
            pass
    assert err.value.stage is FirmwareStage.FAILED
    assert not (tmp_path / "SAT-1/firmware/B").exists()
    bad = make_bundle(tmp_path, keys.other_key, name="o").read_bytes()
    with pytest.raises(FirmwareRejected) as err:
        async for _ in b.install_firmware(_bytes(bad), len(bad)):
            pass
    assert err.value.stage is FirmwareStage.INVALID_SIGNATURE
    assert (b.firmware_version, b.state.staged) == (OLD, False)
    with pytest.raises(FirmwareRejected):
        await b.firmware_control(FirmwareAction.ACTIVATE)


async def test_logs_filtered_by_window(tmp_path: Path, keys: Keys) -> None:
    b = board(tmp_path, "SAT-1", "satellite", keys)
    handler = b.make_log_handler()
    logger = logging.getLogger("test.board.logs")
    try:
        for t, msg in [(100.0, "early"), (200.0, "inside\nsecond line"), (300.0, "late")]:
            record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, msg, (), None)
            record.created = t
            handler.emit(record)
    finally:
        handler.close()
    chunks = [c async for c in b.fetch_logs(150.0, 250.0)]
    text = b"".join(c.data for c in chunks).decode()
    assert "inside" in text and "second line" in text
    assert "early" not in text and "late" not in text
    assert chunks[-1].last and chunks[-1].name == "board.log"
    everything = b"".join([c.data async for c in b.fetch_logs(None, None)]).decode()
    assert everything.count("\n") == 4


async def test_set_time_offset_and_reset_boot_reason(tmp_path: Path, keys: Keys) -> None:
    clock = ManualClock(1_760_000_000.0)
    b = LocalBoardSystem("S", "satellite", tmp_path, [keys.pub], TARGET, clock=clock)
    assert await b.set_time(1_760_000_010.0) == pytest.approx(-10.0)
    assert (await b.info()).time == pytest.approx(1_760_000_010.0)
    assert await b.set_time(1_760_000_010.0) == pytest.approx(0.0)
    boot = (await b.info()).boot_id
    await b.reset(ResetKind.SOFT)
    info = await b.info()
    assert info.boot_id != boot and info.boot_reason == "RemoteReset"
