"""Discovery test kit: advertiser processes driven over stdin, shared constants."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

__all__ = ["ADVERTISE", "ROOT", "STEP_TIMEOUT_S", "AdvertiserProc"]

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
ADVERTISE = str(HERE / "advertise_proc.py")
STEP_TIMEOUT_S = 15.0  # generous: a bound on a hang, not a timing assertion


class AdvertiserProc:
    """One `advertise_proc.py` child; `start` waits for READY, `stop` waits for the goodbye."""

    def __init__(self, serial: str, port: int, *, prefix: list[str], extra: list[str]) -> None:
        self.serial = serial
        self.port = port
        self.name = ""
        self._argv = [
            *prefix,
            sys.executable,
            ADVERTISE,
            "--serial",
            serial,
            "--port",
            str(port),
            *extra,
        ]
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> AdvertiserProc:
        self.proc = await asyncio.create_subprocess_exec(
            *self._argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        line = await self._line()
        assert line.startswith("READY "), line
        self.name = line.split()[1]
        return self

    async def _line(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), STEP_TIMEOUT_S)
        return raw.decode().strip()

    async def update(self, **fields: object) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"update": fields}) + "\n").encode())
        await self.proc.stdin.drain()
        assert await self._line() == "UPDATED"

    async def stop(self) -> int:
        """Close stdin (the child withdraws and exits); return its exit code."""
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
        try:
            return await asyncio.wait_for(proc.wait(), STEP_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            return await proc.wait()
