"""Firmware and diagnostics progress per board, for the dashboard (and any other watcher).

`ProgressTracker` is pure (time passed in): `update(job, board, phase, done, total, now)` keeps
one row per (job, board) with bytes, phase and an ETA from the rate since the row's first byte.
`TrackedBoard` wraps one `BoardSystem` at the aggregator's seam and reports into a tracker what
that board alone did: firmware bytes accepted and its stage (OCPP's statuses are station-wide,
this is per board), and diagnostics log bytes fetched. It changes nothing it passes through.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from chargeport.board import (
    BoardInfo,
    BoardSystem,
    FirmwareAction,
    FirmwareProgress,
    FirmwareStage,
    LogChunk,
    ResetKind,
)

__all__ = ["ProgressRow", "ProgressTracker", "TrackedBoard"]

FIRMWARE, DIAGNOSTICS = "firmware", "diagnostics"
_DONE_STAGES = {FirmwareStage.INSTALLED, FirmwareStage.ACTIVATED, FirmwareStage.CONFIRMED}
_FAILED_STAGES = {FirmwareStage.FAILED, FirmwareStage.INVALID_SIGNATURE, FirmwareStage.ROLLED_BACK}


@dataclass(slots=True)
class ProgressRow:
    board: str
    phase: str
    done: int
    total: int  # 0: unknown (diagnostics: log sizes are not announced)
    started: float
    updated: float
    finished: bool = False

    def percent(self) -> float | None:
        if self.finished and self.phase not in {s.value for s in _FAILED_STAGES}:
            return 100.0
        if self.total <= 0:
            return None
        return min(100.0, 100.0 * self.done / self.total)

    def eta_s(self) -> float | None:
        """Seconds left at the mean rate so far; None before there is a rate or a total."""
        if self.finished:
            return 0.0
        elapsed = self.updated - self.started
        if self.total <= 0 or self.done <= 0 or elapsed <= 0:
            return None
        rate = self.done / elapsed
        return max(0.0, (self.total - self.done) / rate)

    def to_json(self) -> dict[str, Any]:
        pct, eta = self.percent(), self.eta_s()
        return {
            "board": self.board,
            "phase": self.phase,
            "bytes": self.done,
            "total": self.total,
            "percent": None if pct is None else round(pct, 1),
            "eta_s": None if eta is None else round(eta, 1),
            "finished": self.finished,
        }


class ProgressTracker:
    """Rows per job and board; listeners hear every change."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, ProgressRow]] = {FIRMWARE: {}, DIAGNOSTICS: {}}
        self.version = 0
        self._listeners: list[Callable[[], None]] = []

    def add_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def start(self, job: str, board: str, now: float, total: int = 0) -> None:
        """A new run for this board: forget its previous row."""
        self.jobs[job][board] = ProgressRow(board, "Starting", 0, total, now, now)
        self._changed()

    def update(
        self,
        job: str,
        board: str,
        phase: str,
        done: int,
        total: int,
        now: float,
        *,
        finished: bool = False,
    ) -> None:
        row = self.jobs[job].get(board)
        if row is None:
            row = self.jobs[job][board] = ProgressRow(board, phase, 0, total, now, now)
        row.phase, row.done, row.total, row.updated = phase, done, total, now
        row.finished = finished
        self._changed()

    def _changed(self) -> None:
        self.version += 1
        for listener in list(self._listeners):
            listener()

    def to_json(self) -> dict[str, list[dict[str, Any]]]:
        return {
            job: [row.to_json() for _, row in sorted(rows.items())]
            for job, rows in self.jobs.items()
        }


class TrackedBoard:
    """A `BoardSystem` that reports its own firmware and diagnostics progress to a tracker."""

    def __init__(
        self,
        inner: BoardSystem,
        name: str,
        tracker: ProgressTracker,
        monotonic: Callable[[], float],
    ) -> None:
        self.inner = inner
        self.serial = getattr(inner, "serial", "") or name
        self._tracker = tracker
        self._monotonic = monotonic

    async def info(self) -> BoardInfo:
        return await self.inner.info()

    async def install_firmware(
        self, bundle: AsyncIterable[bytes], total_size: int
    ) -> AsyncIterator[FirmwareProgress]:
        tracker, name = self._tracker, self.serial
        tracker.start(FIRMWARE, name, self._monotonic(), total_size)
        sent = 0

        async def counted() -> AsyncIterator[bytes]:
            nonlocal sent
            async for chunk in bundle:
                yield chunk
                sent += len(chunk)  # after the board took it: bytes it has, not bytes queued
                tracker.update(FIRMWARE, name, "Receiving", sent, total_size, self._monotonic())

        async for progress in self.inner.install_firmware(counted(), total_size):
            done = progress.stage in _DONE_STAGES or progress.stage in _FAILED_STAGES
            received = progress.received or sent
            tracker.update(
                FIRMWARE, name, progress.stage.value, received, progress.total or total_size,
                self._monotonic(), finished=done,
            )  # fmt: skip
            yield progress

    async def firmware_control(self, action: FirmwareAction) -> FirmwareProgress:
        result = await self.inner.firmware_control(action)
        row = self._tracker.jobs[FIRMWARE].get(self.serial)
        if row is not None:
            self._tracker.update(
                FIRMWARE, self.serial, result.stage.value, row.done, row.total, self._monotonic(),
                finished=True,
            )  # fmt: skip
        return result

    async def fetch_logs(self, start: float | None, stop: float | None) -> AsyncIterator[LogChunk]:
        tracker, name = self._tracker, self.serial
        tracker.start(DIAGNOSTICS, name, self._monotonic())
        got = 0
        try:
            async for chunk in self.inner.fetch_logs(start, stop):
                got += len(chunk.data)
                tracker.update(DIAGNOSTICS, name, "Collecting", got, 0, self._monotonic())
                yield chunk
        except BaseException:
            tracker.update(DIAGNOSTICS, name, "Failed", got, 0, self._monotonic(), finished=True)
            raise
        tracker.update(DIAGNOSTICS, name, "Collected", got, got, self._monotonic(), finished=True)

    async def reset(self, kind: ResetKind) -> None:
        await self.inner.reset(kind)

    async def set_time(self, unix_time: float) -> float:
        return await self.inner.set_time(unix_time)
