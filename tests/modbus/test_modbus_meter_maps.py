"""Meter register maps as data: each shipped map against a pymodbus simulated meter on a pty,
the map chosen through `port.meter_model`, and a map that does not fit the meter is a
plausibility error, never a silent wrong reading."""

from __future__ import annotations

import copy
import re
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from chargeport.clock import ManualClock
from chargeport.config import PortConfig
from chargeport.errors import ChargeportError
from hal.base import HalError, PowerMeterReading
from hal.factory import open_board
from hal.modbus_meter import SDM630, ModbusMeter
from hal.register_map import (
    MAPS_DIR,
    RegisterMapError,
    known_maps,
    load_map,
    parse_map,
    plausibility_problem,
)

UNIT = 5
VOLTS = (231.5, 229.0, 230.2)
AMPS = (16.0, 15.5, 14.25)
TOTAL_W = 10427.0
HZ = 49.95
ENERGY_KWH = 1234.5


# ------------------------------------------------------------------ simulated meters


def float_regs(values: dict[int, float], start: int, count: int) -> list[int]:
    """Registers start..start+count-1 with float32 values (high word first) at their address."""
    regs = [0] * count
    for address, value in values.items():
        if start <= address < start + count:
            hi, lo = struct.unpack(">HH", struct.pack(">f", value))
            regs[address - start], regs[address - start + 1] = hi, lo
    return regs


EASTRON = {
    0x0000: VOLTS[0],
    0x0002: VOLTS[1],
    0x0004: VOLTS[2],
    0x0006: AMPS[0],
    0x0008: AMPS[1],
    0x000A: AMPS[2],
    0x0034: TOTAL_W,
    0x0046: HZ,
    0x0048: ENERGY_KWH,
}


def sdm630_device() -> SimDevice:
    """0x0000-0x004F: the map's span plus export energy and beyond, as a real SDM630 has."""
    regs = float_regs(EASTRON, 0, 0x50)
    return SimDevice(UNIT, simdata=[SimData(0, values=regs, datatype=DataType.REGISTERS)])


def sdm72_device() -> SimDevice:
    """Only the registers an SDM72D-M has around these quantities: 0x00-0x11 and 0x34-0x49
    (a single 0x00-0x49 read, as the SDM630 map does, gets an exception reply)."""
    low = float_regs(EASTRON, 0x00, 0x12)
    high = float_regs(EASTRON, 0x34, 0x16)
    return SimDevice(
        UNIT,
        simdata=[
            SimData(0x00, values=low, datatype=DataType.REGISTERS),
            SimData(0x34, values=high, datatype=DataType.REGISTERS),
        ],
    )


def abb_words(value: int, words: int) -> list[int]:
    return [(value >> (16 * (words - 1 - i))) & 0xFFFF for i in range(words)]


def abb_b23_device(l3_volts_raw: int | None = None) -> SimDevice:
    """ABB B23 holding registers: integers with fixed resolutions (2CMC485003M0201)."""
    energy = abb_words(round(ENERGY_KWH * 100), 4)  # 0.01 kWh
    inst = [0] * 0x2D  # 0x5B00..0x5B2C
    for k in range(3):
        inst[2 * k : 2 * k + 2] = abb_words(round(VOLTS[k] * 10), 2)  # 0.1 V
        inst[0x0C + 2 * k : 0x0C + 2 * k + 2] = abb_words(round(AMPS[k] * 100), 2)  # 0.01 A
    if l3_volts_raw is not None:
        inst[4:6] = abb_words(l3_volts_raw, 2)
    inst[0x14:0x16] = abb_words(round(TOTAL_W * 100), 2)  # 0.01 W, signed
    inst[0x2C] = round(HZ * 100)  # 0.01 Hz
    return SimDevice(
        UNIT,
        simdata=[
            SimData(0x5000, values=energy, datatype=DataType.REGISTERS),
            SimData(0x5B00, values=inst, datatype=DataType.REGISTERS),
        ],
    )


Serve = Callable[[SimDevice], Awaitable[None]]

DEVICES: dict[str, Callable[[], SimDevice]] = {
    "sdm630": sdm630_device,
    "sdm72": sdm72_device,
    "abb_b23": abb_b23_device,
}


@pytest.fixture
async def serve(pty_pair: tuple[str, str]) -> AsyncIterator[Serve]:
    """Start a simulated meter on the pty's meter side; the host side is `pty_pair[1]`."""
    servers: list[ModbusSerialServer] = []

    async def start(device: SimDevice) -> None:
        srv = ModbusSerialServer(device, port=pty_pair[0], baudrate=19200)
        await srv.serve_forever(background=True)
        servers.append(srv)

    yield start
    for srv in servers:
        await srv.shutdown()  # type: ignore[no-untyped-call]


async def read_once(device: str, model: str, phases: int = 3) -> PowerMeterReading:
    meter = ModbusMeter(
        device, UNIT, register_map=load_map(model), phases=phases, baudrate=19200, timeout_s=0.5
    )
    await meter.async_open()
    try:
        return await meter.read()
    finally:
        await meter.async_close()


def assert_reading(reading: PowerMeterReading) -> None:
    assert reading.voltage_v == pytest.approx(VOLTS, abs=1e-3)
    assert reading.current_a == pytest.approx(AMPS, abs=1e-3)
    assert reading.power_w == pytest.approx(TOTAL_W, abs=1e-2)
    assert reading.frequency_hz == pytest.approx(HZ, abs=1e-4)
    assert reading.energy_wh == pytest.approx(ENERGY_KWH * 1000.0, rel=1e-6)


# ------------------------------------------------------------------ integration


@pytest.mark.integration
@pytest.mark.parametrize("model", sorted(DEVICES))
async def test_each_shipped_map_reads_its_meter(
    model: str, serve: Serve, pty_pair: tuple[str, str]
) -> None:
    await serve(DEVICES[model]())
    assert_reading(await read_once(pty_pair[1], model))


@pytest.mark.integration
async def test_meter_model_in_the_config_chooses_the_map(
    serve: Serve, pty_pair: tuple[str, str]
) -> None:
    await serve(abb_b23_device())
    config = PortConfig(
        meter="modbus", meter_device=pty_pair[1], meter_unit=UNIT, meter_model="abb_b23"
    )
    async with open_board(config, ManualClock()) as (board, _):
        assert board.power_meter is not None
        assert isinstance(board.power_meter, ModbusMeter)
        assert board.power_meter.register_map.name == "abb_b23"


async def test_unknown_meter_model_is_one_line_naming_the_shipped_maps(
    pty_pair: tuple[str, str],
) -> None:
    config = PortConfig(meter="modbus", meter_device=pty_pair[1], meter_model="sdm999")
    with pytest.raises(ChargeportError, match=r"port.meter_model 'sdm999'.*abb_b23, sdm630, sdm72"):
        async with open_board(config, ManualClock()):
            pass


@pytest.mark.integration
async def test_off_by_one_map_is_a_plausibility_error(
    serve: Serve, pty_pair: tuple[str, str], tmp_path: Path
) -> None:
    """The classic mistake: 1-based register numbers (30001 -> 1). Every float is read across
    two values' halves; the reading is refused instead of reported."""
    await serve(sdm630_device())
    bad = tmp_path / "one-based.toml"
    bad.write_text(_increment_addresses(load_map_text("sdm630")))
    with pytest.raises(HalError) as info:
        await read_once(pty_pair[1], str(bad))
    message = str(info.value)
    assert "outside 180-270 V" in message or "not a finite number" in message
    assert "register map 'one-based' (port.meter_model) does not fit this meter" in message


@pytest.mark.integration
async def test_float_map_on_an_integer_meter_is_refused(
    serve: Serve, pty_pair: tuple[str, str]
) -> None:
    """An ABB meter read with the SDM630 map: the meter answers with an exception (no input
    registers at 0x0000), and the error names the map to check."""
    await serve(abb_b23_device())
    with pytest.raises(HalError, match=r"map 'sdm630': is port.meter_model right\?"):
        await read_once(pty_pair[1], "sdm630")


@pytest.mark.integration
async def test_sdm630_map_on_an_sdm72_exceeds_its_register_blocks(
    serve: Serve, pty_pair: tuple[str, str]
) -> None:
    await serve(sdm72_device())
    with pytest.raises(HalError, match="error reply"):
        await read_once(pty_pair[1], "sdm630")


@pytest.mark.integration
async def test_not_available_phase_is_refused_on_three_phases_and_zero_on_one(
    serve: Serve, pty_pair: tuple[str, str]
) -> None:
    """ABB marks a missing quantity with all ones: an error where the phase is needed."""
    await serve(abb_b23_device(l3_volts_raw=0xFFFF_FFFF))
    with pytest.raises(HalError, match="voltage_l3 as not available"):
        await read_once(pty_pair[1], "abb_b23", phases=3)
    reading = await read_once(pty_pair[1], "abb_b23", phases=1)
    assert reading.voltage_v[2] == 0.0 and reading.voltage_v[0] == pytest.approx(VOLTS[0])


# ------------------------------------------------------------------ the pure core


def load_map_text(name: str) -> str:
    return (MAPS_DIR / f"{name}.toml").read_text()


def _increment_addresses(text: str) -> str:
    """Every field address + 1 (the block is widened to keep them inside it)."""
    text = text.replace("[[0x0000, 0x004A]]", "[[0x0000, 0x004C]]")
    return re.sub(r"address = 0x([0-9A-F]{4})", lambda m: f"address = {int(m[1], 16) + 1}", text)


def test_shipped_maps_are_the_three_documented_ones() -> None:
    assert known_maps() == ["abb_b23", "sdm630", "sdm72"]
    sdm = load_map("sdm630")
    assert sdm.fields["voltage_l1"].address == SDM630.VOLTAGE_L1
    assert sdm.fields["energy_import"].address == SDM630.IMPORT_ENERGY
    assert sdm.blocks == ((0, SDM630.SPAN),)
    # SDM72D-M: at most 30 parameters (60 registers) per request.
    assert all(n <= 60 for _, n in load_map("sdm72").blocks)


GOOD: dict[str, Any] = {
    "function": "input",
    "blocks": [[0, 20]],
    "fields": {
        name: {"address": 2 * i, "type": "f32"}
        for i, name in enumerate(
            [
                "voltage_l1",
                "voltage_l2",
                "voltage_l3",
                "current_l1",
                "current_l2",
                "current_l3",
                "power",
                "frequency",
                "energy_import",
            ]
        )
    },
}


def with_change(path: list[str], value: object) -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(GOOD)
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        (["function"], "coils", "function: expected 'input' or 'holding'"),
        (["blocks"], [[0, 200]], r"blocks\[0\]: expected \[first address, 1..125 registers\]"),
        (["blocks"], [], "blocks: at least one"),
        (["fields", "frequency"], None, "fields.frequency: missing"),
        (["fields", "power"], {"address": 40, "type": "f32"}, "0x0028 is not inside any block"),
        (["fields", "power"], {"address": 2, "type": "f16"}, "fields.power: expected"),
        (["fields", "reactive"], {"address": 2, "type": "f32"}, "fields.reactive: unknown field"),
        (["units"], "SI", "unknown key 'units'"),
    ],
)
def test_map_file_errors_are_one_line_naming_the_key(
    path: list[str], value: object, error: str
) -> None:
    with pytest.raises(RegisterMapError, match=error):
        parse_map(with_change(path, value), name="x", source="x.toml")


def reading(volts: float = 230.0, hz: float = 50.0, wh: float = 0.0) -> PowerMeterReading:
    return PowerMeterReading(wh, 0.0, (volts, volts, volts), (0.0, 0.0, 0.0), hz)


@pytest.mark.parametrize(
    ("value", "phases", "problem"),
    [
        (reading(), 3, None),
        (reading(volts=179.9), 3, "L1 voltage 179.9 V is outside 180-270 V"),
        (reading(volts=270.1), 1, "L1 voltage 270.1 V is outside 180-270 V"),
        (
            PowerMeterReading(0.0, 0.0, (230.0, 0.0, 0.0), (0.0, 0.0, 0.0), 50.0),
            1,
            None,
        ),
        (
            PowerMeterReading(0.0, 0.0, (230.0, 0.0, 0.0), (0.0, 0.0, 0.0), 50.0),
            3,
            "L2 voltage 0 V is outside 180-270 V",
        ),
        (reading(hz=0.0), 3, "frequency 0 Hz is outside 45-65 Hz"),
        (reading(wh=-1.0), 3, "energy register -1 Wh is negative"),
        (reading(volts=float("nan")), 3, "a value is not a finite number"),
    ],
)
def test_plausibility_of_a_reading(
    value: PowerMeterReading, phases: int, problem: str | None
) -> None:
    """Mains 230 V -15 %/+17 % (IEC 60038 tolerance, rounded to 180-270 V), 45-65 Hz."""
    assert plausibility_problem(value, phases) == problem
