"""Modbus meter register maps as data: which registers to read and how to turn them into a
`PowerMeterReading`. Pure: registers in, reading (or a one-line error) out.

A map is a TOML file: the shipped ones live in `hal/meter_maps/` (`sdm630`, `sdm72`,
`abb_b23`) and `port.meter_model` names one of them or the path of a map of your own. Values
are big-endian 16-bit registers, high word first; `scale` turns a raw value into V, A, W, Hz
or Wh. A reading is checked for plausibility (mains voltage 180-270 V, 45-65 Hz, finite,
energy not negative), so a map that does not fit the meter is an error, not silent nonsense.
"""

from __future__ import annotations

import math
import struct
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hal.base import HalError, PowerMeterReading

__all__ = [
    "FIELDS",
    "MAPS_DIR",
    "Field",
    "RegisterMap",
    "RegisterMapError",
    "known_maps",
    "load_map",
    "parse_map",
    "plausibility_problem",
]

MAPS_DIR = Path(__file__).resolve().parent / "meter_maps"
FIELDS = (
    "voltage_l1",
    "voltage_l2",
    "voltage_l3",
    "current_l1",
    "current_l2",
    "current_l3",
    "power",
    "frequency",
    "energy_import",
)
# type -> (registers, struct format of the big-endian bytes, "not available" raw value)
_TYPES: dict[str, tuple[int, str, int | None]] = {
    "u16": (1, ">H", 0xFFFF),
    "s16": (1, ">h", 0x7FFF),
    "u32": (2, ">I", 0xFFFF_FFFF),
    "s32": (2, ">i", 0x7FFF_FFFF),
    "u64": (4, ">Q", 0xFFFF_FFFF_FFFF_FFFF),
    "s64": (4, ">q", 0x7FFF_FFFF_FFFF_FFFF),
    "f32": (2, ">f", None),  # NaN is "not available"
}
VOLTAGE_RANGE = (180.0, 270.0)  # V, line to neutral: IEC 60038 230 V -15 %/+17 %
FREQUENCY_RANGE = (45.0, 65.0)  # Hz
MAX_REQUEST = 125  # registers per Modbus read request (Modbus application protocol 6.3/6.4)


class RegisterMapError(HalError):
    """A register map file is unusable, or a reading does not fit the map."""


@dataclass(frozen=True)
class Field:
    address: int
    type: str
    scale: float = 1.0

    @property
    def size(self) -> int:
        return _TYPES[self.type][0]

    def decode(self, registers: Mapping[int, int]) -> float | None:
        """The scaled value, or None when the meter marks it "not available"."""
        raw = b"".join(registers[self.address + i].to_bytes(2, "big") for i in range(self.size))
        _, fmt, missing = _TYPES[self.type]
        value = struct.unpack(fmt, raw)[0]
        if (missing is not None and value == missing) or (
            isinstance(value, float) and math.isnan(value)
        ):
            return None
        return float(value) * self.scale


@dataclass(frozen=True)
class RegisterMap:
    name: str
    description: str
    function: Literal["input", "holding"]
    blocks: tuple[tuple[int, int], ...]  # (first address, count): one read request each
    fields: Mapping[str, Field]

    def decode(self, registers: Mapping[int, int], phases: int = 3) -> PowerMeterReading:
        """Registers (address -> value) to a reading; unused phases' gaps read as 0."""
        values = {name: f.decode(registers) for name, f in self.fields.items()}
        needed = {"power", "frequency", "energy_import"}
        needed |= {f"voltage_l{k}" for k in range(1, phases + 1)}
        needed |= {f"current_l{k}" for k in range(1, phases + 1)}
        for name in FIELDS:
            if values[name] is None and name in needed:
                raise RegisterMapError(f"the meter reports {name} as not available")

        def get(name: str) -> float:
            return values[name] or 0.0

        return PowerMeterReading(
            energy_wh=get("energy_import"),
            power_w=get("power"),
            voltage_v=(get("voltage_l1"), get("voltage_l2"), get("voltage_l3")),
            current_a=(get("current_l1"), get("current_l2"), get("current_l3")),
            frequency_hz=get("frequency"),
        )


def plausibility_problem(reading: PowerMeterReading, phases: int = 3) -> str | None:
    """What makes `reading` impossible for a mains meter, or None when it is plausible."""
    numbers = [reading.energy_wh, reading.power_w, reading.frequency_hz]
    numbers += [*reading.voltage_v, *reading.current_a]
    if not all(math.isfinite(x) for x in numbers):
        return "a value is not a finite number"
    low, high = VOLTAGE_RANGE
    for k in range(phases):
        volts = reading.voltage_v[k]
        if not low <= volts <= high:
            return f"L{k + 1} voltage {volts:.4g} V is outside {low:g}-{high:g} V"
    if not FREQUENCY_RANGE[0] <= reading.frequency_hz <= FREQUENCY_RANGE[1]:
        return (
            f"frequency {reading.frequency_hz:.4g} Hz is outside "
            f"{FREQUENCY_RANGE[0]:g}-{FREQUENCY_RANGE[1]:g} Hz"
        )
    if reading.energy_wh < 0:
        return f"energy register {reading.energy_wh:.4g} Wh is negative"
    return None


def known_maps() -> list[str]:
    """Names of the shipped maps."""
    return sorted(p.stem for p in MAPS_DIR.glob("*.toml"))


def load_map(model: str) -> RegisterMap:
    """A shipped map by name (`sdm630`), or a map file by path (`/etc/chargeport/my.toml`)."""
    path = Path(model) if ("/" in model or model.endswith(".toml")) else MAPS_DIR / f"{model}.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegisterMapError(
            f"port.meter_model {model!r}: no such meter map (shipped: "
            f"{', '.join(known_maps())}; or give the path of a .toml map)"
        ) from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RegisterMapError(f"meter map {str(path)!r}: {exc}") from None
    return parse_map(data, name=path.stem, source=str(path))


def parse_map(data: dict[str, Any], *, name: str, source: str) -> RegisterMap:
    """Validate a map's TOML data; every problem is one line naming the file and the key."""

    def fail(what: str) -> RegisterMapError:
        return RegisterMapError(f"meter map {source!r}: {what}")

    unknown = set(data) - {"description", "function", "blocks", "fields"}
    if unknown:
        raise fail(f"unknown key {sorted(unknown)[0]!r}")
    function = data.get("function")
    if function not in ("input", "holding"):
        raise fail(f"function: expected 'input' or 'holding', got {function!r}")
    blocks: list[tuple[int, int]] = []
    for i, block in enumerate(data.get("blocks", [])):
        if (
            not isinstance(block, list)
            or len(block) != 2
            or not all(type(x) is int for x in block)
            or block[0] < 0
            or not 1 <= block[1] <= MAX_REQUEST
        ):
            raise fail(f"blocks[{i}]: expected [first address, 1..{MAX_REQUEST} registers]")
        blocks.append((block[0], block[1]))
    if not blocks:
        raise fail("blocks: at least one [first address, count] is needed")
    table = data.get("fields")
    if not isinstance(table, dict):
        raise fail("fields: missing table")
    fields: dict[str, Field] = {}
    for key in FIELDS:
        spec = table.get(key)
        if not isinstance(spec, dict):
            raise fail(f"fields.{key}: missing (needed: {', '.join(FIELDS)})")
        address, kind, scale = spec.get("address"), spec.get("type"), spec.get("scale", 1.0)
        if type(address) is not int or kind not in _TYPES or type(scale) not in (int, float):
            raise fail(
                f"fields.{key}: expected {{ address = int, type = one of "
                f"{'/'.join(_TYPES)}, scale = number }}"
            )
        field = Field(address, kind, float(scale))
        if not any(s <= address and address + field.size <= s + n for s, n in blocks):
            raise fail(f"fields.{key}: address {address:#06x} is not inside any block")
        fields[key] = field
    extra = set(table) - set(FIELDS)
    if extra:
        raise fail(f"fields.{sorted(extra)[0]}: unknown field (known: {', '.join(FIELDS)})")
    description = str(data.get("description", name))
    return RegisterMap(name, description, function, tuple(blocks), fields)
