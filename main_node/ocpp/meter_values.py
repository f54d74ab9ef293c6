"""MeterValues payloads and the sampled / clock-aligned schedule (OCPP 1.6 sections 4.7, 9.1).

Pure: the caller passes `now` and gets back which connectors are due and the payload dicts
(snake_case, as `ocpp.v16.call.MeterValues` takes them, so they can be journaled as JSON).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from chargeport.port import MeterValue

__all__ = [
    "CURRENT_FLOOR_A",
    "DEFAULT_MEASURANDS",
    "POWER_FLOOR_W",
    "MeterTimer",
    "format_value",
    "import_reading",
    "iso_time",
    "meter_value_entry",
    "meter_values_payload",
    "parse_iso_time",
    "sampled_values",
    "signed_entry",
]

DEFAULT_MEASURANDS = (
    "Energy.Active.Import.Register",
    "Power.Active.Import",
    "Current.Import",
    "Voltage",
    "Temperature",
)

# What a meter shows at idle: below these magnitudes an import reading is 0 (no "-0.008 W"
# noise in MeterValues); an *.Import measurand and an energy register are never negative.
POWER_FLOOR_W = 5.0
CURRENT_FLOOR_A = 0.05

_PHASES = ("L1", "L2", "L3")
_VOLTAGE_PHASES = ("L1-N", "L2-N", "L3-N")


def iso_time(ts: float) -> str:
    """Unix seconds -> the RFC 3339 UTC form OCPP-J uses."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_iso_time(text: str) -> float:
    """RFC 3339 date-time -> unix seconds; ValueError when malformed."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def format_value(value: float, digits: int = 3) -> str:
    """A reading as OCPP SampledValue text: at most `digits` decimals, never "-0"."""
    text = f"{value:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def import_reading(value: float, floor: float = 0.0) -> float:
    """An *.Import reading as a meter shows it: below `floor` (or negative) it reads 0."""
    return value if value > 0 and value >= floor else 0.0  # NaN reads 0 too


def _value(
    measurand: str, value: float, unit: str, context: str, phase: str | None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "value": format_value(value),
        "context": context,
        "measurand": measurand,
        "unit": unit,
        "location": "Outlet",
    }
    if phase is not None:
        out["phase"] = phase
    return out


def sampled_values(mv: MeterValue, context: str, measurands: Iterable[str]) -> list[dict[str, Any]]:
    """The SampledValue list for one reading; per-phase measurands get one value per phase."""
    out: list[dict[str, Any]] = []
    for m in measurands:
        if m == "Energy.Active.Import.Register":
            out.append(_value(m, import_reading(mv.energy_wh), "Wh", context, None))
        elif m == "Power.Active.Import":
            out.append(_value(m, import_reading(mv.power_w, POWER_FLOOR_W), "W", context, None))
        elif m == "Current.Import":
            for phase, amps in zip(_PHASES, mv.current_a, strict=False):
                out.append(_value(m, import_reading(amps, CURRENT_FLOOR_A), "A", context, phase))
        elif m == "Voltage":
            for phase, volts in zip(_VOLTAGE_PHASES, mv.voltage_v, strict=False):
                out.append(_value(m, volts, "V", context, phase))
        elif m == "Temperature":
            out.append(_value(m, mv.temperature_c, "Celsius", context, None))
        elif m == "Frequency":
            out.append(
                {"value": format_value(mv.frequency_hz, 2), "context": context, "measurand": m}
            )
        elif m == "Power.Factor":
            out.append({"value": format_value(mv.power_factor), "context": context, "measurand": m})
    return out


def meter_value_entry(
    ts: float, mv: MeterValue, context: str, measurands: Iterable[str]
) -> dict[str, Any]:
    """One MeterValue element (timestamp + sampled values)."""
    return {"timestamp": iso_time(ts), "sampled_value": sampled_values(mv, context, measurands)}


def signed_entry(ts: float, record: str, context: str) -> dict[str, Any]:
    """One MeterValue element carrying a board's OCMF record (SampledValue format SignedData,
    OCPP 1.6 section 7.45 ValueFormat; context Transaction.Begin / Transaction.End)."""
    value = {
        "value": record,
        "context": context,
        "format": "SignedData",
        "measurand": "Energy.Active.Import.Register",
        "location": "Outlet",
        "unit": "Wh",
    }
    return {"timestamp": iso_time(ts), "sampled_value": [value]}


def meter_values_payload(
    connector_id: int, entries: Sequence[dict[str, Any]], transaction_id: int | None = None
) -> dict[str, Any]:
    """A MeterValues.req payload in `ocpp.v16.call.MeterValues` keyword form."""
    payload: dict[str, Any] = {"connector_id": connector_id, "meter_value": list(entries)}
    if transaction_id is not None:
        payload["transaction_id"] = transaction_id
    return payload


class MeterTimer:
    """When each connector's next sampled and clock-aligned readings are due.

    MeterValueSampleInterval counts from the transaction start and applies only during a
    transaction; ClockAlignedDataInterval is aligned to midnight UTC and applies to every
    connector (OCPP 1.6 section 9.1, keys 9.1.8 and 9.1.18). 0 switches either off.
    """

    def __init__(self, connectors: Iterable[int], sample_s: float, aligned_s: float) -> None:
        self._connectors = sorted(connectors)
        self.sample_s = sample_s
        self.aligned_s = aligned_s
        self._next_sample: dict[int, float] = {}
        self._next_aligned: float | None = None

    def configure(self, sample_s: float, aligned_s: float, now: float) -> None:
        """New intervals (ChangeConfiguration); running schedules restart from `now`."""
        self.sample_s = sample_s
        self.aligned_s = aligned_s
        for cid in self._next_sample:
            self._next_sample[cid] = now + sample_s
        self._next_aligned = None

    def start(self, connector_id: int, now: float) -> None:
        self._next_sample[connector_id] = now + self.sample_s

    def stop(self, connector_id: int) -> None:
        self._next_sample.pop(connector_id, None)

    def _aligned_after(self, now: float) -> float:
        return (math.floor(now / self.aligned_s) + 1) * self.aligned_s

    def next_deadline(self, now: float) -> float | None:
        times: list[float] = []
        if self.sample_s > 0:
            times.extend(self._next_sample.values())
        if self.aligned_s > 0:
            if self._next_aligned is None:
                self._next_aligned = self._aligned_after(now)
            times.append(self._next_aligned)
        return min(times) if times else None

    def due(self, now: float) -> list[tuple[int, str]]:
        """(connector, ReadingContext) pairs due at `now`; advances the schedule past `now`."""
        out: list[tuple[int, str]] = []
        if self.sample_s > 0:
            for cid, t in sorted(self._next_sample.items()):
                if t <= now:
                    out.append((cid, "Sample.Periodic"))
                    # Skip missed slots instead of bursting after a stall.
                    self._next_sample[cid] = t + self.sample_s * (
                        math.floor((now - t) / self.sample_s) + 1
                    )
        if self.aligned_s > 0:
            if self._next_aligned is None:
                self._next_aligned = self._aligned_after(now)
            if self._next_aligned <= now:
                out.extend((cid, "Sample.Clock") for cid in self._connectors)
                self._next_aligned = self._aligned_after(now)
        return out
