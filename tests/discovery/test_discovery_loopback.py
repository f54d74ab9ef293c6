"""Discovery between processes on 127.0.0.1: real zeroconf advertisers in child processes and a
real MdnsLocator here (RFC 6762 mDNS, RFC 6763 DNS-SD)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from discovery_kit import ROOT, STEP_TIMEOUT_S, AdvertiserProc

import chargeport
from main_node.discovery import DiscoveryReport, MdnsLocator
from main_node.locator import Address

pytestmark = pytest.mark.integration

Factory = Callable[..., AdvertiserProc]


@pytest.fixture
async def make_locator() -> AsyncIterator[Callable[..., MdnsLocator]]:
    """Locators on 127.0.0.1 with shrunk timing constants; stopped afterwards."""
    made: list[MdnsLocator] = []

    def make(expected: dict[str, int], **kwargs: Any) -> MdnsLocator:
        kwargs.setdefault("never_seen_after_s", 0.5)
        kwargs.setdefault("refresh_s", 0.1)
        loc = MdnsLocator(expected, interfaces=["127.0.0.1"], **kwargs)
        made.append(loc)
        return loc

    yield make
    for loc in made:
        await loc.stop()


async def until(loc: MdnsLocator, pred: Callable[[DiscoveryReport], bool]) -> DiscoveryReport:
    return await asyncio.wait_for(loc.wait_report(pred), STEP_TIMEOUT_S)


async def moved(loc: MdnsLocator, serial: str, old: Address | None) -> Address:
    return await asyncio.wait_for(loc.wait_change(serial, old), STEP_TIMEOUT_S)


async def test_found_by_serial_with_txt_rfc6763_6(
    advertisers: Factory, make_locator: Callable[..., MdnsLocator], unique: Callable[[str], str]
) -> None:
    serial = unique("A")
    loc = make_locator({serial: 2})
    await loc.start()
    await advertisers(serial, 50101, "--boot", "boot-1", "--fw", "3.1.4", "--cooperating").start()
    assert await moved(loc, serial, None) == ("127.0.0.1", 50101)
    (board,) = [b for b in loc.report().boards if b.serial == serial]
    assert (board.instance, board.role, board.firmware_version, board.boot_id) == (
        serial,
        "satellite",
        "3.1.4",
        "boot-1",
    )
    assert board.protocol_version == chargeport.PROTOCOL_VERSION
    assert loc.report().pending == [] and loc.report().never_seen == []


async def test_reannounce_on_boot_id_change_and_port_move_rfc6762_8_4(
    advertisers: Factory, make_locator: Callable[..., MdnsLocator], unique: Callable[[str], str]
) -> None:
    serial = unique("B")
    loc = make_locator({serial: 2})
    await loc.start()
    adv = await advertisers(serial, 50111, "--cooperating").start()
    first = await moved(loc, serial, None)
    await adv.update(boot_id="boot-2", firmware_version="2.0.0")
    report = await until(
        loc, lambda r: any(b.serial == serial and b.boot_id == "boot-2" for b in r.boards)
    )
    (board,) = [b for b in report.boards if b.serial == serial]
    assert board.firmware_version == "2.0.0"
    assert loc.current(serial) == first  # a new boot id alone is not a new address
    await adv.update(port=50112)
    assert await moved(loc, serial, first) == ("127.0.0.1", 50112)


async def test_withdraw_on_stop_sends_goodbye_rfc6762_10_1(
    advertisers: Factory, make_locator: Callable[..., MdnsLocator], unique: Callable[[str], str]
) -> None:
    serial = unique("C")
    loc = make_locator({serial: 2})
    await loc.start()
    adv = await advertisers(serial, 50121, "--cooperating").start()
    await moved(loc, serial, None)
    assert await adv.stop() == 0
    report = await until(loc, lambda r: serial in r.withdrawn)
    assert all(b.serial != serial for b in report.boards)
    assert loc.current(serial) == ("127.0.0.1", 50121)  # last known, until it comes back


async def test_duplicate_serial_reported_not_used_rfc6762_9(
    advertisers: Factory,
    make_locator: Callable[..., MdnsLocator],
    unique: Callable[[str], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    serial = unique("D")
    loc = make_locator({serial: 2})
    await loc.start()
    await advertisers(serial, 50131).start()  # probing on: the second board must notice
    first = await moved(loc, serial, None)
    second = await advertisers(serial, 50132).start()
    assert second.name == f"{serial}-2"  # renamed by the probe, TXT serial unchanged
    with caplog.at_level(logging.WARNING, logger="main_node.discovery"):
        report = await until(loc, lambda r: any(d.serial == serial for d in r.duplicates))
    (dup,) = [d for d in report.duplicates if d.serial == serial]
    assert set(dup.addresses) == {("127.0.0.1", 50131), ("127.0.0.1", 50132)}
    assert dup.used == first == loc.current(serial) == ("127.0.0.1", 50131)
    assert any(serial in r.message and "2 boards" in r.message for r in caplog.records)


async def test_never_seen_and_unconfigured_are_reported(
    advertisers: Factory,
    make_locator: Callable[..., MdnsLocator],
    unique: Callable[[str], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    missing, stray = unique("MISSING"), unique("STRAY")
    loc = make_locator({missing: 2})
    caplog.set_level(logging.WARNING, logger="main_node.discovery")
    await loc.start()
    await advertisers(stray, 50141, "--cooperating").start()
    await until(loc, lambda r: r.never_seen == [missing] and stray in r.unconfigured)
    text = "\n".join(r.message for r in caplog.records)
    assert f"{missing} is configured but was never seen" in text
    assert f"{stray} is advertised but not configured" in text
    assert loc.current(missing) is None


async def test_static_fallback_mixed_with_discovery(
    advertisers: Factory, make_locator: Callable[..., MdnsLocator], unique: Callable[[str], str]
) -> None:
    serial, fixed = unique("E"), unique("F")
    static = {serial: ("127.0.0.1", 59999), fixed: ("127.0.0.1", 59998)}
    loc = make_locator({serial: 2, fixed: 3}, static=static)
    await loc.start()
    assert loc.current(serial) == ("127.0.0.1", 59999)
    assert loc.current(fixed) == ("127.0.0.1", 59998)  # a board without mDNS keeps working
    adv = await advertisers(serial, 50151, "--cooperating").start()
    assert await moved(loc, serial, static[serial]) == ("127.0.0.1", 50151)
    await adv.stop()
    assert await moved(loc, serial, ("127.0.0.1", 50151)) == static[serial]


async def test_discover_cli_json(advertisers: Factory, unique: Callable[[str], str]) -> None:
    serial = unique("G")
    await advertisers(serial, 50161, "--fw", "9.9.9", "--boot", "b-77", "--cooperating").start()
    proc = await asyncio.create_subprocess_exec(
        str(Path(ROOT) / ".venv" / "bin" / "chargeport"),
        "discover",
        "--json",
        "--timeout",
        "2",
        "--interface",
        "127.0.0.1",  # never the host's real network in a test (the default is every one)
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    out, err = await asyncio.wait_for(proc.communicate(), STEP_TIMEOUT_S)
    assert proc.returncode == 0, err.decode()
    boards = json.loads(out)
    (board,) = [b for b in boards if b["serial"] == serial]
    assert {k: board[k] for k in ("role", "address", "port", "firmware_version", "boot_id")} == {
        "role": "satellite",
        "address": "127.0.0.1",
        "port": 50161,
        "firmware_version": "9.9.9",
        "boot_id": "b-77",
    }
