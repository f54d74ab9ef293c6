"""`chargeport diag collect`: the station's diagnostics archive, built locally for a technician.

Reads the main's config: the local board's logs come from `station.state_dir`; satellites are
dialled at their static `address` (mTLS from `link.pki_dir` unless `link.insecure`). Satellites
known only over mDNS are recorded as missing in the manifest (no discovery here).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

from chargeport.board import BoardInfo, BoardSystem, BoardUnavailable, LogChunk
from chargeport.config import MainConfig, load_config
from chargeport.errors import ChargeportError
from main_node.remote_board import RemoteBoardSystem
from satellite.board_system import LocalBoardSystem
from system_aggregator.diagnostics import collect_archive

__all__ = ["add_arguments", "parse_time", "run"]


class _Unlocated:
    """A configured satellite without a static address: recorded as missing."""

    def __init__(self, serial: str) -> None:
        self.serial = serial

    async def info(self) -> BoardInfo:
        raise BoardUnavailable(f"{self.serial}: no static address (mDNS only)")

    async def fetch_logs(self, start: float | None, stop: float | None) -> AsyncIterator[LogChunk]:
        raise BoardUnavailable(f"{self.serial}: no static address (mDNS only)")
        yield  # pragma: no cover  (makes this an async generator)


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
    channels: list[grpc.aio.Channel] = []
    boards: list[BoardSystem] = [local]
    try:
        for sat in config.satellites:
            if not sat.address:
                boards.append(_Unlocated(sat.serial))  # type: ignore[arg-type]
                continue
            channel = _channel(config, sat.address, sat.serial)
            channels.append(channel)
            boards.append(RemoteBoardSystem(channel, sat.serial, timeout_s=timeout_s))
        staging = out.parent / f".{out.name}.parts"
        try:
            return await collect_archive(
                boards, out, station=config.station.id, created=time.time(), start=start,
                stop=stop, staging=staging, timeout_s=timeout_s,
            )  # fmt: skip
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        for channel in channels:
            await channel.close()


def _channel(config: MainConfig, address: str, serial: str) -> grpc.aio.Channel:
    if config.link.insecure:
        return grpc.aio.insecure_channel(address)
    from chargeport import pki

    try:
        creds = pki.channel_credentials(config.link.pki_dir)
    except pki.PkiError as exc:
        raise ChargeportError(str(exc)) from None
    return grpc.aio.secure_channel(address, creds, options=pki.channel_options(serial))
