"""OCPP-J 1.6 framing for the charge point: schema validation with the 1.6 error codes, the
CALLERROR for an unparseable frame, and a response wait that honours cancellation.

Incoming CALLs are validated against the OCPP 1.6 JSON schemas here, so that errors come back
with the 1.6 error codes (OCPP-J 1.6 section 4.2.3: FormationViolation, not 2.0's
FormatViolation) and a frame that cannot be parsed still gets a CALLERROR when it carries a
unique id.
"""

from __future__ import annotations

import asyncio
import decimal
import json
from collections.abc import Callable
from typing import Any, TypeVar

from jsonschema.exceptions import ValidationError as SchemaValidationError  # type: ignore[import-untyped]
from ocpp.exceptions import (
    FormationViolationError,
    OccurenceConstraintViolationError,
    OCPPError,
    PropertyConstraintViolationError,
    TypeConstraintViolationError,
)
from ocpp.exceptions import (
    NotImplementedError as OcppNotImplemented,
)
from ocpp.messages import CallError, MessageType, get_validator
from ocpp.routing import on as _untyped_on
from ocpp.v16.enums import Action

__all__ = ["as_v16", "call_error_for", "on", "response_for", "validate_call"]

_F = TypeVar("_F", bound=Callable[..., Any])

# The schema lists floats with one decimal; parse them exactly (as the ocpp package does).
_DECIMAL_ACTIONS = {"SetChargingProfile", "RemoteStartTransaction"}


def on(action: Action, *, skip_schema_validation: bool = False) -> Callable[[_F], _F]:
    """`ocpp.routing.on` with a type (the package is untyped)."""
    decorator: Callable[[_F], _F] = _untyped_on(
        action, skip_schema_validation=skip_schema_validation
    )
    return decorator


def _schema_error(err: SchemaValidationError) -> OCPPError:
    """jsonschema failure -> the OCPP-J 1.6 error code (section 4.2.3)."""
    details = {"cause": err.message[:200]}
    if err.validator in ("type", "maxLength"):
        return TypeConstraintViolationError(details=details)
    if err.validator == "required":
        return OccurenceConstraintViolationError(details=details)
    if err.validator in ("enum", "minimum", "maximum", "format", "pattern", "minLength"):
        return PropertyConstraintViolationError(details=details)
    return FormationViolationError(details=details)


def validate_call(action: str, payload: Any) -> Any:
    """Check a CALL payload against its 1.6 schema; returns the payload as the handlers get it."""
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
    return payload


def call_error_for(raw: str | bytes) -> str | None:
    """A CALLERROR for a frame that could not be parsed, when it carries a unique id."""
    try:
        frame = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None  # no unique id to answer to (OCPP-J 1.6 section 4.2.3)
    if not isinstance(frame, list) or len(frame) < 2 or not isinstance(frame[1], str):
        return None
    if frame[0] in (MessageType.CallResult, MessageType.CallError):
        return None  # never answer a response
    if frame[0] != MessageType.Call:
        err: OCPPError = PropertyConstraintViolationError(
            details={"cause": f"MessageTypeId {frame[0]!r} is not valid"}
        )
    else:
        err = FormationViolationError(details={"cause": "frame has the wrong shape"})
    reply: str = CallError(frame[1], err.code, err.description, err.details).to_json()
    return reply


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
