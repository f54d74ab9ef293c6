"""What the main's OCPP layer asks of the station as a whole (the aggregator implements it).

OCPP wire details stay in main_node: the aggregator reports statuses as the OCPP 1.6 status
strings through the given callbacks, and main_node sends the notifications.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from chargeport.board import ResetKind

__all__ = ["StationSystem", "StatusCallback"]

# Called with an OCPP 1.6 FirmwareStatus / DiagnosticsStatus value, once per change.
StatusCallback = Callable[[str], Awaitable[None]]


class StationSystem(Protocol):
    async def update_firmware(
        self,
        location: str,
        retrieve_date: float,
        retries: int,
        retry_interval_s: float,
        on_status: StatusCallback,
    ) -> None:
        """Download once, verify, roll out to every board; statuses: Downloading, Downloaded,
        Installing, Installed | DownloadFailed | InstallationFailed | InvalidSignature."""
        ...

    async def get_diagnostics(
        self,
        location: str,
        start: float | None,
        stop: float | None,
        retries: int,
        retry_interval_s: float,
        on_status: StatusCallback,
    ) -> str:
        """Start collecting + uploading in the background; returns the archive file name at once.
        Statuses: Uploading, Uploaded | UploadFailed."""
        ...

    async def reset(self, kind: ResetKind) -> None:
        """Satellites first, then the local board."""
        ...

    async def set_time(self, unix_time: float) -> dict[str, float]:
        """Set every board's clock; returns serial -> offset seconds before setting."""
        ...
