"""Firmware anti-rollback (OCA "Improved security for OCPP 1.6-J", firmware management; issue 14):
a bundle older than the installed firmware is refused by the station and by every board, with a
security event, unless its signed manifest permits the downgrade. Versions compare by semantic
version precedence (semver.org 2.0.0 §11)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from agg_fixtures import OLD, TARGET, HttpServer, Keys, Station, make_bundle

from chargeport.board import FirmwareRejected, FirmwareStage
from chargeport.bundle import (
    BundleError,
    Downgrade,
    InvalidSignature,
    Manifest,
    check_downgrade,
    compare_versions,
    sign_bundle,
    verify_file,
)
from chargeport.security_log import FIRMWARE_DOWNGRADE_REFUSED, LOGGER_NAME, MARKER
from system_aggregator import fw_cli

pytestmark = pytest.mark.integration


# ------------------------------------------------------------------ pure: version precedence


@pytest.mark.parametrize(
    ("a", "b", "expected", "clause"),
    [
        ("1.0.0", "1.0.0", 0, "§11.2 equal"),
        ("0.9.0", "1.0.0", -1, "§11.2 major"),
        ("1.10.0", "1.9.0", 1, "§11.2 numeric, not lexical"),
        ("1.0.10", "1.0.9", 1, "§11.2 patch numeric"),
        ("2.0.0", "10.0.0", -1, "§11.2 major numeric"),
        ("1.0.0-rc.1", "1.0.0", -1, "§11.3 pre-release precedes release"),
        ("1.0.0-alpha", "1.0.0-alpha.1", -1, "§11.4.4 fewer identifiers first"),
        ("1.0.0-alpha.1", "1.0.0-alpha.beta", -1, "§11.4.3 numeric before alphanumeric"),
        ("1.0.0-beta.2", "1.0.0-beta.11", -1, "§11.4.1 numeric identifiers numerically"),
        ("1.0.0-beta", "1.0.0-alpha", 1, "§11.4.2 alphanumeric lexically"),
        ("1.0.0+build.5", "1.0.0+build.1", 0, "§10 build metadata ignored"),
        ("v1.2.3", "1.2.3", 0, "leading v tolerated"),
    ],
)
def test_semver_precedence_table(a: str, b: str, expected: int, clause: str) -> None:
    assert compare_versions(a, b) == expected, clause
    assert compare_versions(b, a) == -expected, clause


@pytest.mark.parametrize("bad", ["1.0", "1.0.0.0", "01.0.0", "latest", "", "1.0.0-", "1.0.x"])
def test_not_a_semantic_version(bad: str) -> None:
    with pytest.raises(ValueError, match="not a semantic version"):
        compare_versions(bad, "1.0.0")


def _manifest(version: str, allow: bool = False) -> Manifest:
    return Manifest(version, TARGET, 1, "0" * 64, 0.0, allow_downgrade=allow)


@pytest.mark.parametrize(
    ("version", "installed", "allow", "refused"),
    [
        ("2.0.0", "1.0.0", False, False),  # upgrade
        ("1.0.0", "1.0.0", False, False),  # reinstall of the same version
        ("0.9.0", "1.0.0", False, True),  # the case
        ("1.0.0-rc.1", "1.0.0", False, True),  # a pre-release of what runs is older
        ("0.9.0", "1.0.0", True, False),  # signed as a permitted downgrade
        ("0.9.0", "factory", False, True),  # cannot compare: fail closed
        ("0.9.0", "factory", True, False),
    ],
)
def test_check_downgrade_table(version: str, installed: str, allow: bool, refused: bool) -> None:
    if refused:
        with pytest.raises(Downgrade):
            check_downgrade(_manifest(version, allow), installed)
    else:
        check_downgrade(_manifest(version, allow), installed)


def test_downgrade_flag_is_inside_the_signature(tmp_path: Path, keys: Keys) -> None:
    """Flipping the flag in a signed bundle breaks the signature: only the key holder permits."""
    path = make_bundle(tmp_path, keys.key, "0.9.0")
    data = path.read_bytes()
    assert b"allow_downgrade" not in data  # an ordinary bundle keeps its original manifest
    length = struct.unpack_from(">I", data, 8)[0]
    body = json.loads(data[12 : 12 + length])
    forged = json.dumps({**body, "allow_downgrade": True}, sort_keys=True, separators=(",", ":"))
    raw = forged.encode()
    path.write_bytes(data[:8] + struct.pack(">I", len(raw)) + raw + data[12 + length :])
    with pytest.raises(InvalidSignature):
        verify_file(path, [keys.key.public_key()], TARGET, installed=OLD)


def test_sign_refuses_a_version_boards_cannot_compare(tmp_path: Path, keys: Keys) -> None:
    (tmp_path / "p").write_bytes(b"x")
    with pytest.raises(BundleError, match="not a semantic version"):
        sign_bundle(tmp_path / "p", keys.key, "latest", TARGET, tmp_path / "b")


def test_cli_sign_allow_downgrade(
    tmp_path: Path, keys: Keys, capsys: pytest.CaptureFixture[str]
) -> None:
    """`chargeport fw sign --allow-downgrade` writes the flag; `fw verify` shows it."""
    parser = argparse.ArgumentParser()
    fw_cli.add_arguments(parser)
    payload = tmp_path / "payload"
    payload.write_bytes(os.urandom(1000))
    key = tmp_path / "fw.key"  # written by the `keys` fixture
    out = tmp_path / "down.bundle"
    sign = ["sign", "--key", str(key), "--version", "0.9.0", "--target", TARGET]
    args = parser.parse_args([*sign, "--allow-downgrade", str(payload), "-o", str(out)])
    assert fw_cli.run(args) == 0
    assert fw_cli.run(parser.parse_args(["verify", "--pub", str(keys.pub), str(out)])) == 0
    printed = capsys.readouterr().out
    assert "downgrade permitted" in printed
    assert verify_file(out, [keys.key.public_key()], TARGET, installed=OLD).allow_downgrade


# ------------------------------------------------------------------ one board (over gRPC)


async def _stream(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 65536):
        yield data[i : i + 65536]


def security_events(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER_NAME]


async def test_satellite_refuses_downgrade_over_grpc(
    station: Station, keys: Keys, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The satellite checks against what it runs, whatever the main sent (defence in depth)."""
    data = make_bundle(tmp_path, keys.key, "0.9.0").read_bytes()
    caplog.set_level(logging.WARNING)
    with pytest.raises(FirmwareRejected) as info:
        async for _ in station.remotes[0].install_firmware(_stream(data), len(data)):
            pass
    assert info.value.stage is FirmwareStage.FAILED
    assert "0.9.0 is older than the installed 1.0.0" in str(info.value)
    sat = station.satellites[0]
    assert sat.firmware_version == OLD and not sat.state.staged
    (event,) = security_events(caplog)
    assert event.levelno >= logging.WARNING
    assert event.security_event == FIRMWARE_DOWNGRADE_REFUSED  # type: ignore[attr-defined]
    assert event.getMessage().startswith(f"{MARKER} {FIRMWARE_DOWNGRADE_REFUSED}: board SAT-1")


# ------------------------------------------------------------------ the station (aggregator)


async def update(st: Station, url: str) -> list[str]:
    await st.aggregator.update_firmware(url, 0.0, 3, 0.0, st.record)
    return st.statuses


async def test_station_refuses_downgrade_with_security_event(
    station: Station, keys: Keys, http_server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    make_bundle(http_server.files, keys.key, "0.9.0")
    caplog.set_level(logging.WARNING)
    assert await update(station, f"{http_server.url}/fw/fw.bundle") == [
        "Downloading", "InstallationFailed",
    ]  # fmt: skip
    assert http_server.gets == 1  # the same bytes would be refused again: no retry
    for b in station.boards:
        assert b.firmware_version == OLD and b.state.active == "A" and not b.state.staged
    (event,) = security_events(caplog)
    assert "firmware 0.9.0 is older than the installed 1.0.0" in event.getMessage()


async def test_a_satellite_ahead_of_the_main_refuses_and_everyone_stays(
    station: Station, keys: Keys, http_server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    """1.2.0 is an upgrade for the main but a downgrade for SAT-2 (running 1.5.0): SAT-2
    refuses it itself, and the station ends on its old versions everywhere."""
    station.satellites[1]._default_version = "1.5.0"
    make_bundle(http_server.files, keys.key, "1.2.0")
    caplog.set_level(logging.WARNING)
    assert await update(station, f"{http_server.url}/fw/fw.bundle") == [
        "Downloading", "Downloaded", "Installing", "InstallationFailed",
    ]  # fmt: skip
    versions = [b.firmware_version for b in station.boards]
    assert versions == [OLD, "1.5.0", OLD]
    assert all(not b.state.staged and not b.state.tentative for b in station.boards)
    (event,) = security_events(caplog)
    assert "board SAT-2" in event.getMessage()


async def test_permitted_downgrade_installs_everywhere(
    station: Station, keys: Keys, http_server: HttpServer, tmp_path: Path
) -> None:
    payload = tmp_path / "payload"
    payload.write_bytes(os.urandom(100_000))
    sign_bundle(
        payload, keys.key, "0.9.0", TARGET, http_server.files / "fw.bundle", allow_downgrade=True
    )
    assert await update(station, f"{http_server.url}/fw/fw.bundle") == [
        "Downloading", "Downloaded", "Installing", "Installed",
    ]  # fmt: skip
    assert {b.firmware_version for b in station.boards} == {"0.9.0"}
