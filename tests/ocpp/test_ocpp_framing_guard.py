"""The CSMS -> station decoder is guarded (issue 12): size, depth, ids, numbers and dates are
checked before any decoder or handler sees them, with the OCPP-J 1.6 error codes (section
4.2.3), and an unknown action is NotImplemented while a known, unsupported one is
NotSupported (4.2.3)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ocpp.messages import Call, CallError, CallResult

from main_node.ocpp.framing import (
    MAX_DEPTH,
    MAX_FRAME_BYTES,
    FrameRejected,
    decode_frame,
    nesting_depth,
    unknown_action,
    validate_call,
)

HUGE_PROFILE: dict[str, Any] = {
    "connectorId": 1,
    "csChargingProfiles": {
        "chargingProfileId": 1,
        "stackLevel": 1,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 1e27}],
        },
    },
}


def _reply_code(rejected: FrameRejected) -> tuple[str, str] | None:
    if rejected.reply is None:
        return None
    frame = json.loads(rejected.reply)
    assert frame[0] == 4
    return frame[1], frame[2]


@pytest.mark.parametrize(
    ("raw", "answer"),
    [
        # 4.2.1: UniqueId is string[36]; without one there is nobody to answer.
        ('[2,17,"Reset",{"type":"Hard"}]', None),
        ('[2,null,"Reset",{"type":"Hard"}]', None),
        ('[2,["x"],"Reset",{"type":"Hard"}]', None),
        ('[2,"' + "x" * 37 + '","Reset",{"type":"Hard"}]', None),
        ('[2,"","Reset",{"type":"Hard"}]', None),
        # Not JSON (NaN and Infinity are not JSON either): FormationViolation when the id reads.
        ('[2,"a1","Reset",{"type":NaN}]', ("a1", "FormationViolation")),
        ('[2,"a2","Reset",{"type":"Hard"}', ("a2", "FormationViolation")),
        ("this is not json", None),
        ("\u0000\u00ff{", None),
        # 4.1: [MessageTypeId, UniqueId, ...]; a bad type id with a readable id is answered.
        ('[5,"a3","Reset",{}]', ("a3", "PropertyConstraintViolation")),
        ('[2,"a4","Reset"]', ("a4", "FormationViolation")),
        ('[2,"a5",7,{}]', ("a5", "FormationViolation")),
        ('{"a": 1}', None),
        ("[]", None),
        ('[3,"a6"]', None),  # a broken response is never answered
        ('[4,"a7","x"]', None),
    ],
)
def test_frames_refused_before_decoding_ocpp_j_4_1_and_4_2(
    raw: str, answer: tuple[str, str] | None
) -> None:
    with pytest.raises(FrameRejected) as caught:
        decode_frame(raw)
    assert _reply_code(caught.value) == answer


def test_deep_nesting_is_refused_before_json_loads_recursion() -> None:
    """A 400 KB frame of nested `[` raised RecursionError inside json.loads."""
    bare = "[" * 400_000
    with pytest.raises(FrameRejected) as caught:
        decode_frame(bare)
    assert caught.value.reply is None
    as_call = '[2,"deep","DataTransfer",{"vendorId":"x","data":' + "[" * 400_000
    with pytest.raises(FrameRejected) as caught:
        decode_frame(as_call)
    assert _reply_code(caught.value) == ("deep", "FormationViolation")


def test_nesting_depth_ignores_brackets_inside_strings() -> None:
    text = json.dumps([2, "id", "DataTransfer", {"vendorId": "v", "data": "[" * 100}])
    assert nesting_depth(text, MAX_DEPTH) == 2
    decode_frame(text)  # accepted
    # An unterminated string with many quotes and escapes stays linear and is refused later.
    assert nesting_depth('"\\"' * 50_000, MAX_DEPTH) == 0


def test_oversized_frame_is_refused_without_decoding() -> None:
    big = '[2,"big","DataTransfer",{"vendorId":"v","data":"' + "x" * MAX_FRAME_BYTES + '"}]'
    with pytest.raises(FrameRejected) as caught:
        decode_frame(big)
    assert caught.value.reply is None


def test_valid_frames_decode_to_messages() -> None:
    assert isinstance(decode_frame('[2,"c","Reset",{"type":"Hard"}]'), Call)
    assert isinstance(decode_frame('[3,"r",{}]'), CallResult)
    assert isinstance(decode_frame('[4,"e","NotImplemented","",{}]'), CallError)
    assert isinstance(decode_frame(b'[2,"b","Reset",{"type":"Soft"}]'), Call)


def _code(action: str, payload: Any) -> str | None:
    try:
        validate_call(action, payload)
    except Exception as exc:  # the OCPPError raised, by its code
        return str(getattr(exc, "code", type(exc).__name__))
    return None


def _with_limit(limit: Any) -> dict[str, Any]:
    profile = json.loads(json.dumps(HUGE_PROFILE))
    profile["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] = limit
    return dict(profile)


@pytest.mark.parametrize(
    ("action", "payload", "code"),
    [
        # The Decimal 1e27 of issue 12 (schema multipleOf raised decimal.InvalidOperation).
        ("SetChargingProfile", HUGE_PROFILE, "PropertyConstraintViolation"),
        (
            "RemoteStartTransaction",
            {"idTag": "T", "chargingProfile": HUGE_PROFILE["csChargingProfiles"]},
            "PropertyConstraintViolation",
        ),
        ("SetChargingProfile", _with_limit(-6.0), "PropertyConstraintViolation"),
        ("SetChargingProfile", _with_limit(16.0), None),
        ("SetChargingProfile", _with_limit(16.05), "PropertyConstraintViolation"),
        # Integers outside 32 bits: a type violation; negative ids and counts: out of range.
        (
            "ChangeAvailability",
            {"connectorId": 2**40, "type": "Operative"},
            "TypeConstraintViolation",
        ),
        (
            "ChangeAvailability",
            {"connectorId": -1, "type": "Operative"},
            "PropertyConstraintViolation",
        ),
        (
            "ReserveNow",
            {
                "connectorId": 1,
                "expiryDate": "2030-01-01T00:00:00Z",
                "idTag": "T",
                "reservationId": -5,
            },
            "PropertyConstraintViolation",
        ),
        (
            "GetCompositeSchedule",
            {"connectorId": 1, "duration": -60},
            "PropertyConstraintViolation",
        ),
        ("GetDiagnostics", {"location": "ftp://x/", "retries": -1}, "PropertyConstraintViolation"),
        (
            "GetDiagnostics",
            {"location": "ftp://x/", "retryInterval": 1e30},
            "PropertyConstraintViolation",
        ),
        ("RemoteStopTransaction", {"transactionId": 10**20}, "TypeConstraintViolation"),
        ("SendLocalList", {"listVersion": 2**31, "updateType": "Full"}, "TypeConstraintViolation"),
        (
            "ChangeAvailability",
            {"connectorId": 1.5, "type": "Operative"},
            "TypeConstraintViolation",
        ),
        # Dates the schema declares but does not check (section 7, dateTime).
        (
            "UpdateFirmware",
            {"location": "http://x/f", "retrieveDate": "tomorrow"},
            "PropertyConstraintViolation",
        ),
        (
            "UpdateFirmware",
            {"location": "http://x/f", "retrieveDate": "2030-01-01T00:00:00Z"},
            None,
        ),
        (
            "ReserveNow",
            {"connectorId": 1, "expiryDate": "99999-01-01", "idTag": "T", "reservationId": 1},
            "PropertyConstraintViolation",
        ),
        ("Reset", [], "FormationViolation"),
    ],
)
def test_numbers_and_dates_outside_sane_ranges_are_refused_ocpp_j_4_2_3(
    action: str, payload: Any, code: str | None
) -> None:
    assert _code(action, payload) == code


@pytest.mark.parametrize(
    ("action", "code"),
    [
        ("NoSuchAction", "NotImplemented"),  # not known by the receiver
        ("", "NotImplemented"),
        ("GetLog", "NotSupported"),  # security whitepaper: known, not supported here
        ("BootNotification", "NotSupported"),  # a charge point's own CALL, known
    ],
)
def test_unknown_action_not_implemented_known_action_not_supported_ocpp_j_4_2_3(
    action: str, code: str
) -> None:
    assert unknown_action(action).code == code
