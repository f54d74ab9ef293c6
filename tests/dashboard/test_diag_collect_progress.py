"""`chargeport diag collect` shows progress per board on a terminal (rich): every board's bytes,
the boards done out of all; a board that cannot be reached ends as missing, not as an open bar.

The main's logs come from its state dir; one satellite answers on a real loopback gRPC server,
the other's address has nothing listening."""

from __future__ import annotations

import io
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from rich.console import Console

from chargeport.config import MainConfig, load_config
from chargeport.v1 import link_pb2_grpc
from main_node.diag_cli import collect
from satellite.board_service import BoardServicer
from satellite.board_system import LocalBoardSystem

pytestmark = pytest.mark.integration


def board(tmp_path: Path, serial: str, role: str) -> LocalBoardSystem:
    b = LocalBoardSystem(serial, role, tmp_path / serial, [], "t", version="1.0.0")
    handler = b.make_log_handler()
    logger = logging.getLogger(f"test.diagprogress.{serial}")
    for i in range(200):  # some kilobytes of log
        record = logger.makeRecord(
            logger.name, logging.INFO, __file__, 1, f"{serial} {i}", (), None
        )
        handler.emit(record)
    handler.close()
    return b


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def satellite(tmp_path: Path) -> AsyncIterator[str]:
    sat = board(tmp_path, "SAT-1", "satellite")
    server = grpc.aio.server()
    link_pb2_grpc.add_BoardServicer_to_server(BoardServicer(sat), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


async def test_progress_per_board_on_a_terminal(tmp_path: Path, satellite: str) -> None:
    board(tmp_path, "MAIN-1", "main")
    path = tmp_path / "main.toml"
    path.write_text(
        f'[station]\nserial = "MAIN-1"\nstate_dir = "{tmp_path / "MAIN-1"}"\n'
        "[link]\ninsecure = true\nmdns = false\n"
        f'[[satellites]]\nserial = "SAT-1"\nconnector = 2\naddress = "{satellite}"\n'
        f'[[satellites]]\nserial = "SAT-2"\nconnector = 3\naddress = "127.0.0.1:{closed_port()}"\n'
    )
    config = load_config(str(path), MainConfig)
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120, color_system=None)
    manifest = await collect(config, tmp_path / "diag.tar.gz", None, None, 3.0, console=console)
    assert [b["status"] for b in manifest["boards"]].count("missing") == 1
    final = screen.getvalue().rsplit("boards done", 1)[1]  # the last frame drawn
    assert final.startswith(" 3/3")
    text = screen.getvalue()
    assert "MAIN-1 Collected" in text and "SAT-1 Collected" in text and "SAT-2 missing" in text
    assert "kB" in text  # bytes counted as they arrived
