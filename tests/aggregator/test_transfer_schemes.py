"""Transfer locations from the CSMS (issue 14): only http, https, ftp and ftps. `file://` and
every other scheme is refused before any I/O, with a FirmwareStatus / DiagnosticsStatus failure
(OCPP 1.6 §4.5 DownloadFailed, §4.4 UploadFailed) and one security-event log line."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

import pytest
from agg_fixtures import OLD, TARGET, FtpServer, Keys, board, make_bundle

from chargeport.board import (
    BoardInfo,
    FirmwareAction,
    FirmwareProgress,
    LogChunk,
    ResetKind,
)
from chargeport.security_log import INVALID_TRANSFER_LOCATION, LOGGER_NAME, MARKER
from satellite.board_system import LocalBoardSystem
from system_aggregator.aggregator import SystemAggregator
from system_aggregator.transfer import (
    TransferError,
    TransferRefused,
    check_location,
    download,
    upload,
)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("http://cs.example/fw.bin", "http"),
        ("HTTPS://cs.example/fw.bin", "https"),
        ("ftp://u:p@cs.example:2121/diag/", "ftp"),
        ("ftps://cs.example/diag/", "ftps"),
    ],
)
def test_allowed_locations(url: str, scheme: str) -> None:
    assert check_location(url) == scheme


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "FILE:///tmp/diag/",
        "file://localhost/etc/shadow",
        "/etc/passwd",  # no scheme at all
        "sftp://cs.example/fw.bin",
        "gopher://cs.example/1",
        "data:application/octet-stream;base64,AAAA",
        "jar:http://cs.example/x.jar!/",
        "http:///no-host",
        "ftp://",
        "http://[::1/",  # not even a URL
        "",
    ],
)
def test_refused_locations(url: str) -> None:
    with pytest.raises(TransferRefused):
        check_location(url)


async def test_transfer_functions_refuse_file_urls_without_touching_disk(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("board key")
    dest = tmp_path / "dest"
    with pytest.raises(TransferRefused, match="only http, https, ftp and ftps"):
        await download(secret.as_uri(), dest)
    assert not dest.exists()
    with pytest.raises(TransferRefused):
        await upload(tmp_path.as_uri() + "/", secret, "copy")
    assert os.listdir(tmp_path) == ["secret"]


async def test_ftps_never_falls_back_to_cleartext(tmp_path: Path, ftp_server: FtpServer) -> None:
    """An ftps:// location on a server without TLS fails: credentials never go in the clear."""
    (ftp_server.root / "fw.bin").write_bytes(b"x" * 100)
    plain = ftp_server.url + "/fw.bin"
    await download(plain, tmp_path / "ok")
    assert (tmp_path / "ok").read_bytes() == b"x" * 100
    with pytest.raises(TransferError):
        await download("ftps" + plain[3:], tmp_path / "tls")


class CountingBoard:
    """A BoardSystem that records which calls reached the board (the seam under the aggregator)."""

    def __init__(self, board: LocalBoardSystem) -> None:
        self.board = board
        self.calls: list[str] = []

    async def info(self) -> BoardInfo:
        self.calls.append("info")
        return await self.board.info()

    async def install_firmware(
        self, bundle: AsyncIterable[bytes], total_size: int
    ) -> AsyncIterator[FirmwareProgress]:
        self.calls.append("install_firmware")
        async for p in self.board.install_firmware(bundle, total_size):
            yield p

    async def firmware_control(self, action: FirmwareAction) -> FirmwareProgress:
        self.calls.append(f"firmware_control:{action.value}")
        return await self.board.firmware_control(action)

    async def fetch_logs(self, start: float | None, stop: float | None) -> AsyncIterator[LogChunk]:
        self.calls.append("fetch_logs")
        async for c in self.board.fetch_logs(start, stop):
            yield c

    async def reset(self, kind: ResetKind) -> None:
        self.calls.append("reset")
        await self.board.reset(kind)

    async def set_time(self, unix_time: float) -> float:
        self.calls.append("set_time")
        return await self.board.set_time(unix_time)


def two_boards(tmp_path: Path, keys: Keys) -> tuple[list[CountingBoard], SystemAggregator]:
    sat = CountingBoard(board(tmp_path, "SAT-1", "satellite", keys))
    main = CountingBoard(board(tmp_path, "MAIN-1", "main", keys))
    agg = SystemAggregator(
        main, [sat], trusted_keys=[keys.pub], target=TARGET, work_dir=tmp_path / "work"
    )
    return [sat, main], agg


def one_security_line(caplog: pytest.LogCaptureFixture) -> str:
    """Exactly one log line at WARNING or above, and it is the transfer-location event."""
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].name == LOGGER_NAME
    message = lines[0].getMessage()
    assert message.startswith(f"{MARKER} {INVALID_TRANSFER_LOCATION}:")
    return message


@pytest.mark.parametrize("location", ["file:///etc/passwd", "sftp://cs.example/fw.bundle"])
async def test_update_firmware_refuses_before_any_io(
    tmp_path: Path, keys: Keys, caplog: pytest.LogCaptureFixture, location: str
) -> None:
    boards, agg = two_boards(tmp_path, keys)
    make_bundle(tmp_path, keys.key, "2.0.0")  # a valid bundle sits on the local disk
    statuses: list[str] = []

    async def record(status: str) -> None:
        statuses.append(status)

    caplog.set_level(logging.INFO)
    # retrieveDate far in the future: a refused location is not even waited for.
    await agg.update_firmware(location, 4e9, 3, 0.0, record)
    assert statuses == ["DownloadFailed"]
    assert "firmware download refused" in one_security_line(caplog)
    assert [b.calls for b in boards] == [[], []]  # no board was asked anything
    assert not (tmp_path / "work").exists()  # nothing was written either
    assert all(b.board.firmware_version == OLD for b in boards)
    await agg.aclose()


async def test_get_diagnostics_refuses_file_location_before_reading_logs(
    tmp_path: Path, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's case: GetDiagnostics to file:///dir/ wrote a tarball of every board's logs."""
    boards, agg = two_boards(tmp_path, keys)
    drop = tmp_path / "drop"
    drop.mkdir()
    statuses: list[str] = []

    async def record(status: str) -> None:
        statuses.append(status)

    caplog.set_level(logging.INFO)
    await agg.get_diagnostics(drop.as_uri() + "/", None, None, 3, 0.0, record)
    await agg.wait_idle()
    assert statuses == ["UploadFailed"]
    assert "diagnostics upload refused" in one_security_line(caplog)
    assert list(drop.iterdir()) == []
    assert [b.calls for b in boards] == [[], []]  # no board log was read
    await agg.aclose()
