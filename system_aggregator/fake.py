"""A `StationSystem` with no boards, for tests above the seam (main_node's OCPP routing).

Statuses are scripted: `update_firmware` reports `firmware_statuses` in order, and
`get_diagnostics` returns `diagnostics_file` and reports `diagnostics_statuses` from a task it
owns. `diagnostics_status_first` makes it report the first status *before* returning the file
name, as a fast aggregator may (`return_delay_s` later): the caller must still answer
GetDiagnostics first. Every call lands in `calls`; `on_reset` runs inside `reset`, so a test
sees what had happened by then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from chargeport.board import ResetKind
from chargeport.tasks import OwnedTasks
from system_aggregator.api import StatusCallback

__all__ = ["FakeStationSystem"]

log = logging.getLogger(__name__)

FIRMWARE_OK = ("Downloading", "Downloaded", "Installing", "Installed")
DIAGNOSTICS_OK = ("Uploading", "Uploaded")


class FakeStationSystem:
    """Implements `system_aggregator.api.StationSystem` from a script."""

    def __init__(
        self,
        *,
        firmware_statuses: Sequence[str] = FIRMWARE_OK,
        diagnostics_statuses: Sequence[str] = DIAGNOSTICS_OK,
        diagnostics_file: str = "diagnostics-CP-1.tar.gz",
        diagnostics_status_first: bool = False,
        return_delay_s: float = 0.0,
        time_offsets: dict[str, float] | None = None,
        on_reset: Callable[[ResetKind], None] | None = None,
    ) -> None:
        self.firmware_statuses = tuple(firmware_statuses)
        self.diagnostics_statuses = tuple(diagnostics_statuses)
        self.diagnostics_file = diagnostics_file
        self.diagnostics_status_first = diagnostics_status_first
        self.return_delay_s = return_delay_s
        self.time_offsets = dict(time_offsets or {"SER-1": 0.0})
        self.on_reset = on_reset
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        self.resets: list[ResetKind] = []
        self._tasks = OwnedTasks(log)

    async def update_firmware(
        self,
        location: str,
        retrieve_date: float,
        retries: int,
        retry_interval_s: float,
        on_status: StatusCallback,
    ) -> None:
        """Report every scripted firmware status, in order."""
        self.calls.append(("update_firmware", (location, retrieve_date, retries, retry_interval_s)))
        for status in self.firmware_statuses:
            await on_status(status)
            await asyncio.sleep(0)  # statuses arrive one loop turn apart, as real ones would

    async def get_diagnostics(
        self,
        location: str,
        start: float | None,
        stop: float | None,
        retries: int,
        retry_interval_s: float,
        on_status: StatusCallback,
    ) -> str:
        """Return the file name; the scripted statuses follow from an owned task."""
        self.calls.append(("get_diagnostics", (location, start, stop, retries, retry_interval_s)))
        statuses = list(self.diagnostics_statuses)
        if self.diagnostics_status_first and statuses:
            await on_status(statuses.pop(0))
            # Long enough for a careless caller to have sent that status already.
            await asyncio.sleep(self.return_delay_s)
        self._tasks.spawn(self._report(statuses, on_status), "fake-diagnostics-status")
        return self.diagnostics_file

    async def _report(self, statuses: list[str], on_status: StatusCallback) -> None:
        for status in statuses:
            await on_status(status)
            await asyncio.sleep(0)

    async def reset(self, kind: ResetKind) -> None:
        """Record the reset (the real one resets satellites first, then the local board)."""
        self.calls.append(("reset", (kind,)))
        if self.on_reset is not None:
            self.on_reset(kind)
        self.resets.append(kind)

    async def set_time(self, unix_time: float) -> dict[str, float]:
        """Return the scripted offsets."""
        self.calls.append(("set_time", (unix_time,)))
        return dict(self.time_offsets)

    async def wait_idle(self) -> None:
        """Wait for the diagnostics status tasks to finish."""
        await self._tasks.wait()

    async def aclose(self) -> None:
        """Cancel what is still running."""
        await self._tasks.cancel_all()
