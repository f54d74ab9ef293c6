"""The BoardSystem contract: what can be asked of one board (main or satellite).

`LocalBoardSystem` (this board's firmware slots, logs, clock) and `RemoteBoardSystem` (the
same over gRPC) implement it; the system aggregator composes N of them into one station system.

Firmware is two-phase so that a station ends on one version everywhere: `install_firmware`
streams a signed bundle into the inactive A/B slot (the board verifies it), `activate`
restarts into it tentatively, then the aggregator either `confirm`s every board or
`rollback`s every board.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from chargeport.errors import ChargeportError

__all__ = [
    "BoardError",
    "BoardInfo",
    "BoardSystem",
    "BoardUnavailable",
    "FirmwareAction",
    "FirmwareProgress",
    "FirmwareRejected",
    "FirmwareStage",
    "LogChunk",
    "ResetKind",
]


class FirmwareStage(enum.Enum):
    RECEIVING = "Receiving"
    VERIFYING = "Verifying"
    INSTALLING = "Installing"
    INSTALLED = "Installed"  # in the inactive slot, not yet running
    ACTIVATED = "Activated"  # running tentatively from the new slot
    CONFIRMED = "Confirmed"
    ROLLED_BACK = "RolledBack"
    INVALID_SIGNATURE = "InvalidSignature"
    FAILED = "Failed"


class FirmwareAction(enum.Enum):
    ACTIVATE = "activate"
    CONFIRM = "confirm"
    ROLLBACK = "rollback"


class ResetKind(enum.Enum):
    SOFT = "soft"
    HARD = "hard"


class BoardError(ChargeportError):
    """Base of every BoardSystem error."""


class BoardUnavailable(BoardError):
    """The board cannot be reached."""


class FirmwareRejected(BoardError):
    """The board refused a firmware bundle; `stage` says why (InvalidSignature or Failed)."""

    def __init__(self, stage: FirmwareStage, message: str) -> None:
        super().__init__(message)
        self.stage = stage


@dataclass(frozen=True, slots=True)
class BoardInfo:
    serial: str
    role: str  # "main" | "satellite"
    firmware_version: str
    boot_id: str
    boot_reason: str
    active_slot: str  # "A" | "B"
    time: float  # the board's clock, unix seconds


@dataclass(frozen=True, slots=True)
class FirmwareProgress:
    stage: FirmwareStage
    received: int = 0
    total: int = 0
    version: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class LogChunk:
    name: str  # file name inside the board's folder of a diagnostics archive
    data: bytes
    last: bool  # the last chunk of this file


@runtime_checkable
class BoardSystem(Protocol):
    """One board. Methods raise `BoardError` subclasses."""

    async def info(self) -> BoardInfo: ...

    def install_firmware(
        self, bundle: AsyncIterable[bytes], total_size: int
    ) -> AsyncIterator[FirmwareProgress]:
        """Stream a signed bundle into the inactive slot; yields progress, ends Installed."""
        ...

    async def firmware_control(self, action: FirmwareAction) -> FirmwareProgress: ...

    def fetch_logs(self, start: float | None, stop: float | None) -> AsyncIterator[LogChunk]:
        """This board's log files for the time window, in chunks."""
        ...

    async def reset(self, kind: ResetKind) -> None: ...

    async def set_time(self, unix_time: float) -> float:
        """Set the board clock; returns the offset (board minus given) before setting."""
        ...
