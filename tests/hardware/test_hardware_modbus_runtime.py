"""Integration: the EVSE runtime metering through an external Modbus RTU meter (SDM630 map),
built by `hal.factory.open_board(meter="modbus")` against a pymodbus simulated meter on a
socat pty pair."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hwkit import HwRig, eventually, open_rig
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from chargeport.config import PortConfig
from chargeport.port import ErrorCode, SessionState
from chargeport.port import SessionEventType as T
from hal.modbus_meter import SDM630

pytestmark = pytest.mark.integration

UNIT = 3
VOLTS = (231.5, 229.0, 230.2)
AMPS = (16.0, 15.5, 14.25)
TOTAL_W = 10427.0
ENERGY_KWH = 1234.5


def registers(energy_kwh: float) -> list[float]:
    """SDM630 input registers 0x0000..0x0049 as float32 values (index = address / 2)."""
    values = [0.0] * (SDM630.SPAN // 2)
    for k in range(3):
        values[SDM630.VOLTAGE_L1 // 2 + k] = VOLTS[k]
        values[SDM630.CURRENT_L1 // 2 + k] = AMPS[k]
    values[SDM630.TOTAL_POWER // 2] = TOTAL_W
    values[SDM630.FREQUENCY // 2] = 49.95
    values[SDM630.IMPORT_ENERGY // 2] = energy_kwh
    return values


class MeterServer:
    """The simulated meter on the meter side of the pty pair; stop it to make it go silent."""

    def __init__(self, device: str) -> None:
        self.device = device
        self._server: ModbusSerialServer | None = None

    async def start(self, energy_kwh: float = ENERGY_KWH) -> None:
        sim = SimDevice(
            UNIT, simdata=[SimData(0, values=registers(energy_kwh), datatype=DataType.FLOAT32)]
        )
        self._server = ModbusSerialServer(sim, port=self.device, baudrate=9600)
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None


@pytest.fixture
async def meter(pty_pair: tuple[str, str]) -> AsyncIterator[MeterServer]:
    server = MeterServer(pty_pair[0])
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def rig(pty_pair: tuple[str, str], meter: MeterServer) -> AsyncIterator[HwRig]:
    config = PortConfig(
        hal="sim",
        meter="modbus",
        meter_device=pty_pair[1],
        meter_unit=UNIT,
        sample_rate_hz=2_000,
        meter_interval_s=0.1,
        free_vend=True,
    )
    async with open_rig(config) as r:
        yield r


async def test_meter_values_carry_the_modbus_meters_readings(rig: HwRig) -> None:
    """Energy (kWh register -> Wh), total power, per-phase voltages and currents, frequency."""
    await eventually(lambda: len(rig.meters()) >= 2)
    assert not rig.errors()
    m = rig.meters()[-1]
    assert m.energy_wh == pytest.approx(ENERGY_KWH * 1000.0, rel=1e-6)
    assert m.power_w == pytest.approx(TOTAL_W)
    assert m.voltage_v == pytest.approx(VOLTS, abs=1e-3)
    assert m.current_a == pytest.approx(AMPS, abs=1e-3)
    assert m.frequency_hz == pytest.approx(49.95, abs=1e-4)


async def test_transaction_meter_start_is_the_external_meters_register(rig: HwRig) -> None:
    """OCPP 1.6 4.8 meterStart: the energy register of the meter that bills the session."""
    assert rig.sim is not None
    await eventually(lambda: len(rig.meters()) >= 1)
    rig.sim.ev.plug_in()  # free vend: the session starts a transaction at once
    await rig.until_session(T.TRANSACTION_STARTED)
    transaction = rig.sessions(T.TRANSACTION_STARTED)[0].transaction
    assert transaction is not None
    assert transaction.meter_wh == pytest.approx(ENERGY_KWH * 1000.0)


async def test_silent_meter_is_power_meter_failure_and_runtime_keeps_running(
    meter: MeterServer, rig: HwRig
) -> None:
    """A meter that stops answering raises PowerMeterFailure (OCPP 1.6 ChargePointErrorCode);
    the port keeps answering commands and the fault clears when the meter answers again."""
    await eventually(lambda: len(rig.meters()) >= 1)
    await meter.stop()
    await eventually(lambda: bool(rig.errors(ErrorCode.POWER_METER_FAILURE)))
    error = rig.errors(ErrorCode.POWER_METER_FAILURE)[0]
    assert error.active and f"unit {UNIT}" in error.message
    status = await rig.rt.port.status()
    assert status.session_state is SessionState.FAULTED
    await rig.rt.port.set_limit(10.0, 3)  # commands still work while the meter is silent
    limits = (await rig.rt.port.status()).limits
    assert limits is not None and limits.max_current_a == 10.0
    count = len(rig.meters())
    await meter.start(energy_kwh=ENERGY_KWH + 1.0)
    await eventually(lambda: len(rig.errors(ErrorCode.POWER_METER_FAILURE)) == 2)
    await eventually(lambda: len(rig.meters()) > count)
    assert not rig.errors(ErrorCode.POWER_METER_FAILURE)[1].active
    assert rig.meters()[-1].energy_wh == pytest.approx((ENERGY_KWH + 1.0) * 1000.0)
    assert not (await rig.rt.port.status()).errors
