"""`chargeport diag collect`: the station's diagnostics archive, built locally for a technician.

Reads the main's config: the local board's logs come from `station.state_dir`; satellites are
found the way the main finds them (mDNS by serial, static `address` as fallback) and dialled
with mTLS from `link.pki_dir` unless `link.insecure`. A satellite not found within the timeout
is recorded as missing in the manifest.

On a terminal (or with `--progress`) a rich display shows each board's log bytes as they arrive,
the boards done out of all and an ETA; `--no-progress` (or a pipe) prints only the summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from chargeport import pki
from chargeport.board import BoardSystem
from chargeport.config import MainConfig, load_config
from chargeport.errors import ChargeportError
from main_node.discovery import MdnsLocator, locator_from_config
from main_node.located_board import LocatedBoardSystem
from main_node.progress import DIAGNOSTICS, ProgressTracker, TrackedBoard
from satellite.board_system import LocalBoardSystem
from system_aggregator.diagnostics import collect_archive

__all__ = ["BoardsProgress", "add_arguments", "collect", "parse_time", "run"]

DISCOVERY_WAIT_S = 5.0  # how long to look for satellites over mDNS before collecting


def parse_time(text: str) -> float:
    """Unix seconds or an ISO 8601 time (UTC when no zone is given)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        t = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected unix seconds or ISO 8601, got {text!r}"
        ) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.UTC)
    return t.timestamp()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `collect`."""
    sub = parser.add_subparsers(dest="diag_command", required=True, metavar="ACTION")
    collect = sub.add_parser("collect", help="write the combined diagnostics .tar.gz")
    collect.add_argument("--config", required=True, help="the main board's TOML config")
    collect.add_argument("--out", required=True, help="archive to write (.tar.gz)")
    collect.add_argument("--start", type=parse_time, default=None, help="window start")
    collect.add_argument("--stop", type=parse_time, default=None, help="window end")
    collect.add_argument("--timeout", type=float, default=30.0, help="seconds per board")
    collect.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show progress per board (default: when stdout is a terminal)",
    )


class _BytesColumn(DownloadColumn):
    """Bytes for a board's row; nothing for the boards-done row (its unit is boards)."""

    def render(self, task: Task) -> Text:
        return Text("") if task.fields.get("overall") else super().render(task)


class _SpeedColumn(TransferSpeedColumn):
    def render(self, task: Task) -> Text:
        return Text("") if task.fields.get("overall") else super().render(task)


class BoardsProgress:
    """A `ProgressTracker`'s diagnostics rows as rich bars: bytes, rate, boards done, ETA."""

    def __init__(self, tracker: ProgressTracker, serials: list[str], progress: Progress) -> None:
        self._tracker = tracker
        self._progress = progress
        self._count = len(serials)
        self._overall = progress.add_task(
            f"boards done 0/{self._count}", total=self._count, overall=True
        )
        # A board's log size is not announced: its bar pulses and counts bytes until done.
        self._tasks: dict[str, TaskID] = {s: progress.add_task(s, total=None) for s in serials}

    def update(self) -> None:
        done = 0
        for serial, row in self._tracker.jobs[DIAGNOSTICS].items():
            task = self._tasks.get(serial)
            if task is None:
                task = self._tasks[serial] = self._progress.add_task(serial, total=None)
            total = row.total if row.finished else None
            self._progress.update(
                task, completed=row.done, total=total, description=f"{serial} {row.phase}"
            )
            done += row.finished
        self._progress.update(
            self._overall, completed=done, description=f"boards done {done}/{self._count}"
        )

    def finish(self, manifest: dict[str, Any]) -> None:
        """Boards the archive records as missing never sent a byte: mark them done, missing."""
        for entry in manifest["boards"]:
            if entry["status"] == "missing" and entry["serial"] in self._tasks:
                self._progress.update(
                    self._tasks[entry["serial"]], total=0, description=f"{entry['serial']} missing"
                )
        self._progress.update(
            self._overall,
            completed=self._count,
            description=f"boards done {self._count}/{self._count}",
        )


def run(args: argparse.Namespace) -> int:
    """Collect and print a one-line summary; missing boards make the exit code 1."""
    config = load_config(args.config, MainConfig)
    show = args.progress if args.progress is not None else sys.stdout.isatty()
    console = Console() if show else None
    manifest = asyncio.run(
        collect(config, Path(args.out), args.start, args.stop, args.timeout, console=console)
    )
    boards = manifest["boards"]
    missing = [b["serial"] for b in boards if b["status"] == "missing"]
    print(
        f"wrote {args.out}: {len(boards) - len(missing)} of {len(boards)} boards"
        + (f"; missing: {', '.join(missing)}" if missing else "")
    )
    return 1 if missing else 0


async def collect(
    config: MainConfig,
    out: Path,
    start: float | None,
    stop: float | None,
    timeout_s: float,
    *,
    console: Console | None = None,
) -> dict[str, Any]:
    """Build the archive at `out`; with a `console`, show progress per board on it."""
    local = LocalBoardSystem(
        config.station.serial,
        "main",
        config.station.state_dir,
        [],
        config.firmware.target,
        version=config.station.firmware_version,
        boot=False,  # a technician's tool must not count as a boot (tentative slots!)
    )
    locator = locator_from_config(config)
    credentials = None
    if not config.link.insecure:
        try:
            credentials = pki.channel_credentials(config.link.pki_dir)
        except pki.PkiError as exc:
            raise ChargeportError(str(exc)) from None
    satellites = [
        LocatedBoardSystem(sat.serial, locator, credentials, timeout_s) for sat in config.satellites
    ]
    tracker = ProgressTracker()
    boards: list[BoardSystem] = [TrackedBoard(local, local.serial, tracker, time.monotonic)]
    boards += [TrackedBoard(b, b.serial, tracker, time.monotonic) for b in satellites]
    async with contextlib.AsyncExitStack() as stack:
        if isinstance(locator, MdnsLocator):
            await stack.enter_async_context(locator)
            # Wait until every configured satellite is found, or the timeout: those still
            # missing then are recorded as missing by collect_archive.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(timeout_s, DISCOVERY_WAIT_S)):
                    await locator.wait_report(lambda report: not report.pending)
        for board in satellites:
            stack.push_async_callback(board.aclose)
        staging = out.parent / f".{out.name}.parts"
        view: BoardsProgress | None = None
        if console is not None:
            progress = Progress(
                TextColumn("{task.description:<28}"), BarColumn(), _BytesColumn(),
                _SpeedColumn(), TimeRemainingColumn(), console=console,
            )  # fmt: skip
            view = BoardsProgress(
                tracker, [config.station.serial, *(s.serial for s in satellites)], progress
            )
            stack.callback(tracker.add_listener(view.update))
            stack.enter_context(progress)
        try:
            manifest = await collect_archive(
                boards, out, station=config.station.id, created=time.time(), start=start,
                stop=stop, staging=staging, timeout_s=timeout_s,
            )  # fmt: skip
            if view is not None:
                view.finish(manifest)
            return manifest
        finally:
            shutil.rmtree(staging, ignore_errors=True)
