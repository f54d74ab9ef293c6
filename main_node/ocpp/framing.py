"""OCPP-J 1.6 framing for the charge point: a guarded decoder, schema validation with the 1.6
error codes, sane-range checks on numbers, and a response wait that honours cancellation.

Nothing the CSMS sends reaches a decoder without limits (ARCHITECTURE.md, crash-only):

- a frame is at most `MAX_FRAME_BYTES` (the websocket's `max_size`: a bigger one closes the
  connection with 1009 "message too big") and nests at most `MAX_DEPTH` arrays/objects,
  checked *before* `json.loads` (which would hit the recursion limit on a deep frame);
- a message id must be a string of at most 36 characters (OCPP-J 1.6 section 4.2.1: UniqueId
  is string[36]); a frame without one cannot be answered and is dropped with a log line;
- numbers must be finite and fit a 32-bit integer's range before the schema sees them (the
  schema parses SetChargingProfile / RemoteStartTransaction floats as Decimal, and `multipleOf`
  on 1e27 raises `decimal.InvalidOperation`), then each known field must be in its sane range;
- an action the station does not know gets `NotImplemented`, one it knows (an OCPP 1.6 or
  security-whitepaper action) but does not serve gets `NotSupported` (OCPP-J 1.6 section
  4.2.3). The `ocpp` package has these two the other way round.

Incoming CALLs are validated against the OCPP 1.6 JSON schemas here, so that errors come back
with the 1.6 error codes (section 4.2.3: FormationViolation, not 2.0's FormatViolation).
"""

from __future__ import annotations

import asyncio
import decimal
import json
import math
import re
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from jsonschema.exceptions import ValidationError as SchemaValidationError  # type: ignore[import-untyped]
from ocpp.exceptions import (
    FormationViolationError,
    NotSupportedError,
    OccurenceConstraintViolationError,
    OCPPError,
    PropertyConstraintViolationError,
    TypeConstraintViolationError,
)
from ocpp.exceptions import (
    NotImplementedError as OcppNotImplemented,
)
from ocpp.messages import Call, CallError, CallResult, MessageType, get_validator
from ocpp.routing import on as _untyped_on
from ocpp.v16.enums import Action

from main_node.ocpp.meter_values import parse_iso_time

__all__ = [
    "INT32_MAX",
    "MAX_DEPTH",
    "MAX_FRAME_BYTES",
    "MAX_ID_LENGTH",
    "FrameRejected",
    "as_v16",
    "check_dates",
    "check_numbers",
    "check_ranges",
    "decode_frame",
    "nesting_depth",
    "on",
    "response_for",
    "strings_by_key",
    "unknown_action",
    "validate_call",
]

_F = TypeVar("_F", bound=Callable[..., Any])

# The biggest legitimate CSMS message is a SendLocalList update: thousands of entries fit.
MAX_FRAME_BYTES = 512 * 1024
# [2,"id","SetChargingProfile",{csChargingProfiles:{chargingSchedule:{periods:[{}]}}}] is 6.
MAX_DEPTH = 16
MAX_ID_LENGTH = 36  # OCPP-J 1.6 section 4.2.1: UniqueId is string[36]
INT32_MAX = 2**31 - 1

# The schema lists floats with one decimal; parse them exactly (as the ocpp package does).
_DECIMAL_ACTIONS = {"SetChargingProfile", "RemoteStartTransaction"}

# Sane ranges of the numeric fields of CSMS -> charge point CALLs (OCPP 1.6 section 7). The
# schemas bound none of them; ids and counts are non-negative 32-bit integers, a schedule
# period has 1..3 phases, and a limit (A or W) above 10 MW is no limit a charger can apply.
_RANGES: dict[str, tuple[float, float]] = {
    "connectorId": (0, INT32_MAX),
    "reservationId": (0, INT32_MAX),
    "transactionId": (-(2**31), INT32_MAX),
    "chargingProfileId": (0, INT32_MAX),
    "id": (0, INT32_MAX),
    "stackLevel": (0, INT32_MAX),
    "duration": (0, INT32_MAX),
    "startPeriod": (0, INT32_MAX),
    "retries": (0, INT32_MAX),
    "retryInterval": (0, INT32_MAX),
    "requestId": (0, INT32_MAX),
    "listVersion": (-1, INT32_MAX),
    "numberPhases": (1, 3),
    "limit": (0, 10_000_000),
    "minChargingRate": (0, 10_000_000),
}

# The date-time fields of CSMS -> charge point CALLs; the schemas declare the format, which
# the validator does not check, and a handler must not be the first to parse them.
_DATE_FIELDS = frozenset(
    {"retrieveDate", "startTime", "stopTime", "expiryDate", "startSchedule", "validFrom", "validTo"}
    # the security whitepaper's SignedUpdateFirmware.firmware and GetLog.log
    | {"retrieveDateTime", "installDateTime", "oldestTimestamp", "latestTimestamp"}
)

# An action the station knows: every OCPP 1.6 action (core, the feature profiles and the
# security whitepaper's). One it knows and does not serve is NotSupported (section 4.2.3).
_KNOWN_ACTIONS = frozenset(a.value for a in Action)

# The prefix of a CALL whose id can still be read when the rest of the frame is refused.
_CALL_PREFIX = re.compile(r'\s*\[\s*2\s*,\s*"([^"\\]{1,36})"')
# A JSON string (possibly unterminated: it runs to the end) or one bracket; linear time.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)|[\[\]{}]', re.DOTALL)


def on(action: Action, *, skip_schema_validation: bool = False) -> Callable[[_F], _F]:
    """`ocpp.routing.on` with a type (the package is untyped)."""
    decorator: Callable[[_F], _F] = _untyped_on(
        action, skip_schema_validation=skip_schema_validation
    )
    return decorator


class FrameRejected(Exception):
    """A frame that is no usable OCPP-J message; `reply` is its CALLERROR, when it has an id."""

    def __init__(self, reason: str, reply: str | None) -> None:
        super().__init__(reason)
        self.reply = reply


def nesting_depth(text: str, limit: int) -> int:
    """How deep arrays/objects nest in `text`, counting no further than `limit` + 1."""
    depth = deepest = 0
    for token in _TOKENS.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if depth > limit:
                break
        elif char in "]}":
            depth -= 1
    return deepest


def _reply(unique_id: str, error: OCPPError) -> str:
    text: str = CallError(unique_id, error.code, error.description, error.details).to_json()
    return text


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_frame(raw: str | bytes) -> Call | CallResult | CallError:
    """One OCPP-J message from a websocket frame, or `FrameRejected` (with the CALLERROR to send
    when the frame is a CALL whose id could be read). No input makes it raise anything else."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode()
        except UnicodeDecodeError:
            raise FrameRejected("frame is not UTF-8 text", None) from None
    if len(raw) > MAX_FRAME_BYTES:
        raise FrameRejected(f"frame of {len(raw)} characters is too long", None)
    head = _CALL_PREFIX.match(raw)
    if nesting_depth(raw, MAX_DEPTH) > MAX_DEPTH:
        cause = f"frame nests deeper than {MAX_DEPTH}"
        error = FormationViolationError(details={"cause": cause})
        raise FrameRejected(cause, _reply(head.group(1), error) if head else None)
    try:
        frame = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        error = FormationViolationError(details={"cause": "frame is not JSON"})
        raise FrameRejected(
            "frame is not JSON", _reply(head.group(1), error) if head else None
        ) from None
    return _message(frame)


def _message(frame: Any) -> Call | CallResult | CallError:
    """The OCPP-J message in a decoded frame (section 4.1: [MessageTypeId, UniqueId, ...])."""
    if not isinstance(frame, list) or len(frame) < 2:
        raise FrameRejected("frame is not an OCPP-J array", None)
    kind, unique_id = frame[0], frame[1]
    if not isinstance(unique_id, str) or not 0 < len(unique_id) <= MAX_ID_LENGTH:
        # No id to answer to: a CALLERROR must carry the CALL's string id (section 4.2.1).
        raise FrameRejected(f"message id {unique_id!r:.50} is not a string[36]", None)
    if kind == MessageType.Call:
        if len(frame) != 4 or not isinstance(frame[2], str):
            cause = "a CALL is [2, id, action, payload]"
            error = FormationViolationError(details={"cause": cause})
            raise FrameRejected(cause, _reply(unique_id, error))
        return Call(unique_id, frame[2], frame[3])
    if kind == MessageType.CallResult and len(frame) == 3:
        return CallResult(unique_id, frame[2])
    if kind == MessageType.CallError and len(frame) == 5:
        return CallError(unique_id, frame[2], frame[3], frame[4])
    if kind in (MessageType.CallResult, MessageType.CallError):
        raise FrameRejected("malformed response", None)  # never answer a response
    error = PropertyConstraintViolationError(
        details={"cause": f"MessageTypeId {kind!r:.20} is not valid"}
    )
    raise FrameRejected("bad MessageTypeId", _reply(unique_id, error))


def unknown_action(action: str) -> OCPPError:
    """The CALLERROR for an action without a handler (OCPP-J 1.6 section 4.2.3)."""
    # The package's descriptions of these two are swapped as well: spell out the spec's.
    if action in _KNOWN_ACTIONS:
        return NotSupportedError(
            description="Requested Action is recognized but not supported by the receiver",
            details={"cause": f"{action} is not supported"},
        )
    return OcppNotImplemented(
        description="Requested Action is not known by receiver",
        details={"cause": f"{action!r:.60} is not an OCPP 1.6 action"},
    )


def _numbers(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _numbers(v, str(k))
    elif isinstance(value, list):
        for item in value:
            yield from _numbers(item, key)
    elif isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool):
        yield key, value


def check_numbers(payload: Any) -> None:
    """Every number finite and within a 32-bit integer's range; raises the 1.6 error code.

    Runs before the schema: a Decimal of 1e27 breaks the schema's `multipleOf` check.
    """
    for key, number in _numbers(payload):
        if isinstance(number, int):
            if not -(2**31) <= number <= INT32_MAX:
                cause = f"{key} = {number:.3g} does not fit a 32-bit integer"
                raise TypeConstraintViolationError(details={"cause": cause})
        elif not math.isfinite(number) or abs(number) > INT32_MAX:
            cause = f"{key} = {float(number):.3g} is out of range"
            raise PropertyConstraintViolationError(details={"cause": cause})


def check_ranges(payload: Any) -> None:
    """Each known numeric field within its sane range (`_RANGES`), after the schema."""
    for key, number in _numbers(payload):
        bounds = _RANGES.get(key)
        if bounds is not None and not bounds[0] <= number <= bounds[1]:
            cause = f"{key} = {float(number):.6g} is outside {bounds[0]:g}..{bounds[1]:g}"
            raise PropertyConstraintViolationError(details={"cause": cause})


def strings_by_key(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """(field name, text) of every string in a decoded payload; list items take the list's name."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from strings_by_key(v, str(k))
    elif isinstance(value, list):
        for item in value:
            yield from strings_by_key(item, key)
    elif isinstance(value, str):
        yield key, value


def check_dates(payload: Any) -> None:
    """Each date-time field an RFC 3339 date-time (OCPP 1.6 section 7: dateTime)."""
    for key, text in strings_by_key(payload):
        if key in _DATE_FIELDS:
            try:
                parse_iso_time(text)
            except (ValueError, OverflowError):
                cause = f"{key} = {text!r:.40} is not an RFC 3339 date-time"
                raise PropertyConstraintViolationError(details={"cause": cause}) from None


def _schema_error(err: SchemaValidationError) -> OCPPError:
    """jsonschema failure -> the OCPP-J 1.6 error code (section 4.2.3)."""
    details = {"cause": err.message[:200]}
    if err.validator in ("type", "maxLength"):
        return TypeConstraintViolationError(details=details)
    if err.validator == "required":
        return OccurenceConstraintViolationError(details=details)
    if err.validator in (
        "enum",
        "minimum",
        "maximum",
        "format",
        "pattern",
        "minLength",
        "multipleOf",
    ):
        return PropertyConstraintViolationError(details=details)
    return FormationViolationError(details=details)


def validate_call(action: str, payload: Any) -> Any:
    """Check a CALL payload: numbers, its 1.6 schema, then field ranges; returns the payload."""
    if not isinstance(payload, dict):
        raise FormationViolationError(details={"cause": "payload is not an object"})
    check_numbers(payload)
    decimals = action in _DECIMAL_ACTIONS
    try:
        validator = get_validator(
            MessageType.Call,
            action,
            "1.6",
            parse_float=decimal.Decimal if decimals else float,
        )
    except (OSError, ValueError):
        raise OcppNotImplemented(details={"cause": f"no schema for {action}"}) from None
    checked = json.loads(json.dumps(payload), parse_float=decimal.Decimal) if decimals else payload
    try:
        validator.validate(checked)
    except SchemaValidationError as err:
        raise _schema_error(err) from None
    except decimal.DecimalException:
        # Belt and braces: check_numbers keeps such numbers out (see the module docstring).
        raise PropertyConstraintViolationError(
            details={"cause": "a number is out of range"}
        ) from None
    check_ranges(payload)
    check_dates(payload)
    return payload


def as_v16(error: OCPPError) -> OCPPError:
    """The ocpp package raises 2.0 names in places; OCPP-J 1.6 spells them differently."""
    if error.code == "FormatViolation":
        return FormationViolationError(description=error.description, details=error.details)
    if error.code == "OccurrenceConstraintViolation":
        return OccurenceConstraintViolationError(
            description=error.description, details=error.details
        )
    return error


async def response_for(queue: asyncio.Queue[Any], unique_id: str, within_s: float) -> Any:
    """The CALLRESULT/CALLERROR answering `unique_id`; TimeoutError after `within_s` seconds.

    The package waits with `asyncio.wait_for`, which on Python 3.11 swallows a cancellation
    that lands in the same loop turn as the answer: the sender then outlives its connection
    and a shutdown hangs. `asyncio.timeout` lets the cancellation through.
    """
    async with asyncio.timeout(within_s):
        while True:
            response = await queue.get()
            if response.unique_id == unique_id:
                return response
            # A late answer to a CALL that already timed out: not ours, keep waiting.
