"""Integration: the MCU-linked board talks to the simulated MCU over a real pty pair."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from waiting import until

from hal.base import HalError
from hal.mculink.board import McuBoard, open_mcu_board
from hal.mculink.codec import LinkError
from hal.mculink.sim_mcu import FAULT_WELDED, SimMcu

pytestmark = pytest.mark.integration

KEY = bytes(range(1, 33))


@pytest.fixture
async def sim() -> AsyncIterator[SimMcu]:
    mcu = SimMcu.create(KEY, status_interval_s=0.05)
    await mcu.async_start()
    yield mcu
    await mcu.async_stop()


@pytest.fixture
async def board(sim: SimMcu) -> AsyncIterator[McuBoard]:
    b = McuBoard(sim.device, KEY, ping_interval_s=0.05, link_timeout_s=0.5, block_s=0.02)
    await b.async_open()
    yield b
    await b.async_close()


async def test_cp_duty_and_level_round_trip(sim: SimMcu, board: McuBoard) -> None:
    """IEC 61851-1 A.2: the EVSE sets the PWM, the EV's state shows as the plateau voltage."""
    hal = board.board()
    levels = hal.cp.levels()
    assert await anext(levels) == 12.0  # state A, reported right after the handshake
    sim.set_ev_state("B")
    assert await anext(levels) == 9.0
    await hal.cp.set_duty(26.7)  # 16 A
    assert sim.duty == pytest.approx(26.7, abs=1e-4)
    sim.set_ev_state("C")
    assert await anext(levels) == 6.0
    await hal.cp.set_duty(0.0)  # state F
    assert await anext(levels) == -12.0
    await levels.aclose()  # type: ignore[attr-defined]  # an async generator underneath


async def test_contactor_lock_and_welded_feedback(sim: SimMcu, board: McuBoard) -> None:
    hal = board.board()
    await hal.contactor.switch(True)
    assert sim.contactor_closed and await hal.contactor.feedback()
    await hal.lock.lock(True)
    assert sim.locked and board.locked
    sim.set_fault_welded(True)
    await hal.contactor.switch(False)
    assert await hal.contactor.feedback()  # the mirror contact says: still closed
    await until(lambda: FAULT_WELDED in board.faults)


async def test_temperature_rcd_and_sampler_currents(sim: SimMcu, board: McuBoard) -> None:
    hal = board.board()
    sim.temperature_c = 67.5
    sim.currents = (16.0, 16.0, 16.0)
    await hal.contactor.switch(True)
    await until(lambda: board.temperature_c == 67.5 and board.currents_a[0] == 16.0)
    assert await hal.temperature.read_c() == 67.5
    block = await anext(hal.sampler.blocks())
    rms = float((block.current[0] ** 2).mean() ** 0.5)
    assert rms == pytest.approx(16.0, rel=0.05)
    sim.trip_rcd()
    await until(lambda: board.rcd_tripped)
    assert await hal.rcd.tripped()
    with pytest.raises(LinkError):  # the MCU refuses to close onto a tripped RCD
        await hal.contactor.switch(True)
    await hal.rcd.reset()
    assert not await hal.rcd.tripped()


async def test_garbage_mid_run_in_both_directions_is_survived(sim: SimMcu, board: McuBoard) -> None:
    hal = board.board()
    await hal.cp.set_duty(10.0)
    garbage = bytes(range(256)) * 3 + os.urandom(500) + b"\x00\x01\x02"
    sim.inject_raw(garbage)  # MCU -> host
    fd = os.open(sim.device, os.O_WRONLY | os.O_NOCTTY)  # a second writer on the host's side
    try:
        os.write(fd, garbage)  # host -> MCU
    finally:
        os.close(fd)
    await hal.cp.set_duty(53.3)
    await hal.contactor.switch(True)
    assert sim.duty == pytest.approx(53.3, abs=1e-4) and await hal.contactor.feedback()
    await until(lambda: board.stats.dropped > 0 and sim.stats.dropped > 0)
    assert board.transport.connected


async def test_host_rehandshakes_after_mcu_goes_silent(sim: SimMcu) -> None:
    """A restarted MCU (new codec, no session) is found again by the keepalive."""
    b = McuBoard(sim.device, KEY, ping_interval_s=0.05, link_timeout_s=0.3)
    await b.async_open()
    try:
        sim.restart()
        await until(lambda: sim.stats.handshakes == 1 and b.transport.connected)
        await b.board().contactor.switch(True)
        assert sim.contactor_closed
    finally:
        await b.async_close()


async def test_silent_device_and_bad_key_file_raise_hal_errors(tmp_path: Path) -> None:
    master, slave = os.openpty()
    try:
        silent = McuBoard(os.ttyname(slave), KEY, link_timeout_s=0.2)
        with pytest.raises(HalError, match="no handshake answer"):
            await silent.async_open()
    finally:
        os.close(master)
        os.close(slave)
    bad = tmp_path / "link.key"
    bad.write_text("abcd")
    with pytest.raises(HalError, match="expected 32"):
        async with open_mcu_board("/dev/null", str(bad)):
            pass
