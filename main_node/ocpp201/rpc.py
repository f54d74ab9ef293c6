"""OCPP-J 2.0.1 over one websocket: our CALLs with their answers, the CSMS's CALLs to handlers.

A seam of our own instead of a subclass of `ocpp.ChargePoint` (no private method of the
package is overridden). Messages are the package's typed dataclasses (`ocpp.v201.call`,
`ocpp.v201.call_result`); the package's public helpers convert them to and from the wire.

Nothing the CSMS sends reaches a decoder without limits (ARCHITECTURE.md, crash-only): the
frame size and nesting depth are checked before `json.loads`, numbers must be finite and fit
32 bits before the schema sees them (`main_node.ocpp.framing`, shared with 1.6), then the
payload is validated against the official 2.0.1 schema. Errors carry the OCPP-J 2.0.1 codes
(OCPP-J 2.0.1 section 4.3): FormatViolation, OccurrenceConstraintViolation,
PropertyConstraintViolation, TypeConstraintViolation, NotImplemented (an action unknown to
the receiver), NotSupported (known, not served), MessageTypeNotSupported, RpcFrameworkError.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema.exceptions import ValidationError as SchemaValidationError  # type: ignore[import-untyped]
from ocpp.charge_point import camel_to_snake_case, remove_nones, snake_to_camel_case
from ocpp.exceptions import (
    FormatViolationError,
    InternalError,
    NotSupportedError,
    OccurrenceConstraintViolationError,
    OCPPError,
    PropertyConstraintViolationError,
    TypeConstraintViolationError,
)
from ocpp.exceptions import NotImplementedError as OcppNotImplemented
from ocpp.messages import MessageType, get_validator
from ocpp.v201 import call, call_result
from ocpp.v201.enums import Action

from main_node.ocpp.db import parse_datetime
from main_node.ocpp.framing import (
    MAX_DEPTH,
    MAX_FRAME_BYTES,
    MAX_ID_LENGTH,
    check_numbers,
    nesting_depth,
    strings_by_key,
)

__all__ = [
    "SUBPROTOCOL",
    "Answer",
    "CallRefused",
    "FrameRejected",
    "Handler",
    "MessageTypeNotSupportedError",
    "Rpc",
    "RpcFrameworkError",
    "decode",
    "parse_request",
    "to_payload",
    "validate",
]

log = logging.getLogger(__name__)

SUBPROTOCOL = "ocpp2.0.1"
VERSION = "2.0.1"
_KNOWN_ACTIONS = frozenset(a.value for a in Action)
_DATE_FIELDS = frozenset({"timestamp", "startSchedule", "validFrom", "validTo", "generatedAt"})


class MessageTypeNotSupportedError(OCPPError):  # type: ignore[misc]
    code = "MessageTypeNotSupported"
    default_description = "A message with a MessageTypeId this implementation does not support"


class RpcFrameworkError(OCPPError):  # type: ignore[misc]
    code = "RpcFrameworkError"
    default_description = "Content of the call is not a valid RPC request"


class CallRefused(Exception):
    """The CSMS answered our CALL with a CALLERROR (or an answer its schema refuses)."""

    def __init__(self, action: str, code: str, description: str) -> None:
        super().__init__(f"{action}: {code} {description}".strip())
        self.code = code


class FrameRejected(Exception):
    """A frame that is no usable OCPP-J message; `reply` is the CALLERROR to send, if any."""

    def __init__(self, reason: str, reply: str | None) -> None:
        super().__init__(reason)
        self.reply = reply


@dataclass(frozen=True)
class Answer:
    """A handler's CALLRESULT and the work to start once it is on the wire (our own CALLs)."""

    result: Any
    then: Callable[[], Coroutine[Any, Any, None]] | None = None


Handler = Callable[[Any], Awaitable[Any]]  # typed request -> call_result dataclass | Answer


@dataclass(frozen=True)
class _Call:
    unique_id: str
    action: str
    payload: Any


@dataclass(frozen=True)
class _Response:
    unique_id: str
    payload: Any  # CALLRESULT payload
    error: tuple[str, str] | None = None  # CALLERROR (code, description)


def _error_frame(unique_id: str, error: OCPPError) -> str:
    return json.dumps(
        [MessageType.CallError, unique_id, error.code, error.description, error.details or {}]
    )


def decode(raw: str | bytes) -> _Call | _Response:
    """One OCPP-J message from a frame, or `FrameRejected`; no input raises anything else."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode()
        except UnicodeDecodeError:
            raise FrameRejected("frame is not UTF-8 text", None) from None
    if len(raw) > MAX_FRAME_BYTES:
        raise FrameRejected(f"frame of {len(raw)} characters is too long", None)
    if nesting_depth(raw, MAX_DEPTH) > MAX_DEPTH:
        raise FrameRejected(f"frame nests deeper than {MAX_DEPTH}", None)
    try:
        frame = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise FrameRejected("frame is not JSON", None) from None
    if not isinstance(frame, list) or len(frame) < 2:
        raise FrameRejected("frame is not an OCPP-J array", None)
    kind, unique_id = frame[0], frame[1]
    if not isinstance(unique_id, str) or not 0 < len(unique_id) <= MAX_ID_LENGTH:
        raise FrameRejected(f"message id {unique_id!r:.50} is not a string[36]", None)
    if kind == MessageType.Call:
        if len(frame) != 4 or not isinstance(frame[2], str):
            error = RpcFrameworkError(details={"cause": "a CALL is [2, id, action, payload]"})
            raise FrameRejected("malformed CALL", _error_frame(unique_id, error))
        return _Call(unique_id, frame[2], frame[3])
    if kind == MessageType.CallResult and len(frame) == 3:
        return _Response(unique_id, frame[2])
    if kind == MessageType.CallError and len(frame) == 5:
        return _Response(unique_id, None, (str(frame[2]), str(frame[3])))
    if kind in (MessageType.CallResult, MessageType.CallError):
        raise FrameRejected("malformed response", None)  # never answer a response
    error = MessageTypeNotSupportedError(details={"cause": f"MessageTypeId {kind!r:.20}"})
    raise FrameRejected("bad MessageTypeId", _error_frame(unique_id, error))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _schema_error(err: SchemaValidationError) -> OCPPError:
    """jsonschema failure -> the OCPP-J 2.0.1 error code (section 4.3)."""
    details = {"cause": err.message[:200]}
    if err.validator == "type":
        return TypeConstraintViolationError(details=details)
    if err.validator == "required":
        return OccurrenceConstraintViolationError(details=details)
    if err.validator in ("enum", "minimum", "maximum", "maxLength", "minLength", "pattern"):
        return PropertyConstraintViolationError(details=details)
    return FormatViolationError(details=details)


def validate(kind: int, action: str, payload: Any) -> None:
    """Check a payload against its official 2.0.1 schema; raises the 2.0.1 error code."""
    if not isinstance(payload, dict):
        raise FormatViolationError(details={"cause": "payload is not an object"})
    check_numbers(payload)  # 1.6's codes for these two are 2.0.1's too
    try:
        validator = get_validator(kind, action, VERSION)
    except (OSError, ValueError):
        raise OcppNotImplemented(details={"cause": f"no schema for {action}"}) from None
    try:
        validator.validate(payload)
    except SchemaValidationError as err:
        raise _schema_error(err) from None
    check_dates(payload)


def check_dates(payload: Any) -> None:
    """Each date-time field an RFC 3339 date-time: the schemas name the format, the validator
    does not check it, and no handler should be the first to parse one."""
    for key, text in strings_by_key(payload):
        if key.endswith(("DateTime", "Timestamp")) or key in _DATE_FIELDS:
            try:
                parse_datetime(text)
            except (ValueError, OverflowError):
                cause = f"{key} = {text!r:.40} is not an RFC 3339 date-time"
                raise PropertyConstraintViolationError(details={"cause": cause}) from None


def to_payload(message: Any) -> dict[str, Any]:
    """A typed message -> its wire payload (camelCase, no nulls)."""
    wire: dict[str, Any] = remove_nones(snake_to_camel_case(dataclasses.asdict(message)))
    return wire


def parse_request(action: str, payload: dict[str, Any]) -> Any:
    """A validated CALL payload -> the package's typed request (`ocpp.v201.call`)."""
    return getattr(call, action)(**camel_to_snake_case(payload))


def _parse_result(action: str, payload: dict[str, Any]) -> Any:
    return getattr(call_result, action)(**camel_to_snake_case(payload))


def unknown_action(action: str) -> OCPPError:
    if action in _KNOWN_ACTIONS:
        return NotSupportedError(
            description="Requested Action is recognized but not supported by the receiver",
            details={"cause": f"{action} is not supported"},
        )
    return OcppNotImplemented(
        description="Requested Action is not known by receiver",
        details={"cause": f"{action!r:.60} is not an OCPP 2.0.1 action"},
    )


class Rpc:
    """The OCPP-J endpoint on one connection; `run` routes frames until the socket closes."""

    def __init__(
        self,
        send: Callable[[str], Awaitable[None]],
        handlers: Mapping[str, Handler],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        *,
        response_timeout_s: float = 30.0,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        self._send = send
        self._handlers = handlers
        self._spawn = spawn
        self.response_timeout_s = response_timeout_s
        counter = itertools.count(1)
        prefix = uuid.uuid4().hex[:8]
        self._new_id = new_id or (lambda: f"{prefix}-{next(counter)}")
        self._waiting: dict[str, asyncio.Future[_Response]] = {}
        self._lock = asyncio.Lock()  # OCPP-J: one outstanding CALL at a time

    async def call(self, message: Any) -> Any:
        """Send a CALL, return the typed CALLRESULT; `CallRefused` on a CALLERROR,
        `TimeoutError` without an answer."""
        action = type(message).__name__
        payload = to_payload(message)
        validate(MessageType.Call, action, payload)  # a bug of ours never reaches the wire
        return await self.call_checked(action, payload)

    async def call_checked(self, action: str, payload: dict[str, Any]) -> Any:
        """`call` for a wire payload already validated (a journaled TransactionEvent is checked
        once, when it is journaled, not at every attempt)."""
        async with self._lock:
            unique_id = self._new_id()
            fut: asyncio.Future[_Response] = asyncio.get_running_loop().create_future()
            self._waiting[unique_id] = fut
            try:
                await self._send(json.dumps([MessageType.Call, unique_id, action, payload]))
                async with asyncio.timeout(self.response_timeout_s):
                    response = await fut
            finally:
                self._waiting.pop(unique_id, None)
        if response.error is not None:
            raise CallRefused(action, *response.error)
        try:
            validate(MessageType.CallResult, action, response.payload)
        except OCPPError as exc:
            raise CallRefused(action, exc.code, str(exc.details)) from None
        return _parse_result(action, response.payload)

    async def route(self, raw: str | bytes) -> None:
        """Handle one frame; it can fail only itself (every CALL gets exactly one answer)."""
        try:
            message = decode(raw)
        except FrameRejected as rejected:
            log.warning("CSMS frame refused (%s): %.120r", rejected, raw)
            if rejected.reply is not None:
                await self._send(rejected.reply)
            return
        if isinstance(message, _Response):
            fut = self._waiting.get(message.unique_id)
            if fut is not None and not fut.done():
                fut.set_result(message)
            return
        await self._answer(message)

    async def _answer(self, message: _Call) -> None:
        then = None
        try:
            handler = self._handlers.get(message.action)
            if handler is None:
                raise unknown_action(message.action)
            validate(MessageType.Call, message.action, message.payload)
            outcome = await handler(parse_request(message.action, message.payload))
            if isinstance(outcome, Answer):
                outcome, then = outcome.result, outcome.then
            payload = to_payload(outcome)
            validate(MessageType.CallResult, message.action, payload)
            frame = json.dumps([MessageType.CallResult, message.unique_id, payload])
        except OCPPError as error:
            log.warning("CALL %.40s refused: %s", message.action, error)
            frame = _error_frame(message.unique_id, error)
            then = None
        except Exception:
            log.exception("CALL %.40s failed", message.action)
            failed = InternalError(details={"cause": "handling the CALL failed"})
            frame = _error_frame(message.unique_id, failed)
            then = None
        await self._send(frame)
        if then is not None:
            self._spawn(then())  # our own CALLs go out only after the answer (no deadlock)
