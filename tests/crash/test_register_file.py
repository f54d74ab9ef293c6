"""The local board's energy register survives its process (issue 12): a sampled meter's
register is written whenever it grew by 1 Wh (meterStop's resolution) and read back at start,
so a board restarted after kill -9 reads on from where it stopped, as a hardware meter would."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from chargeport.clock import ManualClock
from chargeport.config import PortConfig
from evse.runtime import EvseRuntime, RegisterFile, RuntimeTiming
from hal.sim import SimBoard

RATE = 2_000


def runtime(clock: ManualClock, sim: SimBoard, register: Path) -> EvseRuntime:
    ids = itertools.count(1)
    return EvseRuntime(
        sim.board,
        PortConfig(sample_rate_hz=RATE),
        connector_id=1,
        serial="SIM-1",
        firmware_version="1.0.0",
        clock=clock,
        id_factory=lambda: f"tx{next(ids)}",
        timing=RuntimeTiming(debounce_s=0.05, housekeeping_s=0.05, over_current_allowed_s=2.0),
        register_file=register,
    )


async def run(clock: ManualClock, seconds: float) -> None:
    for _ in range(round(seconds / 0.05)):
        clock.advance(0.05)
        for _ in range(8):
            await asyncio.sleep(0)


async def test_register_is_on_disk_at_every_block_and_read_back_at_start(tmp_path: Path) -> None:
    register = tmp_path / "meter-register.json"
    clock = ManualClock()
    sim = SimBoard(clock=clock, sample_rate_hz=RATE, block_s=0.1)
    rt = runtime(clock, sim, register)
    await rt.start()
    try:
        sim.ev.plug_in()
        await run(clock, 0.5)
        await rt.port.authorize("TAG")
        sim.ev.draw(16.0, 3)
        await run(clock, 4.0)
        # No stop: what a kill -9 would leave is already on disk, less than 1 Wh behind.
        on_disk = RegisterFile(register).load()
        assert on_disk > 5.0  # about 11 kW for a few seconds
        status = await rt.port.status()
        assert status.meter is not None
        # Published once per meter_interval_s (about 3 Wh at 11 kW); saved every 1 Wh.
        assert -1.0 <= on_disk - status.meter.energy_wh < 11_500 / 3600 * 1.1
    finally:
        await rt.stop()
        sim.close()
    at_stop = RegisterFile(register).load()

    clock2 = ManualClock()
    sim2 = SimBoard(clock=clock2, sample_rate_hz=RATE, block_s=0.1)
    restarted = runtime(clock2, sim2, register)
    await restarted.start()
    try:
        status = await restarted.port.status()
        assert status.meter is not None and status.meter.energy_wh == at_stop
        await run(clock2, 1.0)  # no EV: the register holds, it never restarts from 0
        assert RegisterFile(register).load() >= at_stop - 0.01
    finally:
        await restarted.stop()
        sim2.close()


def test_register_is_saved_each_time_it_moved_a_step(tmp_path: Path) -> None:
    path = tmp_path / "meter-register.json"
    reg = RegisterFile(path, step_wh=1.0)
    reg.advance(10.0)  # the first reading is always saved
    assert RegisterFile(path).load() == 10.0
    reg.advance(10.9)
    assert RegisterFile(path).load() == 10.0
    reg.advance(11.0)
    assert RegisterFile(path).load() == 11.0


def test_an_unreadable_register_is_zero_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "meter-register.json"
    assert RegisterFile(path).load() == 0.0
    path.write_text("{not json")
    assert RegisterFile(path).load() == 0.0
    RegisterFile(path).save(1234.5, durable=True)
    assert RegisterFile(path).load() == 1234.5
