"""Fixtures shared by every test layer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest


@pytest.fixture
async def pty_pair(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """Two connected serial ports from socat (raw, no echo): (device side, host side)."""
    a, b = tmp_path / "device", tmp_path / "host"
    proc = await asyncio.create_subprocess_exec(
        "socat",
        f"pty,raw,echo=0,link={a}",
        f"pty,raw,echo=0,link={b}",
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(5.0):
            while not (a.exists() and b.exists()):
                await asyncio.sleep(0.01)
        yield str(a), str(b)
    finally:
        proc.terminate()
        await proc.wait()
