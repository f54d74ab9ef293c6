"""A satellite's BoardSystem wherever the locator says it is now.

`RemoteBoardSystem` speaks over one fixed channel; a satellite found by mDNS may move, so this
wrapper dials the current address on each call and re-dials only when the address changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

import grpc

from chargeport.board import (
    BoardInfo,
    BoardUnavailable,
    FirmwareAction,
    FirmwareProgress,
    LogChunk,
    ResetKind,
)
from chargeport.pki import channel_options
from main_node.locator import Address, Locator
from main_node.remote_board import RemoteBoardSystem

__all__ = ["LocatedBoardSystem"]


class LocatedBoardSystem:
    """`BoardSystem` of satellite `serial`, over mTLS unless `credentials` is None."""

    def __init__(
        self,
        serial: str,
        locator: Locator,
        credentials: grpc.ChannelCredentials | None,
        timeout_s: float = 10.0,
    ) -> None:
        self.serial = serial
        self._locator = locator
        self._credentials = credentials
        self._timeout_s = timeout_s
        self._address: Address | None = None
        self._channel: grpc.aio.Channel | None = None
        self._board: RemoteBoardSystem | None = None

    async def _remote(self) -> RemoteBoardSystem:
        address = self._locator.current(self.serial)
        if address is None:
            raise BoardUnavailable(f"board {self.serial} has not been seen on the network")
        if address != self._address or self._board is None:
            await self.aclose()
            target = f"{address[0]}:{address[1]}"
            if self._credentials is None:
                self._channel = grpc.aio.insecure_channel(target)
            else:
                self._channel = grpc.aio.secure_channel(
                    target, self._credentials, options=channel_options(self.serial)
                )
            self._address = address
            self._board = RemoteBoardSystem(self._channel, self.serial, self._timeout_s)
        return self._board

    async def aclose(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        self._channel = None
        self._board = None

    async def info(self) -> BoardInfo:
        return await (await self._remote()).info()

    async def install_firmware(
        self, bundle: AsyncIterable[bytes], total_size: int
    ) -> AsyncIterator[FirmwareProgress]:
        remote = await self._remote()
        async for progress in remote.install_firmware(bundle, total_size):
            yield progress

    async def firmware_control(self, action: FirmwareAction) -> FirmwareProgress:
        return await (await self._remote()).firmware_control(action)

    async def fetch_logs(self, start: float | None, stop: float | None) -> AsyncIterator[LogChunk]:
        remote = await self._remote()
        async for chunk in remote.fetch_logs(start, stop):
            yield chunk

    async def reset(self, kind: ResetKind) -> None:
        await (await self._remote()).reset(kind)

    async def set_time(self, unix_time: float) -> float:
        return await (await self._remote()).set_time(unix_time)
