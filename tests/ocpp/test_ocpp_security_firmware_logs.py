"""SignedUpdateFirmware and GetLog end to end (OCA "Improved security for OCPP 1.6-J",
edition 3): a live CSMS, the station's OCPP session, the real system aggregator over three
boards (two of them over loopback gRPC) and a real HTTP server."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import sys
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from ocpp_security_pki import Ca, issue, pem
from ocpp_station_fixture import running_station, until

from chargeport.clock import ManualClock
from main_node.ocpp.certificates import MANUFACTURER_ROOT
from main_node.ocpp.signed_firmware import SignedFirmware
from simulation.csms import CentralSystem
from system_aggregator.fake import FakeStationSystem

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "aggregator"))
from agg_fixtures import (
    HttpServer,
    Keys,
    Station,
    http_server,
    keys,
    make_bundle,
    station,
)

__all__ = ["http_server", "keys", "station"]  # fixtures used by name

pytestmark = pytest.mark.integration


def sign_file(key: ec.EllipticCurvePrivateKey, path: Path) -> str:
    """The whitepaper's firmware signature: ECDSA over the file's SHA-256, base64."""
    digest = hashlib.sha256(path.read_bytes()).digest()
    return base64.b64encode(key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))).decode()


def signed_statuses(csms: CentralSystem) -> list[tuple[str, int | None]]:
    return [
        (p["status"], p.get("request_id")) for p in csms.actions("SignedFirmwareStatusNotification")
    ]


async def test_signed_firmware_verified_then_rolled_out_on_every_board(
    tmp_path: Path, station: Station, keys: Keys, http_server: HttpServer
) -> None:
    """A signing certificate that chains to the installed ManufacturerRootCertificate and a
    signature that verifies: Downloading .. SignatureVerified, then our bundle goes to every
    board (each checks its own signature again) and the station reports Installed."""
    maker = Ca.make("Maker root")
    signer, signer_key = issue(maker, "firmware signing")
    bundle = make_bundle(http_server.files, keys.key, version="2.0.0")
    async with (
        CentralSystem() as csms,
        running_station(tmp_path / "db.sqlite", csms.url, system=station.aggregator) as st,
    ):
        await until(lambda: st.session.online)
        assert await csms.install_certificate(MANUFACTURER_ROOT, maker.pem) == "Accepted"
        status = await csms.signed_update_firmware(
            7, f"{http_server.url}/fw/fw.bundle", pem(signer), sign_file(signer_key, bundle)
        )
        assert status == "Accepted"
        await csms.wait_for(lambda: ("Installed", 7) in signed_statuses(csms), within_s=60)
        assert [s for s, _ in signed_statuses(csms)] == [
            "Downloading",
            "Downloaded",
            "SignatureVerified",
            "Installing",
            "Installed",
        ]
        for board in station.boards:
            assert (await board.info()).firmware_version == "2.0.0"
        await csms.wait_for(lambda: "FirmwareUpdated" in csms.security_events())


async def test_bad_firmware_signature_is_invalid_signature_and_a_security_event(
    tmp_path: Path, station: Station, keys: Keys, http_server: HttpServer
) -> None:
    """A signature that does not verify: InvalidSignature and InvalidFirmwareSignature; the
    aggregator never fetches it, no board changes."""
    maker = Ca.make("Maker root")
    signer, signer_key = issue(maker, "firmware signing")
    make_bundle(http_server.files, keys.key, version="2.0.0")
    other = tmp_path / "other"
    other.write_bytes(b"another image")
    async with (
        CentralSystem() as csms,
        running_station(tmp_path / "db.sqlite", csms.url, system=station.aggregator) as st,
    ):
        await until(lambda: st.session.online)
        assert await csms.install_certificate(MANUFACTURER_ROOT, maker.pem) == "Accepted"
        status = await csms.signed_update_firmware(
            8, f"{http_server.url}/fw/fw.bundle", pem(signer), sign_file(signer_key, other)
        )
        assert status == "Accepted"
        await csms.wait_for(lambda: ("InvalidSignature", 8) in signed_statuses(csms))
        await csms.wait_for(lambda: "InvalidFirmwareSignature" in csms.security_events())
        assert http_server.gets == 1  # only the station's own check fetched it
        for board in station.boards:
            assert (await board.info()).firmware_version == "1.0.0"


async def test_signing_certificate_from_an_unknown_maker_is_invalid_certificate(
    tmp_path: Path, station: Station, keys: Keys, http_server: HttpServer
) -> None:
    """A signing certificate that does not chain to an installed ManufacturerRootCertificate:
    InvalidCertificate and InvalidFirmwareSigningCertificate, nothing downloaded."""
    maker, stranger = Ca.make("Maker root"), Ca.make("Stranger")
    signer, signer_key = issue(stranger, "firmware signing")
    bundle = make_bundle(http_server.files, keys.key, version="2.0.0")
    async with (
        CentralSystem() as csms,
        running_station(tmp_path / "db.sqlite", csms.url, system=station.aggregator) as st,
    ):
        await until(lambda: st.session.online)
        assert await csms.install_certificate(MANUFACTURER_ROOT, maker.pem) == "Accepted"
        status = await csms.signed_update_firmware(
            9, f"{http_server.url}/fw/fw.bundle", pem(signer), sign_file(signer_key, bundle)
        )
        assert status == "InvalidCertificate"
        await csms.wait_for(lambda: "InvalidFirmwareSigningCertificate" in csms.security_events())
        assert http_server.gets == 0


async def test_get_log_uploads_every_boards_logs(
    tmp_path: Path, station: Station, http_server: HttpServer
) -> None:
    """GetLog (SecurityLog and DiagnosticsLog) goes through the aggregator: one archive with
    a folder per board; LogStatusNotification Uploading, Uploaded carry the requestId, and an
    ExtendedTriggerMessage(LogStatusNotification) repeats the last one."""
    async with (
        CentralSystem() as csms,
        running_station(tmp_path / "db.sqlite", csms.url, system=station.aggregator) as st,
    ):
        await until(lambda: st.session.online)
        status, name = await csms.get_log("SecurityLog", f"{http_server.url}/up/", 21)
        assert status == "Accepted" and name
        await csms.wait_for(
            lambda: (
                {"status": "Uploaded", "request_id": 21} in csms.actions("LogStatusNotification")
            )
        )
        assert [p["status"] for p in csms.actions("LogStatusNotification")] == [
            "Uploading",
            "Uploaded",
        ]
        with tarfile.open(http_server.uploads / name) as tar:
            manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert {b["serial"] for b in manifest["boards"]} == {"SAT-1", "SAT-2", "MAIN-1"}
        assert await csms.extended_trigger("LogStatusNotification") == "Accepted"
        await csms.wait_for(lambda: len(csms.actions("LogStatusNotification")) == 3)
        assert csms.actions("LogStatusNotification")[-1] == {"status": "Uploaded", "request_id": 21}
        # A location the station must not write to is refused before any I/O.
        status, _ = await csms.get_log("DiagnosticsLog", f"file://{tmp_path}/", 22)
        assert status == "Accepted"
        await csms.wait_for(
            lambda: (
                {"status": "UploadFailure", "request_id": 22}
                in csms.actions("LogStatusNotification")
            )
        )


async def test_a_newer_signed_update_cancels_a_scheduled_one(
    tmp_path: Path, station: Station, keys: Keys, http_server: HttpServer
) -> None:
    """A SignedUpdateFirmware while another waits for its retrieveDateTime: AcceptedCanceled;
    the first never downloads, the second installs (whitepaper ed. 3, SignedUpdateFirmware)."""
    maker = Ca.make("Maker root")
    signer, signer_key = issue(maker, "firmware signing")
    bundle = make_bundle(http_server.files, keys.key, version="2.0.0")
    url, signature = f"{http_server.url}/fw/fw.bundle", sign_file(signer_key, bundle)
    async with (
        CentralSystem() as csms,
        running_station(tmp_path / "db.sqlite", csms.url, system=station.aggregator) as st,
    ):
        await until(lambda: st.session.online)
        assert await csms.install_certificate(MANUFACTURER_ROOT, maker.pem) == "Accepted"
        later = "2099-01-01T00:00:00Z"
        assert await csms.signed_update_firmware(1, url, pem(signer), signature, later) == (
            "Accepted"
        )
        await csms.wait_for(lambda: ("DownloadScheduled", 1) in signed_statuses(csms))
        status = await csms.signed_update_firmware(2, url, pem(signer), signature)
        assert status == "AcceptedCanceled"
        await csms.wait_for(lambda: ("Installed", 2) in signed_statuses(csms), within_s=60)
        assert [s for s, r in signed_statuses(csms) if r == 1] == ["DownloadScheduled"]
        assert http_server.gets == 2  # the station's check and the aggregator's, for request 2


async def test_install_date_time_holds_the_rollout_until_then(
    tmp_path: Path, http_server: HttpServer
) -> None:
    """installDateTime in the future: InstallScheduled after SignatureVerified, and the
    aggregator is only asked at that time (a ManualClock drives it); a job that is installing
    cannot be cancelled any more."""
    maker = Ca.make("Maker root")
    signer, signer_key = issue(maker, "firmware signing")
    image = http_server.files / "fw.bin"
    image.write_bytes(b"firmware image")
    clock = ManualClock()
    system = FakeStationSystem()
    statuses: list[str] = []

    async def report(status: str) -> None:
        statuses.append(status)

    job = SignedFirmware(system, tmp_path / "work", report, clock.sleep, clock.time)
    task = asyncio.create_task(
        job.run(
            f"{http_server.url}/fw/fw.bin",
            clock.time(),
            signer,
            sign_file(signer_key, image),
            1,
            0.0,
            install=clock.time() + 600,
        )
    )
    try:
        await until(lambda: statuses[-1:] == ["InstallScheduled"])
        assert system.calls == []
        await until(lambda: clock.sleepers > 0)  # the wait for installDateTime is armed
        clock.advance(600)
        await task
    finally:
        task.cancel()
    assert statuses == [
        "Downloading",
        "Downloaded",
        "SignatureVerified",
        "InstallScheduled",
        "Installing",
        "Installed",
    ]
    assert [name for name, _ in system.calls] == ["update_firmware"]
    assert job.phase == "done"
