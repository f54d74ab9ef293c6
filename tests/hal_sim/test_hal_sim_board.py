"""hal.sim: the simulated board's physics and fault injection (IEC 61851-1 table A.3 levels)."""

from __future__ import annotations

import asyncio
import itertools

import numpy as np
import pytest

from chargeport.clock import ManualClock
from hal.sim import SimBoard


def board(**kw: object) -> tuple[ManualClock, SimBoard]:
    clock = ManualClock()
    return clock, SimBoard(clock=clock, sample_rate_hz=2000, block_s=0.1, **kw)  # type: ignore[arg-type]


async def test_cp_level_follows_ev_and_duty_table_a3() -> None:
    _, sim = board()
    levels = sim.board.cp.levels()
    seen = [await anext(levels)]
    sim.ev.plug_in()
    sim.ev.draw(16, 3)
    await sim.board.cp.set_duty(0.0)  # state F
    await sim.board.cp.set_duty(100.0)
    sim.inject("cp_short")
    sim.inject("cp_short", False)
    sim.ev.pause()
    sim.ev.unplug()
    for _ in range(8):
        seen.append(await anext(levels))
    assert seen == [12.0, 9.0, 6.0, -12.0, 6.0, 0.0, 6.0, 9.0, 12.0]
    sim.close()
    with pytest.raises(StopAsyncIteration):
        await anext(levels)


async def test_wait_pwm_and_regulated_current() -> None:
    _, sim = board()
    sim.ev.plug_in()
    waiter = asyncio.create_task(sim.ev.wait_pwm())
    await asyncio.sleep(0)
    assert not waiter.done()
    await sim.board.cp.set_duty(100 / 6)  # 10 A offer (table A.8)
    await asyncio.wait_for(waiter, 1.0)
    sim.ev.draw(16, 1)
    assert sim.currents() == (0.0, 0.0, 0.0)  # contactor still open
    await sim.board.contactor.switch(True)
    assert sim.currents() == pytest.approx((10.0, 0.0, 0.0))  # regulated to the offer
    sim.ev.draw(16, 3, regulated=False)
    assert sim.currents() == pytest.approx((16.0, 16.0, 16.0))


async def test_contactor_faults_show_on_mirror() -> None:
    _, sim = board()
    c = sim.board.contactor
    sim.inject("stuck_open_contactor")
    await c.switch(True)
    assert await c.feedback() is False
    sim.inject("stuck_open_contactor", False)
    assert await c.feedback() is True  # the coil was still energised
    sim.inject("welded_contactor")
    await c.switch(False)
    assert await c.feedback() is True
    sim.inject("welded_contactor", False)
    assert await c.feedback() is False


async def test_rcd_latches_until_reset() -> None:
    _, sim = board()
    rcd = sim.board.rcd
    sim.inject("rcd_trip")
    await rcd.reset()
    assert await rcd.tripped()  # residual current still there
    sim.inject("rcd_trip", False)
    assert await rcd.tripped()  # latched
    await rcd.reset()
    assert not await rcd.tripped()


async def test_diode_fault_only_with_ev() -> None:
    _, sim = board()
    sim.inject("diode_fault")
    assert await sim.board.cp.diode_ok()
    sim.ev.plug_in()
    assert not await sim.board.cp.diode_ok()


def test_unknown_fault_rejected() -> None:
    _, sim = board()
    with pytest.raises(ValueError, match="unknown fault"):
        sim.inject("meteor")


async def test_sampler_blocks_gap_free_with_current() -> None:
    clock, sim = board()
    sim.ev.plug_in()
    sim.ev.draw(20, 3, regulated=False)
    await sim.board.contactor.switch(True)
    blocks = sim.board.sampler.blocks()
    got = []
    for _ in range(3):
        nxt = asyncio.ensure_future(anext(blocks))
        await asyncio.sleep(0)
        clock.advance(0.1)
        got.append(await nxt)
    await blocks.aclose()  # type: ignore[attr-defined]
    assert [b.voltage.shape for b in got] == [(3, 200)] * 3
    for a, b in itertools.pairwise(got):
        assert b.start_time == pytest.approx(a.start_time + 0.1)
    i_rms = np.sqrt(np.mean(np.concatenate([b.current for b in got], axis=1) ** 2, axis=1))
    v_rms = np.sqrt(np.mean(got[0].voltage ** 2, axis=1))
    assert i_rms == pytest.approx([20.0] * 3, rel=0.02)
    assert v_rms == pytest.approx([230.0] * 3, rel=0.01)


async def test_current_heats_connector_and_over_temperature() -> None:
    clock, sim = board(max_current_a=32.0)
    t0 = sim.temperature_c()
    sim.ev.plug_in()
    sim.ev.draw(32, 3, regulated=False)
    await sim.board.contactor.switch(True)
    clock.advance(3600)  # six time constants: close to the steady state
    hot = await sim.board.temperature.read_c()
    assert t0 == pytest.approx(25.0) and hot == pytest.approx(55.0, abs=0.5)
    sim.inject("over_temperature")
    assert await sim.board.temperature.read_c() > 71.0
