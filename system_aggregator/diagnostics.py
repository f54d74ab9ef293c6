"""One diagnostics archive for the station: a folder per board serial plus manifest.json.

Every board streams its logs for the window (BoardSystem.fetch_logs) straight to disk; a board
that cannot be reached, or fails half way, is listed in the manifest as missing (never silently
dropped) and its partial files are left out. The tar.gz is then built from disk in a thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chargeport.board import BoardError, BoardSystem

__all__ = ["BoardLogs", "archive_name", "board_serial", "build_manifest", "collect_archive"]

log = logging.getLogger(__name__)
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class BoardLogs:
    """What was collected from one board."""

    serial: str
    role: str = ""
    firmware_version: str = ""
    boot_id: str = ""
    boot_reason: str = ""
    files: dict[str, tuple[int, str]] = field(default_factory=dict)  # name -> (size, sha256)
    error: str = ""  # non-empty: the board is missing from the archive


def board_serial(board: BoardSystem, index: int) -> str:
    """The serial a board is known by before it answers (Local/RemoteBoardSystem.serial)."""
    serial = getattr(board, "serial", "")
    return str(serial) if serial else f"board-{index}"


def archive_name(station: str, created: float) -> str:
    """`diagnostics-<station>-<UTC time>.tar.gz`."""
    import time

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(created))
    return f"diagnostics-{_SAFE.sub('_', station)}-{stamp}.tar.gz"


def build_manifest(
    station: str,
    created: float,
    start: float | None,
    stop: float | None,
    boards: Sequence[BoardLogs],
) -> dict[str, Any]:
    """The archive's manifest.json content (pure)."""
    return {
        "station": station,
        "created": created,
        "window": {"start": start, "stop": stop},
        "boards": [
            {
                "serial": b.serial,
                "status": "missing" if b.error else "ok",
                **({"error": b.error} if b.error else {}),
                "role": b.role,
                "firmware_version": b.firmware_version,
                "boot_id": b.boot_id,
                "boot_reason": b.boot_reason,
                "files": [
                    {"name": f"{_SAFE.sub('_', b.serial)}/{name}", "size": size, "sha256": digest}
                    for name, (size, digest) in sorted(b.files.items())
                ],
            }
            for b in boards
        ],
    }


async def _collect_board(
    board: BoardSystem,
    serial: str,
    start: float | None,
    stop: float | None,
    folder: Path,
    timeout_s: float,
) -> BoardLogs:
    result = BoardLogs(serial=serial)
    try:
        async with asyncio.timeout(timeout_s):
            info = await board.info()
            result.serial = info.serial or serial
            result.role = info.role
            result.firmware_version = info.firmware_version
            result.boot_id = info.boot_id
            result.boot_reason = info.boot_reason
            await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
            hashes: dict[str, Any] = {}
            sizes: dict[str, int] = {}
            outs: dict[str, io.BufferedWriter] = {}
            try:
                async for chunk in board.fetch_logs(start, stop):
                    name = _SAFE.sub("_", chunk.name) or "log"
                    if name not in outs:
                        outs[name] = (folder / name).open("wb")
                        hashes[name] = hashlib.sha256()
                        sizes[name] = 0
                    outs[name].write(chunk.data)
                    hashes[name].update(chunk.data)
                    sizes[name] += len(chunk.data)
            finally:
                for f in outs.values():
                    f.close()
            result.files = {n: (sizes[n], hashes[n].hexdigest()) for n in outs}
    except (BoardError, TimeoutError) as exc:
        log.warning("diagnostics: board %s missing: %s", serial, exc or "timed out")
        result.error = str(exc) or "timed out"
        result.files = {}
        shutil.rmtree(folder, ignore_errors=True)
    return result


def _write_tar(
    out: Path, staging: Path, manifest: dict[str, Any], boards: Sequence[BoardLogs]
) -> None:
    data = json.dumps(manifest, indent=2).encode()
    # Every board's logs: readable by this user only (0600 from the first byte).
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when `out` already existed with a wider mode
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        info.mtime = int(manifest["created"])
        tar.addfile(info, io.BytesIO(data))
        for b in boards:
            folder = _SAFE.sub("_", b.serial)
            if b.error:
                continue
            # An empty folder entry keeps a board with no log lines in the window visible.
            entry = tarfile.TarInfo(folder)
            entry.type = tarfile.DIRTYPE
            entry.mode = 0o755
            entry.mtime = info.mtime
            tar.addfile(entry)
            for name in sorted(b.files):
                tar.add(staging / folder / name, arcname=f"{folder}/{name}")


async def collect_archive(
    boards: Sequence[BoardSystem],
    out: Path,
    *,
    station: str,
    created: float,
    start: float | None,
    stop: float | None,
    staging: Path,
    timeout_s: float = 120.0,
) -> dict[str, Any]:
    """Fetch every board's logs concurrently and write the tar.gz; returns the manifest."""
    serials = [board_serial(b, i) for i, b in enumerate(boards)]
    async with asyncio.TaskGroup() as tg:
        tasks = [
            tg.create_task(
                _collect_board(b, s, start, stop, staging / _SAFE.sub("_", s), timeout_s)
            )
            for b, s in zip(boards, serials, strict=True)
        ]
    results = [t.result() for t in tasks]
    for r, s in zip(results, serials, strict=True):
        if r.serial != s and not r.error:  # the board calls itself differently: use its name
            (staging / _SAFE.sub("_", s)).rename(staging / _SAFE.sub("_", r.serial))
    manifest = build_manifest(station, created, start, stop, results)
    await asyncio.to_thread(_write_tar, out, staging, manifest, results)
    return manifest
