"""Hypothesis strategies for CSMS -> charge point frames, drawn from the OCPP 1.6 JSON schemas
the `ocpp` package ships: valid-shaped payloads with extreme values, and broken frames."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ocpp
from hypothesis import strategies as st

__all__ = ["CSMS_ACTIONS", "frames", "payloads"]

SCHEMAS = Path(ocpp.__file__).parent / "v16" / "schemas"

# Every CALL a central system sends to a charge point in OCPP 1.6 (and the security whitepaper).
CSMS_ACTIONS = (
    "CancelReservation",
    "CertificateSigned",
    "ChangeAvailability",
    "ChangeConfiguration",
    "ClearCache",
    "ClearChargingProfile",
    "DataTransfer",
    "DeleteCertificate",
    "ExtendedTriggerMessage",
    "GetCompositeSchedule",
    "GetConfiguration",
    "GetDiagnostics",
    "GetInstalledCertificateIds",
    "GetLocalListVersion",
    "GetLog",
    "InstallCertificate",
    "RemoteStartTransaction",
    "RemoteStopTransaction",
    "ReserveNow",
    "Reset",
    "SendLocalList",
    "SetChargingProfile",
    "SignedUpdateFirmware",
    "TriggerMessage",
    "UnlockConnector",
    "UpdateFirmware",
)

_INTS = st.one_of(
    st.integers(0, 5),
    st.integers(-(2**31), 2**31 - 1),
    st.sampled_from([-1, 2**31, 2**63, 10**27]),
)
_NUMBERS = st.one_of(
    st.integers(0, 64).map(lambda n: n / 2),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e27, -1e27, 1e308, 0.05, -0.0, 3.14159]),
)
_DATES = st.one_of(
    st.sampled_from(
        ["2030-01-01T00:00:00Z", "1970-01-01T00:00:00.000Z", "2024-02-30T25:61:00Z", "soon", ""]
    ),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
)
_ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _load(action: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / f"{action}.json").read_text("utf-8-sig"))
    return schema


def _value(schema: dict[str, Any], name: str) -> st.SearchStrategy[Any]:
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) | st.sampled_from(["", "Bogus"])
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        fixed = {k: _value(v, k) for k, v in props.items() if k in required}
        optional = {k: _value(v, k) for k, v in props.items() if k not in required}
        return st.fixed_dictionaries(fixed, optional=optional)
    if kind == "array":
        return st.lists(_value(schema.get("items", {}), name), max_size=4)
    if kind == "integer":
        return _INTS
    if kind == "number":
        return _NUMBERS
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        if schema.get("format") == "date-time":
            return _DATES
        size = min(int(schema.get("maxLength", 20)), 60)
        return st.text(max_size=size) | st.sampled_from(["HeartbeatInterval", "TAG-OK"])
    return _ANY_JSON


def payloads(action: str) -> st.SearchStrategy[Any]:
    """A payload shaped by the action's 1.6 schema (values free to be absurd)."""
    return _value(_load(action), action)


def _mutated(payload: Any, draw: st.DrawFn) -> Any:
    if not isinstance(payload, dict):
        return payload
    how = draw(st.sampled_from(["keep", "keep", "drop", "extra", "retype"]))
    if how == "drop" and payload:
        payload.pop(draw(st.sampled_from(sorted(payload))))
    elif how == "extra":
        payload[draw(st.text(min_size=1, max_size=8))] = draw(_ANY_JSON)
    elif how == "retype" and payload:
        payload[draw(st.sampled_from(sorted(payload)))] = draw(_ANY_JSON)
    return payload


@st.composite
def frames(draw: st.DrawFn, unique_id: str) -> str:
    """One frame with id `unique_id`: mostly CALLs shaped by the schemas, some broken."""
    kind = draw(
        st.sampled_from(["call"] * 6 + ["odd-action", "payload", "frame", "text", "deep", "id"])
    )
    if kind == "call":
        action = draw(st.sampled_from(CSMS_ACTIONS))
        payload = _mutated(draw(payloads(action)), draw)
        return json.dumps([2, unique_id, action, payload])
    if kind == "odd-action":
        action = draw(st.text(max_size=12) | st.sampled_from(["BootNotification", "Heartbeat"]))
        return json.dumps([2, unique_id, action, {}])
    if kind == "payload":
        action = draw(st.sampled_from(CSMS_ACTIONS))
        return json.dumps([2, unique_id, action, draw(_ANY_JSON)])
    if kind == "frame":
        shape = draw(st.lists(_ANY_JSON, max_size=5))
        return json.dumps([draw(st.sampled_from([2, 3, 4, 5, "2"])), unique_id, *shape])
    if kind == "deep":
        depth = draw(st.integers(10, 5000))
        return (
            f'[2,"{unique_id}","DataTransfer",{{"vendorId":"v","data":'
            + "[" * depth
            + "]" * depth
            + "}]"
        )
    if kind == "id":
        bad_id = draw(st.one_of(st.integers(), st.none(), st.text(min_size=37, max_size=40)))
        return json.dumps([2, bad_id, "Reset", {"type": "Soft"}])
    text = draw(st.text(max_size=40))
    return f'[2,"{unique_id}",' + text
