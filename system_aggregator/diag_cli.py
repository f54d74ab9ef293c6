"""`chargeport diag collect`: the station's diagnostics archive, built locally for a technician.

Reads the main's config: the local board's logs come from `station.state_dir`; satellites are
found the way the main finds them (mDNS by serial, static `address` as fallback) and dialled
with mTLS from `link.pki_dir` unless `link.insecure`. A satellite not found within the timeout
is recorded as missing in the manifest.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import shutil
import time
from pathlib import Path
from typing import Any

from chargeport import pki
from chargeport.board import BoardSystem
from chargeport.config import MainConfig, load_config
from chargeport.errors import ChargeportError
from main_node.discovery import MdnsLocator, locator_from_config
from main_node.located_board import LocatedBoardSystem
from satellite.board_system import LocalBoardSystem
from system_aggregator.diagnostics import collect_archive

__all__ = ["add_arguments", "parse_time", "run"]

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


def run(args: argparse.Namespace) -> int:
    """Collect and print a one-line summary; missing boards make the exit code 1."""
    config = load_config(args.config, MainConfig)
    manifest = asyncio.run(_collect(config, Path(args.out), args.start, args.stop, args.timeout))
    boards = manifest["boards"]
    missing = [b["serial"] for b in boards if b["status"] == "missing"]
    print(
        f"wrote {args.out}: {len(boards) - len(missing)} of {len(boards)} boards"
        + (f"; missing: {', '.join(missing)}" if missing else "")
    )
    return 1 if missing else 0


async def _collect(
    config: MainConfig, out: Path, start: float | None, stop: float | None, timeout_s: float
) -> dict[str, Any]:
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
    boards: list[BoardSystem] = [local, *satellites]
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
        try:
            return await collect_archive(
                boards, out, station=config.station.id, created=time.time(), start=start,
                stop=stop, staging=staging, timeout_s=timeout_s,
            )  # fmt: skip
        finally:
            shutil.rmtree(staging, ignore_errors=True)
