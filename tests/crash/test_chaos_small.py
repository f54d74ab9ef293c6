"""A small run of bench/chaos.py (issue 12): the simulated station as real processes takes
kill -9 of the main and of a satellite, SIGSTOP/SIGCONT, a full disk, malformed CSMS frames,
a CSMS outage and a lost main-satellite link (issue 16) while EVs charge, and comes back every
time with no transaction lost and no energy unbilled beyond the whole-Wh resolution of
meterStart/meterStop."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]


async def test_small_chaos_run_survives_every_fault_and_loses_nothing() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "chaos.py"),
        "--tries",
        "7",
        "--seed",
        "5",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        async with asyncio.timeout(110):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()[-3000:]
    figures = json.loads(out.decode().strip().splitlines()[-1])
    assert figures["tries"] == 7
    assert len(set(figures["faults"])) + len(figures["skipped"]) == 7  # each fault once
    assert len(figures["link_losses_s"]) == 1  # a main-satellite link lost (issue 16)
    assert figures["survived"] == figures["tries"], figures
    assert figures["tx_lost"] == 0, figures
    assert figures["ev_wh"] > 0 and figures["transactions"] >= 2
    assert figures["wh_lost"] <= figures["wh_resolution"], figures
