"""Integration: the EVSE runtime "on hardware" — `hal.factory.open_board(hal="serial")` over a
real pty to the simulated safety MCU, which speaks the encrypted COBS frame protocol."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hwkit import HwRig, eventually, open_rig

from chargeport.config import PortConfig
from chargeport.port import ErrorCode, SessionState
from chargeport.port import SessionEventType as T
from evse.pwm import duty_from_amps
from hal.mculink.board import McuBoard
from hal.mculink.messages import ResetRcd, SetContactor
from hal.mculink.sim_mcu import SimMcu

pytestmark = pytest.mark.integration

KEY = bytes(range(7, 39))
TAG = "04A1B2C3"
RATE = 2_000  # 40 samples per mains cycle: enough for metering, cheap on 2 cores


@pytest.fixture
async def mcu() -> AsyncIterator[SimMcu]:
    sim = SimMcu.create(KEY, status_interval_s=0.05)
    await sim.async_start()
    yield sim
    await sim.async_stop()


@pytest.fixture
async def rig(mcu: SimMcu, tmp_path: Path) -> AsyncIterator[HwRig]:
    key_file = tmp_path / "mcu-link.key"
    key_file.write_text(KEY.hex() + "\n")
    config = PortConfig(
        hal="serial",
        serial_device=mcu.device,
        link_key_file=str(key_file),
        sample_rate_hz=RATE,
        meter_interval_s=0.1,
    )
    async with open_rig(config) as r:
        yield r


def link_of(rig: HwRig) -> McuBoard:
    """The factory's MCU board (its seams are bound methods of one `McuBoard`)."""
    assert isinstance(rig.board.cp, McuBoard)
    return rig.board.cp


async def start_charging(rig: HwRig, mcu: SimMcu, amps: float = 16.0) -> None:
    """IEC 61851-1 A.3: A -> B (plug), authorize, PWM offered, B -> C (EV requests energy)."""
    mcu.set_ev_state("B")
    await rig.until_session(T.AUTH_REQUIRED)
    await rig.rt.port.authorize(TAG)
    await eventually(lambda: abs(mcu.duty - duty_from_amps(32.0)) < 1e-3 and mcu.locked)
    mcu.currents = (amps, amps, amps)
    mcu.set_ev_state("C")
    await rig.until_session(T.CHARGING_STARTED)
    await eventually(lambda: mcu.contactor_closed)


async def test_session_over_mcu_link_closes_contactor_and_meters_iec61851_a3(
    rig: HwRig, mcu: SimMcu
) -> None:
    """Plug, authorize, charge, pause, unplug: every output goes through the MCU link."""
    await start_charging(rig, mcu)
    assert any(isinstance(m, SetContactor) and m.closed for m in mcu.received)
    # Meter values come from the sampler fed by the MCU's current reports: 3 x 16 A at 230 V.
    await eventually(lambda: any(m.current_a and min(m.current_a) > 15.0 for m in rig.meters()))
    charging = [m for m in rig.meters() if m.current_a and min(m.current_a) > 15.0]
    assert charging[-1].current_a == pytest.approx((16.0, 16.0, 16.0), rel=0.05)
    assert charging[-1].voltage_v == pytest.approx((230.0, 230.0, 230.0), rel=0.05)
    assert charging[-1].power_w == pytest.approx(3 * 230 * 16 * 0.99, rel=0.05)
    mcu.set_ev_state("B")  # the EV pauses: the EVSE opens the contactor
    await rig.until_session(T.CHARGING_PAUSED_EV)
    await eventually(lambda: not mcu.contactor_closed)
    mcu.set_ev_state("A")
    await rig.until_session(T.SESSION_FINISHED)
    assert rig.session_types()[-2:] == [T.TRANSACTION_FINISHED, T.SESSION_FINISHED]
    assert not rig.errors()
    transaction = rig.sessions(T.TRANSACTION_FINISHED)[0].transaction
    assert transaction is not None and transaction.meter_wh > 0.0


async def test_garbage_on_the_line_mid_session_does_not_disturb_it(rig: HwRig, mcu: SimMcu) -> None:
    """Noise on the UART both ways is dropped; the session, contactor and metering go on."""
    await start_charging(rig, mcu)
    link = link_of(rig)
    handshakes, session_events = link.stats.handshakes, len(rig.session_types())
    garbage = bytes(range(256)) * 2 + os.urandom(400) + b"\x00\x00\x01\x02\x00"
    mcu.inject_raw(garbage)  # MCU -> host
    fd = os.open(mcu.device, os.O_WRONLY | os.O_NOCTTY)  # host -> MCU: a second writer
    try:
        os.write(fd, garbage)
    finally:
        os.close(fd)
    await eventually(lambda: link.stats.dropped > 0 and mcu.stats.dropped > 0)
    # Reports still flow MCU -> host: the EV draws more, the meter values follow.
    mcu.currents = (20.0, 20.0, 20.0)
    await eventually(lambda: any(min(m.current_a) > 19.0 for m in rig.meters()[-3:]))
    status = await rig.rt.port.status()
    assert status.session_state is SessionState.CHARGING and mcu.contactor_closed
    assert not rig.errors() and link.transport.connected
    assert link.stats.handshakes == handshakes  # resynchronised in-session, no new handshake
    assert T.CHARGING_STARTED not in rig.session_types()[session_events:]
    # Commands still round-trip after the noise: a new limit reaches the pilot.
    await rig.rt.port.set_limit(10.0, 3)
    await eventually(lambda: abs(mcu.duty - duty_from_amps(10.0)) < 1e-3)


async def test_welded_contactor_reported_by_mcu_is_power_switch_failure(
    rig: HwRig, mcu: SimMcu
) -> None:
    """IEC 61851-1 6.3.1.4: the mirror contact stays closed after an open command."""
    await start_charging(rig, mcu)
    mcu.set_fault_welded(True)
    mcu.set_ev_state("B")  # the EV stops; the EVSE commands the contactor open
    await eventually(lambda: bool(rig.errors(ErrorCode.POWER_SWITCH_FAILURE)))
    error = rig.errors(ErrorCode.POWER_SWITCH_FAILURE)[0]
    assert error.active and "welded" in error.message
    assert mcu.contactor_closed  # physically stuck, as the MCU says
    status = await rig.rt.port.status()
    assert [e.code for e in status.errors] == [ErrorCode.POWER_SWITCH_FAILURE]
    assert [e.code for e in rig.errors()] == [ErrorCode.POWER_SWITCH_FAILURE]


async def test_rcd_trip_reported_by_mcu_is_ground_failure_reset_on_unplug(
    rig: HwRig, mcu: SimMcu
) -> None:
    """IEC 61851-1 8.5: a trip opens the contactor at once; reset only with no EV connected."""
    await start_charging(rig, mcu)
    mcu.trip_rcd()
    await eventually(lambda: bool(rig.errors(ErrorCode.GROUND_FAILURE)))
    assert rig.errors(ErrorCode.GROUND_FAILURE)[0].active
    assert not mcu.contactor_closed and mcu.rcd_tripped
    assert not any(isinstance(m, ResetRcd) for m in mcu.received)  # the EV is still there
    status = await rig.rt.port.status()
    assert ErrorCode.GROUND_FAILURE in [e.code for e in status.errors]
    mcu.set_ev_state("A")
    await eventually(lambda: len(rig.errors(ErrorCode.GROUND_FAILURE)) == 2)
    assert not rig.errors(ErrorCode.GROUND_FAILURE)[1].active
    assert any(isinstance(m, ResetRcd) for m in mcu.received) and not mcu.rcd_tripped
    assert not mcu.contactor_closed
