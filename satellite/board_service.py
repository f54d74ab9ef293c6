"""The proto `Board` service over any `BoardSystem`; board errors become gRPC status codes.

Status codes (the client in main_node/remote_board.py maps them back):
    PERMISSION_DENIED   firmware not signed by a trusted key (FirmwareStage.InvalidSignature)
    INVALID_ARGUMENT    bad bundle (corrupt, truncated, wrong target) or a bad request field
    FAILED_PRECONDITION firmware action not possible now (nothing staged, install running)
    UNAVAILABLE         the board cannot do it now
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, NoReturn

import grpc

from chargeport.board import (
    BoardError,
    BoardSystem,
    BoardUnavailable,
    FirmwareAction,
    FirmwareProgress,
    FirmwareRejected,
    FirmwareStage,
    ResetKind,
)
from chargeport.security_log import INVALID_BOARD_TIME, security_event
from chargeport.v1 import link_pb2 as pb
from chargeport.v1 import link_pb2_grpc
from satellite.board_system import check_board_time

__all__ = ["BoardServicer", "progress_to_pb"]

DRAIN_S = 2.0  # how long a refused upload is read on before its status is sent


def progress_to_pb(p: FirmwareProgress) -> pb.FirmwareProgress:
    """The wire form of a progress report."""
    return pb.FirmwareProgress(
        stage=p.stage.value, received=p.received, total=p.total, version=p.version,
        message=p.message,
    )  # fmt: skip


async def _abort(
    context: grpc.aio.ServicerContext[Any, Any], exc: Exception, install: bool
) -> NoReturn:
    if isinstance(exc, FirmwareRejected):
        if exc.stage is FirmwareStage.INVALID_SIGNATURE:
            code = grpc.StatusCode.PERMISSION_DENIED
        elif install:
            code = grpc.StatusCode.INVALID_ARGUMENT
        else:
            code = grpc.StatusCode.FAILED_PRECONDITION
    elif isinstance(exc, BoardUnavailable):
        code = grpc.StatusCode.UNAVAILABLE
    elif isinstance(exc, ValueError):
        code = grpc.StatusCode.INVALID_ARGUMENT
    else:
        code = grpc.StatusCode.INTERNAL
    await context.abort(code, str(exc) or type(exc).__name__)
    raise AssertionError("abort returned")  # pragma: no cover


class BoardServicer(link_pb2_grpc.BoardServicer):
    """Serves one board's BoardSystem to the main."""

    def __init__(self, board_system: BoardSystem) -> None:
        self._board = board_system

    async def GetInfo(
        self, request: pb.Empty, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.BoardInfo:
        try:
            i = await self._board.info()
        except BoardError as exc:
            await _abort(context, exc, install=False)
        return pb.BoardInfo(
            serial=i.serial, role=i.role, firmware_version=i.firmware_version,
            boot_id=i.boot_id, boot_reason=i.boot_reason, active_slot=i.active_slot, time=i.time,
        )  # fmt: skip

    async def InstallFirmware(
        self,
        request_iterator: AsyncIterator[pb.FirmwareChunk],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.FirmwareProgress]:
        first = await anext(request_iterator, None)
        if first is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty firmware stream")
            return

        async def chunks() -> AsyncIterable[bytes]:
            if first.data:
                yield first.data
            async for msg in request_iterator:
                yield msg.data

        try:
            async for progress in self._board.install_firmware(chunks(), first.total_size):
                yield progress_to_pb(progress)
        except BoardError as exc:
            # Refused mid-stream: read what the main is still sending (bounded) before the
            # status, or the main's writer races the trailers and sees "Internal error from
            # Core" instead of the reason (seen in CI under load).
            with contextlib.suppress(Exception):
                async with asyncio.timeout(DRAIN_S):
                    async for _ in request_iterator:
                        pass
            await _abort(context, exc, install=True)

    async def FirmwareControl(
        self, request: pb.FirmwareAction, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.FirmwareProgress:
        try:
            action = FirmwareAction(request.action)
            return progress_to_pb(await self._board.firmware_control(action))
        except (BoardError, ValueError) as exc:
            await _abort(context, exc, install=False)

    async def FetchLogs(
        self, request: pb.LogRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.LogChunk]:
        start = request.start or None  # 0 = open end (proto3 has no presence for doubles)
        stop = request.stop or None
        try:
            async for chunk in self._board.fetch_logs(start, stop):
                yield pb.LogChunk(name=chunk.name, data=chunk.data, last=chunk.last)
        except BoardError as exc:
            await _abort(context, exc, install=False)

    async def Reset(
        self, request: pb.ResetRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.Empty:
        try:
            await self._board.reset(ResetKind(request.kind))
        except (BoardError, ValueError) as exc:
            await _abort(context, exc, install=False)
        return pb.Empty()

    async def SetTime(
        self, request: pb.SetTimeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.SetTimeReply:
        try:
            check_board_time(request.time)  # before the board: NaN, inf, 1e18 never reach it
        except ValueError as exc:
            security_event(INVALID_BOARD_TIME, f"SetTime from {context.peer()}: {exc}")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            offset = await self._board.set_time(request.time)
        except (BoardError, ValueError) as exc:
            await _abort(context, exc, install=False)
        return pb.SetTimeReply(offset_s=offset)
