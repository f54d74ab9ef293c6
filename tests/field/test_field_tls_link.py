"""A satellite with the wrong certificate: the main logs the cause once, at ERROR, and keeps
retrying quietly (issue: mTLS failures were C-core lines every second naming nothing)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from chargeport.fake_port import FakePort
from chargeport.pki import channel_credentials, init_pki
from chargeport.port import PortInfo
from main_node.locator import StaticLocator
from main_node.remote_port import RemotePort
from satellite.host import AgentHost

pytestmark = pytest.mark.integration


async def refused_lines(
    tmp_path: Path, satellite_pki: Path, caplog: pytest.LogCaptureFixture
) -> list[str]:
    """Run the main's link to SAT-0002 for a few retries; its ERROR lines."""
    station = tmp_path / "station"
    host = AgentHost(
        FakePort(PortInfo(1, "SAT-X", "1.0.0", 32.0, 3)),
        serial="SAT-0001" if satellite_pki == station else "SAT-0002",
        pki_dir=satellite_pki,
    )
    port = await host.start()
    link = RemotePort(
        "SAT-0002",
        2,
        StaticLocator({"SAT-0002": ("127.0.0.1", port)}),
        station_id="CP-1",
        main_boot_id="m1",
        credentials=channel_credentials(station),
        pki_dir=station,
        retry_max_s=0.05,
        refused_retry_s=0.05,
        handshake_timeout_s=2.0,
    )
    caplog.set_level(logging.WARNING, logger="main_node")
    await link.start()
    try:
        async with asyncio.timeout(20):
            while not link.last_error.startswith("satellite at"):
                await asyncio.sleep(0.02)
            tries = 0
            while tries < 3:  # several more refused handshakes, each probed again
                before = link.handshakes, link.last_error
                await asyncio.sleep(0.1)
                tries += 1
                assert (link.handshakes, link.last_error) == before
    finally:
        await link.stop()
        await host.stop()
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("main_node.satellite_link") and r.levelno >= logging.WARNING
    ]


async def test_wrong_serial_is_one_readable_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    init_pki(tmp_path / "station", "CP-1", ["SAT-0001", "SAT-0002"])
    lines = await refused_lines(tmp_path, tmp_path / "station", caplog)
    assert len(lines) == 1, lines
    assert (
        lines[0].startswith("satellite at 127.0.0.1:")
        and "presented a certificate for SAT-0001, expected SAT-0002" in lines[0]
    )


async def test_foreign_ca_is_one_readable_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    init_pki(tmp_path / "station", "CP-1", ["SAT-0002"])
    init_pki(tmp_path / "foreign", "CP-9", ["SAT-0002"])
    lines = await refused_lines(tmp_path, tmp_path / "foreign", caplog)
    assert len(lines) == 1, lines
    assert "station CA" in lines[0] or "same `chargeport pki init`" in lines[0], lines


def test_one_unreachable_board_is_one_warning_whatever_grpc_adds_in_parentheses() -> None:
    from main_node.satellite_link import _cause

    closed = "UNAVAILABLE: last error: ipv4:10.0.0.12:50051: Handshake read failed (Socket closed)"
    reset = (
        "UNAVAILABLE: last error: ipv4:10.0.0.12:50051: Handshake read failed "
        "(recvmsg:Connection reset by peer (104))"
    )
    assert _cause(closed) == _cause(reset)
    assert _cause(closed) != _cause("UNAVAILABLE: last error: Connection refused")
