"""A satellite's BoardSystem over the proto `Board` service; gRPC errors map to board errors."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

import grpc

from chargeport.board import (
    BoardError,
    BoardInfo,
    BoardUnavailable,
    FirmwareAction,
    FirmwareProgress,
    FirmwareRejected,
    FirmwareStage,
    LogChunk,
    ResetKind,
)
from chargeport.v1 import link_pb2 as pb
from chargeport.v1 import link_pb2_grpc

__all__ = ["RemoteBoardSystem", "encode_firmware_data", "map_rpc_error"]

INSTALL_FIRMWARE = "/chargeport.v1.Board/InstallFirmware"
# FirmwareChunk.data is field 2, wire type 2 (length-delimited): tag byte (2 << 3) | 2.
_DATA_TAG = b"\x12"

_UNAVAILABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
}


def map_rpc_error(exc: grpc.aio.AioRpcError, serial: str) -> BoardError:
    """The board error for a failed call (see satellite/board_service.py for the codes)."""
    code = exc.code()
    text = f"board {serial}: {exc.details() or code.name}"
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return FirmwareRejected(FirmwareStage.INVALID_SIGNATURE, text)
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION):
        return FirmwareRejected(FirmwareStage.FAILED, text)
    if code in _UNAVAILABLE:
        return BoardUnavailable(text)
    return BoardError(text)


def encode_firmware_data(data: bytes) -> bytes:
    """`FirmwareChunk(data=data).SerializeToString()`, without protobuf's cost.

    upb (protobuf 7) takes ~1.5 ms to serialise a 1 MiB bytes field, one concatenation ~0.05 ms;
    once per chunk per board that was a third of the main's CPU in a 3-board rollout
    (bench/firmware.py). The wire form is a tag, a base-128 varint length, then the bytes
    (protobuf encoding guide, "Length-Delimited Records"); tests/aggregator checks it against
    SerializeToString.
    """
    n = len(data)
    length = bytearray()
    while n > 0x7F:
        length.append(n & 0x7F | 0x80)
        n >>= 7
    length.append(n)
    return b"".join((_DATA_TAG, length, data))


class RemoteBoardSystem:
    """One satellite board reached over `channel` (owned by the caller)."""

    def __init__(self, channel: grpc.aio.Channel, serial: str, timeout_s: float = 10.0) -> None:
        self.serial = serial
        self._stub = link_pb2_grpc.BoardStub(channel)  # type: ignore[no-untyped-call]
        # InstallFirmware with requests already encoded (no request_serializer: bytes as-is).
        self._install = channel.stream_stream(
            INSTALL_FIRMWARE, response_deserializer=pb.FirmwareProgress.FromString
        )
        self._timeout = timeout_s

    async def info(self) -> BoardInfo:
        try:
            i = await self._stub.GetInfo(pb.Empty(), timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise map_rpc_error(exc, self.serial) from None
        return BoardInfo(
            serial=i.serial, role=i.role, firmware_version=i.firmware_version,
            boot_id=i.boot_id, boot_reason=i.boot_reason, active_slot=i.active_slot, time=i.time,
        )  # fmt: skip

    async def install_firmware(
        self, bundle: AsyncIterable[bytes], total_size: int
    ) -> AsyncIterator[FirmwareProgress]:
        """Stream the bundle; yields the board's progress reports, ends Installed."""

        async def requests() -> AsyncIterator[bytes]:
            yield pb.FirmwareChunk(total_size=total_size).SerializeToString()
            async for data in bundle:
                yield encode_firmware_data(data)

        call = self._install(requests())
        try:
            async for p in call:
                yield FirmwareProgress(
                    FirmwareStage(p.stage), p.received, p.total, p.version, p.message
                )
        except grpc.aio.AioRpcError as exc:
            raise map_rpc_error(exc, self.serial) from None
        finally:
            call.cancel()  # no-op once finished; stops the upload if our consumer went away

    async def firmware_control(self, action: FirmwareAction) -> FirmwareProgress:
        try:
            p = await self._stub.FirmwareControl(
                pb.FirmwareAction(action=action.value), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise map_rpc_error(exc, self.serial) from None
        return FirmwareProgress(FirmwareStage(p.stage), p.received, p.total, p.version, p.message)

    async def fetch_logs(self, start: float | None, stop: float | None) -> AsyncIterator[LogChunk]:
        call = self._stub.FetchLogs(pb.LogRequest(start=start or 0.0, stop=stop or 0.0))
        try:
            async for c in call:
                yield LogChunk(c.name, c.data, c.last)
        except grpc.aio.AioRpcError as exc:
            raise map_rpc_error(exc, self.serial) from None
        finally:
            call.cancel()

    async def reset(self, kind: ResetKind) -> None:
        try:
            await self._stub.Reset(pb.ResetRequest(kind=kind.value), timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise map_rpc_error(exc, self.serial) from None

    async def set_time(self, unix_time: float) -> float:
        try:
            reply = await self._stub.SetTime(
                pb.SetTimeRequest(time=unix_time), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise map_rpc_error(exc, self.serial) from None
        offset: float = reply.offset_s
        return offset
