"""The 2.0.1 RPC seam on bad input (OCPP-J 2.0.1 section 4.3 error codes): every CALL gets one
answer, a frame that cannot be answered is dropped, nothing raises. The seam's `send` is faked
(a unit test of the layer above it); the live path is covered by the strict-peer tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from ocpp.v201 import call_result

from main_node.ocpp.framing import MAX_FRAME_BYTES
from main_node.ocpp201.rpc import Answer, Rpc


async def _run(frames: list[str | bytes]) -> tuple[list[Any], list[str]]:
    sent: list[str] = []
    started: list[str] = []

    async def send(text: str) -> None:
        assert not started, "work after the answer began before the answer was sent"
        sent.append(text)

    async def heartbeat(_req: Any) -> Any:
        return call_result.Heartbeat(current_time="2024-01-01T00:00:00Z")

    async def clear_cache(_req: Any) -> Any:
        async def then() -> None:
            started.append("after")

        return Answer(call_result.ClearCache(status="Accepted"), then)

    async def broken(_req: Any) -> Any:
        raise RuntimeError("bug")

    tasks: set[asyncio.Task[None]] = set()

    def spawn(coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        tasks.add(task)

    rpc = Rpc(
        send,
        {"Heartbeat": heartbeat, "ClearCache": clear_cache, "GetLocalListVersion": broken},
        spawn,
    )
    for frame in frames:
        await rpc.route(frame)
    await asyncio.gather(*tasks)
    return [json.loads(s) for s in sent], started


async def _answers(frames: list[str | bytes]) -> list[Any]:
    return (await _run(frames))[0]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('[2,"a","Heartbeat",{}]', None),
        ('[2,"a","Heartbeat",{"x":1}]', "FormatViolation"),  # additionalProperties
        ('[2,"a","GetVariables",{}]', "NotSupported"),  # known 2.0.1 action, not served
        ('[2,"a","FlyToTheMoon",{}]', "NotImplemented"),
        ('[2,"a","ClearCache",{"customData":{"vendorId":5}}]', "TypeConstraintViolation"),
        ('[2,"a","ClearCache",{"customData":{}}]', "OccurrenceConstraintViolation"),
        ('[2,"a","ClearCache",[]]', "FormatViolation"),
        ('[2,"a","ClearCache",{"n":1e400}]', "PropertyConstraintViolation"),
        ('[2,"a","ClearCache",{"n":99999999999999}]', "TypeConstraintViolation"),
        ('[2,"a","Heartbeat"]', "RpcFrameworkError"),
        ('[7,"a","Heartbeat",{}]', "MessageTypeNotSupported"),
        ('[2,"a","GetLocalListVersion",{}]', "InternalError"),
        # the schema names date-time formats without checking them; we do
        (
            '[2,"a","ClearCache",{"customData":{"vendorId":"v","expiryDateTime":"soon"}}]',
            "PropertyConstraintViolation",
        ),
        (
            '[2,"a","ClearCache",{"customData":{"vendorId":"v","validFrom":"2024-13-45"}}]',
            "PropertyConstraintViolation",
        ),
    ],
)
async def test_call_answered_with_the_2_0_1_code_ocppj_4_3(frame: str, code: str | None) -> None:
    (answer,) = await _answers([frame])
    if code is None:
        assert answer[0] == 3
    else:
        assert answer[0] == 4 and answer[1] == "a" and answer[2] == code


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        b"\xff\xfe",
        "[" * 100 + "]" * 100,
        '[2,"' + "x" * 37 + '","Heartbeat",{}]',
        "[2]",
        '{"a":1}',
        '[3,"a"]',
        "x" * (MAX_FRAME_BYTES + 1),
        '[3,"zz",{}]',  # an answer to nothing we sent
    ],
)
async def test_unanswerable_frame_is_dropped_without_raising(frame: str | bytes) -> None:
    assert await _answers([frame]) == []


async def test_work_after_the_answer_starts_only_once_it_is_sent() -> None:
    answers, started = await _run(['[2,"a","ClearCache",{}]'])
    assert answers == [[3, "a", {"status": "Accepted"}]]
    assert started == ["after"]
