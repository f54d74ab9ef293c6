"""Discovery across network namespaces joined by a bridge (run as root): the main's locator in
one namespace, satellites in others; a satellite is renumbered and followed (RFC 6762 10.2)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from discovery_kit import ROOT, STEP_TIMEOUT_S, AdvertiserProc
from netns import NetnsLab, NetnsUnavailable

pytestmark = [pytest.mark.integration, pytest.mark.root]

Factory = Callable[..., AdvertiserProc]
LOCATOR = str(ROOT / "tests" / "discovery" / "locator_proc.py")


@pytest.fixture
def lab() -> Iterator[NetnsLab]:
    """main 10.231.0.1, sat1 .11, sat2 .12 on one bridge; all removed even on failure."""
    lab = NetnsLab()
    try:
        lab.open()
    except (NetnsUnavailable, FileNotFoundError) as exc:
        pytest.skip(f"network namespaces unavailable (needs root and iproute2): {exc}")
    try:
        lab.add_host("main", "10.231.0.1/24")
        lab.add_host("sat1", "10.231.0.11/24")
        lab.add_host("sat2", "10.231.0.12/24")
        yield lab
    finally:
        lab.close()


async def next_address(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), STEP_TIMEOUT_S)
    assert line, "locator process exited"
    event: dict[str, Any] = json.loads(line)
    return event


async def test_discover_across_bridge_and_follow_renumbering(
    lab: NetnsLab, advertisers: Factory, unique: Callable[[str], str]
) -> None:
    s1, s2 = unique("N1"), unique("N2")
    locator = await asyncio.create_subprocess_exec(
        *lab.exec_prefix("main"),
        sys.executable,
        LOCATOR,
        "--expect",
        s1,
        "--expect",
        s2,
        "--interface",
        "all",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        sat1 = advertisers(s1, 50201, "--interface", "all", prefix=lab.exec_prefix("sat1"))
        sat2 = advertisers(s2, 50202, "--interface", "all", prefix=lab.exec_prefix("sat2"))
        await asyncio.gather(sat1.start(), sat2.start())
        seen: dict[str, tuple[str, int]] = {}
        while len(seen) < 2:
            event = await next_address(locator)
            seen[event["serial"]] = tuple(event["address"])
        assert seen == {s1: ("10.231.0.11", 50201), s2: ("10.231.0.12", 50202)}

        lab.move("sat1", "10.231.0.11/24", "10.231.0.21/24")
        await sat1.update()  # the board notices its new address and re-announces
        event = await next_address(locator)
        assert (event["serial"], tuple(event["address"])) == (s1, ("10.231.0.21", 50201))
    finally:
        assert locator.stdin is not None
        locator.stdin.close()
        try:
            await asyncio.wait_for(locator.wait(), STEP_TIMEOUT_S)
        except TimeoutError:
            locator.kill()
            await locator.wait()


async def test_shipped_wildcard_advertises_the_real_address_and_discover_finds_it(
    lab: NetnsLab, advertisers: Factory, unique: Callable[[str], str]
) -> None:
    """`mdns_interfaces = ["0.0.0.0"]` (examples/satellite.toml) publishes the board's LAN
    address, never 0.0.0.0; `chargeport discover` with no flags browses every interface."""
    serial = unique("W1")
    sat = advertisers(serial, 50211, "--interface", "0.0.0.0", prefix=lab.exec_prefix("sat1"))
    await sat.start()
    proc = await asyncio.create_subprocess_exec(
        *lab.exec_prefix("main"),
        str(ROOT / ".venv" / "bin" / "chargeport"),
        "discover",
        "--json",
        "--timeout",
        "3",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    out, err = await asyncio.wait_for(proc.communicate(), STEP_TIMEOUT_S)
    assert proc.returncode == 0, err.decode()
    (board,) = [b for b in json.loads(out) if b["serial"] == serial]
    assert (board["address"], board["port"], board["unroutable"]) == ("10.231.0.11", 50211, "")
    assert "0.0.0.0" not in board["addresses"]


async def test_discover_marks_a_board_that_advertises_loopback_on_the_lan(
    lab: NetnsLab, advertisers: Factory, unique: Callable[[str], str]
) -> None:
    """A board told to advertise 127.0.0.1 on a real network is marked, with the fix."""
    serial = unique("L1")
    prefix = lab.exec_prefix("sat1")
    sat = advertisers(serial, 50212, "--interface", "all", "--address", "127.0.0.1", prefix=prefix)
    await sat.start()
    proc = await asyncio.create_subprocess_exec(
        *lab.exec_prefix("main"),
        str(ROOT / ".venv" / "bin" / "chargeport"),
        "discover",
        "--timeout",
        "3",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), STEP_TIMEOUT_S)
    assert proc.returncode == 1
    assert "127.0.0.1 (unroutable)" in out.decode()
    assert f"board {serial} advertises 127.0.0.1 (a loopback address" in err.decode()
