"""Integration: `chargeport hal provision` puts the link key on a simulated MCU over a real pty.

docs/mcu-link.md, "Key provisioning": a blank MCU takes the key from PROVISION, a provisioned
one only through SetLinkKey inside a session, and the tool proves the key by a handshake. The
key never appears in the tool's output, even with debug logging.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hal.mculink.codec import FrameCodec, KeyProvisioned, ProvisionAnswered, Role, Transmit
from hal.mculink.provision import key_id
from hal.mculink.sim_mcu import SimMcu
from hal.mculink.transport import McuTransport

pytestmark = pytest.mark.integration

OLD = bytes(range(1, 33))
NEW = bytes(range(100, 132))


async def provision(*args: str) -> tuple[int, str]:
    """Run the real command in a subprocess (debug logging on); returns (exit code, output)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chargeport_cli",
        "-v",
        "hal",
        "provision",
        *args,
        "--timeout",
        "2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def assert_no_key(output: str, *keys: bytes) -> None:
    for key in keys:
        assert key.hex() not in output.lower()
        assert key.hex().upper() not in output


@pytest.fixture
async def blank() -> AsyncIterator[SimMcu]:
    mcu = SimMcu.create(None, status_interval_s=0.05)
    await mcu.async_start()
    yield mcu
    await mcu.async_stop()


@pytest.fixture
async def keyed() -> AsyncIterator[SimMcu]:
    mcu = SimMcu.create(OLD, status_interval_s=0.05)
    await mcu.async_start()
    yield mcu
    await mcu.async_stop()


def key_file(path: Path, key: bytes) -> str:
    path.write_text(key.hex() + "\n")
    return str(path)


async def test_blank_mcu_takes_a_generated_key_which_then_opens_the_link(
    blank: SimMcu, tmp_path: Path
) -> None:
    path = tmp_path / "link.key"
    code, out = await provision("--device", blank.device, "--key-file", str(path), "--generate")
    assert code == 0, out
    key = bytes.fromhex(path.read_text())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert blank.key == key
    assert f"link key {key_id(key)} stored on a blank MCU" in out
    assert_no_key(out, key)
    link = McuTransport(blank.device, key, lambda _: None)
    await link.async_open()  # the board now handshakes with the key from the file
    await link.async_close()


async def test_rerun_with_the_same_key_is_idempotent(blank: SimMcu, tmp_path: Path) -> None:
    path = key_file(tmp_path / "link.key", NEW)
    assert (await provision("--device", blank.device, "--key-file", path))[0] == 0
    code, out = await provision("--device", blank.device, "--key-file", path)
    assert code == 0, out
    assert "already holds this key" in out and blank.key == NEW


async def test_provisioned_mcu_refuses_a_key_in_clear(keyed: SimMcu, tmp_path: Path) -> None:
    """A key in clear is for blank boards only; the error says what to pass instead."""
    code, out = await provision(
        "--device", keyed.device, "--key-file", key_file(tmp_path / "k", NEW)
    )
    assert code == 2
    assert out.strip().splitlines()[-1].startswith("chargeport hal: the MCU on ")
    assert "--current-key-file" in out and "Traceback" not in out
    assert keyed.key == OLD
    assert_no_key(out, OLD, NEW)


async def test_key_is_replaced_inside_a_session_with_the_current_key(
    keyed: SimMcu, tmp_path: Path
) -> None:
    new, old = key_file(tmp_path / "new", NEW), key_file(tmp_path / "old", OLD)
    code, out = await provision(
        "--device", keyed.device, "--key-file", new, "--current-key-file", old
    )
    assert code == 0, out
    assert keyed.key == NEW and "replaced the previous key" in out
    assert_no_key(out, OLD, NEW)
    keyed.restart()  # the new key is what the MCU's flash holds: it survives a reboot
    link = McuTransport(keyed.device, NEW, lambda _: None)
    await link.async_open()
    await link.async_close()


async def test_wrong_current_key_names_both_fingerprints(keyed: SimMcu, tmp_path: Path) -> None:
    wrong = bytes(32)
    code, out = await provision(
        "--device",
        keyed.device,
        "--key-file",
        key_file(tmp_path / "new", NEW),
        "--current-key-file",
        key_file(tmp_path / "wrong", wrong),
    )
    assert code == 2
    assert f"current key {key_id(wrong)}, new key {key_id(NEW)}" in out
    assert keyed.key == OLD
    assert_no_key(out, OLD, NEW, wrong)


async def test_silent_device_and_bad_key_file_are_one_line_errors(tmp_path: Path) -> None:
    master, slave = os.openpty()
    try:
        code, out = await provision(
            "--device", os.ttyname(slave), "--key-file", key_file(tmp_path / "k", NEW)
        )
    finally:
        os.close(master)
        os.close(slave)
    assert code == 2 and "no answer to PROVISION" in out
    bad = tmp_path / "bad"
    bad.write_text("zz" * 32)
    code, out = await provision("--device", "/dev/null", "--key-file", str(bad))
    assert code == 2 and out.strip().count("\n") == 0 and "cannot read a hex key" in out


def test_codec_blank_mcu_takes_one_key_then_refuses() -> None:
    """Sans-IO: PROVISION stores on a blank MCU only; an unasked answer is dropped."""
    host, mcu = FrameCodec(NEW, Role.HOST), FrameCodec(None, Role.MCU)
    assert mcu.receive_data(host.start()) == []  # a blank MCU cannot answer a HELLO
    events = mcu.receive_data(host.provision(NEW))
    assert events[0] == KeyProvisioned(NEW) and isinstance(events[1], Transmit)
    assert NEW.hex() not in repr(events[0])
    assert host.receive_data(events[1].data) == [ProvisionAnswered(stored=True)]
    assert host.receive_data(events[1].data) == []  # not asked again: stale
    [refusal] = mcu.receive_data(FrameCodec(OLD, Role.HOST).provision(OLD))
    assert isinstance(refusal, Transmit)
    assert host.receive_data(host.provision(OLD)[:0] + refusal.data) == [
        ProvisionAnswered(stored=False)
    ]
