"""GetDiagnostics (OCPP 1.6 §5.9, §4.4 DiagnosticsStatusNotification): one archive per station,
uploaded to real FTP and HTTP servers; unreachable boards are listed as missing."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import tarfile
import uuid
from pathlib import Path

import pytest
from agg_fixtures import FtpServer, HttpServer, Station

from chargeport_cli.cli import main as cli

pytestmark = pytest.mark.integration


def write_logs(st: Station) -> None:
    for b in st.boards:
        handler = b.make_log_handler()
        logger = logging.getLogger(f"test.diag.{b.serial}")
        try:
            for t, msg in [(100.0, "old"), (200.0, f"hello from {b.serial}")]:
                record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, msg, (), None)
                record.created = t
                handler.emit(record)
        finally:
            handler.close()


def check_archive(path: Path, missing: set[str] = frozenset()) -> dict[str, object]:  # type: ignore[assignment]
    with tarfile.open(path) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert manifest["window"] == {"start": 150.0, "stop": None}
        by_serial = {b["serial"]: b for b in manifest["boards"]}
        assert set(by_serial) == {"SAT-1", "SAT-2", "MAIN-1"}
        for serial, entry in by_serial.items():
            if serial in missing:
                assert entry["status"] == "missing" and entry["error"]
                assert not any(n.startswith(serial + "/") for n in tar.getnames())
                continue
            assert entry["status"] == "ok" and entry["firmware_version"] == "1.0.0"
            assert entry["boot_id"]
            (f,) = entry["files"]
            data = tar.extractfile(f["name"]).read()  # type: ignore[union-attr]
            assert f["name"] == f"{serial}/board.log"
            assert hashlib.sha256(data).hexdigest() == f["sha256"]
            assert f"hello from {serial}".encode() in data and b"old" not in data
    return dict(manifest)


async def test_ftp_upload_with_missing_board(station: Station, ftp_server: FtpServer) -> None:
    write_logs(station)
    await station.servers[1].stop(None)  # SAT-2 is offline
    name = await station.aggregator.get_diagnostics(
        f"{ftp_server.url}/diag/", 150.0, None, 2, 0.0, station.record
    )
    await station.aggregator.wait_idle()
    assert station.statuses == ["Uploading", "Uploaded"]
    check_archive(ftp_server.root / "diag" / name, missing={"SAT-2"})


async def test_http_put_and_post(station: Station, http_server: HttpServer) -> None:
    write_logs(station)
    name = await station.aggregator.get_diagnostics(
        f"{http_server.url}/up/", 150.0, None, 1, 0.0, station.record
    )
    await station.aggregator.wait_idle()
    check_archive(http_server.uploads / name)
    station.statuses.clear()
    (http_server.uploads / name).unlink()
    name = await station.aggregator.get_diagnostics(
        f"{http_server.url}/form", 150.0, None, 1, 0.0, station.record
    )
    await station.aggregator.wait_idle()
    assert station.statuses == ["Uploading", "Uploaded"]
    check_archive(http_server.uploads / name)


async def test_upload_retried_then_failed_once(station: Station, http_server: HttpServer) -> None:
    http_server.fail_uploads = 2
    await station.aggregator.get_diagnostics(
        f"{http_server.url}/up/", None, None, 3, 0.0, station.record
    )
    await station.aggregator.wait_idle()
    assert station.statuses == ["Uploading", "Uploaded"] and http_server.upload_attempts == 3
    station.statuses.clear()
    http_server.fail_uploads = 5
    await station.aggregator.get_diagnostics(
        f"{http_server.url}/up/", None, None, 2, 0.0, station.record
    )
    await station.aggregator.wait_idle()
    assert station.statuses == ["Uploading", "UploadFailed"] and http_server.upload_attempts == 5


async def test_diag_cli_collects_local_and_static_satellites(
    station: Station, tmp_path: Path
) -> None:
    write_logs(station)
    config = tmp_path / "main.toml"
    config.write_text(
        '[station]\nserial = "MAIN-1"\nfirmware_version = "1.0.0"\n'
        f'state_dir = "{tmp_path / "MAIN-1"}"\n'
        "[link]\ninsecure = true\nmdns = false\n"
        + "".join(
            f'[[satellites]]\nserial = "SAT-{i}"\nconnector = {i + 1}\naddress = "{a}"\n'
            for i, a in enumerate(station.addresses, start=1)
        )
    )
    out = tmp_path / "diag.tar.gz"
    args = ["diag", "collect", "--config", str(config), "--out", str(out), "--start", "150"]
    # The CLI runs its own event loop: run it in a thread so our gRPC servers keep serving.
    assert await asyncio.to_thread(cli, args) == 0
    check_archive(out)


async def test_diag_cli_finds_satellites_over_mdns_and_records_the_unseen_as_missing(
    station: Station, tmp_path: Path
) -> None:
    from satellite.advertiser import Advertiser

    write_logs(station)
    run = uuid.uuid4().hex[:6]  # other tests may advertise on 127.0.0.1 at the same time
    found, unseen = f"DIAG-{run}-1", f"DIAG-{run}-2"
    port = int(station.addresses[0].rsplit(":", 1)[1])
    config = tmp_path / "main.toml"
    config.write_text(
        '[station]\nserial = "MAIN-1"\nfirmware_version = "1.0.0"\n'
        f'state_dir = "{tmp_path / "MAIN-1"}"\n'
        '[link]\ninsecure = true\nmdns = true\nmdns_interfaces = ["127.0.0.1"]\n'
        f'[[satellites]]\nserial = "{found}"\nconnector = 2\n'
        f'[[satellites]]\nserial = "{unseen}"\nconnector = 3\n'
    )
    out = tmp_path / "diag.tar.gz"
    args = ["diag", "collect", "--config", str(config), "--out", str(out), "--timeout", "3"]
    async with Advertiser(found, port, boot_id="b", firmware_version="1.0.0"):
        assert await asyncio.to_thread(cli, args) == 1  # one configured board is missing
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    status = {b["serial"]: b["status"] for b in manifest["boards"]}
    assert status == {"MAIN-1": "ok", "SAT-1": "ok", unseen: "missing"}
