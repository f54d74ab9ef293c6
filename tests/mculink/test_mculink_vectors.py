"""The MCU link test vectors (docs/mcu-link.md, "Test vectors"): fresh, passed by the Python
codec read back from the JSON file, and passed by the C reference built with the system `cc`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from cobs import cobs

from hal.mculink import messages as msgs
from hal.mculink.codec import (
    FrameCodec,
    KeyProvisioned,
    LinkEvent,
    LinkStats,
    MessageReceived,
    ProvisionAnswered,
    Role,
    SessionEstablished,
    Transmit,
)
from hal.mculink.testvectors import (
    C_HEADER,
    JSON_FILE,
    FixedRandom,
    build,
    render_c_header,
    render_json,
)

REPO = Path(__file__).resolve().parents[2]
C_DIR = REPO / "hal" / "mculink" / "c"
VECTORS: dict[str, Any] = json.loads(JSON_FILE.read_text())
SESSION = VECTORS["session"]
DROPS = ("garbage", "truncated", "crc_errors", "auth_failures", "replayed", "bad_messages")


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def message(vector: dict[str, Any]) -> msgs.Message:
    cls = getattr(msgs, vector["type"])
    fields = {k: h(v) if k == "key" else v for k, v in vector["fields"].items()}
    built: msgs.Message = cls(**fields)
    return built


def session_pair() -> tuple[FrameCodec, FrameCodec]:
    key = h(SESSION["key"])
    host = FrameCodec(
        key, Role.HOST, FixedRandom(h(SESSION["host_random"]), h(SESSION["hello_nonce"]))
    )
    mcu = FrameCodec(
        key, Role.MCU, FixedRandom(h(SESSION["mcu_random"]), h(SESSION["hello_ack_nonce"]))
    )
    hello = host.start()
    assert hello == h(SESSION["hello"])
    reply = mcu.receive_data(hello)
    assert reply == [Transmit(h(SESSION["hello_ack"])), SessionEstablished()]
    assert host.receive_data(h(SESSION["hello_ack"])) == [SessionEstablished()]
    return host, mcu


def as_expect(event: LinkEvent) -> dict[str, Any]:
    if isinstance(event, MessageReceived):
        return {"event": "message", "payload": msgs.encode_message(event.message).hex()}
    if isinstance(event, Transmit):
        return {"event": "transmit", "wire": event.data.hex()}
    if isinstance(event, KeyProvisioned):
        return {"event": "key_provisioned", "key": event.key.hex()}
    if isinstance(event, ProvisionAnswered):
        return {"event": "provision_answered", "stored": event.stored}
    assert isinstance(event, SessionEstablished)
    return {"event": "session"}


def drops(stats: LinkStats) -> dict[str, int]:
    return {name: getattr(stats, name) for name in (*DROPS, "unexpected")}


# ------------------------------------------------------------------ reproducible


@pytest.mark.parametrize(
    ("path", "render"), [(JSON_FILE, render_json), (C_HEADER, render_c_header)], ids=["json", "c"]
)
def test_checked_in_vectors_are_what_the_codec_produces_now(path: Path, render: Any) -> None:
    """A codec change that alters a byte on the wire shows up here (regenerate and review)."""
    assert path.read_text() == render(build()), (
        f"stale: run {sys.executable} scripts/gen_mcu_vectors.py"
    )


def test_generator_check_mode_passes() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_mcu_vectors.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------ Python codec vs the file


def test_crc32_and_cobs_vectors() -> None:
    for v in VECTORS["crc32"]:
        assert f"{zlib.crc32(h(v['data'])):08x}" == v["crc"]
    for v in VECTORS["cobs"]:
        assert cobs.encode(h(v["decoded"])) == h(v["encoded"])
        assert cobs.decode(h(v["encoded"])) == h(v["decoded"])


@pytest.mark.parametrize("vector", VECTORS["messages"], ids=lambda v: v["type"])
def test_message_layout_vectors(vector: dict[str, Any]) -> None:
    """docs/mcu-link.md, "Messages": each type's byte layout, little endian."""
    assert msgs.encode_message(message(vector)) == h(vector["payload"])
    assert msgs.decode_message(h(vector["payload"])) == message(vector)


@pytest.mark.parametrize("vector", VECTORS["bad_payloads"], ids=lambda v: v["why"])
def test_bad_payload_vectors(vector: dict[str, Any]) -> None:
    with pytest.raises(msgs.MessageError):
        msgs.decode_message(h(vector["payload"]))


def test_session_vectors_handshake_and_frames_both_ways() -> None:
    """docs/mcu-link.md, "Handshake" and "DATA": fixed randoms give these exact bytes."""
    host, mcu = session_pair()
    for frame in SESSION["frames"]:
        sender, receiver = (host, mcu) if frame["from"] == "host" else (mcu, host)
        msg = msgs.decode_message(h(frame["payload"]))
        assert sender.send(msg) == h(frame["wire"])
        assert receiver.receive_data(h(frame["wire"])) == [MessageReceived(msg)]


def test_provision_vectors() -> None:
    p = VECTORS["provision"]
    host = FrameCodec(h(SESSION["key"]), Role.HOST)
    assert host.provision(h(p["new_key"])) == h(p["provision"])
    blank = FrameCodec(None, Role.MCU)
    assert blank.receive_data(h(p["provision"])) == [
        KeyProvisioned(h(p["new_key"])),
        Transmit(h(p["ack_stored"])),
    ]
    keyed = FrameCodec(h(SESSION["key"]), Role.MCU)
    assert keyed.receive_data(h(p["provision"])) == [Transmit(h(p["ack_refused"]))]
    assert host.receive_data(h(p["ack_stored"])) == [ProvisionAnswered(stored=True)]


@pytest.mark.parametrize("vector", VECTORS["receive"], ids=lambda v: v["name"])
def test_receive_vectors(vector: dict[str, Any]) -> None:
    """Every invalid frame is dropped under the counter the spec names; valid ones decode."""
    if vector["state"] == "session":
        host, mcu = session_pair()
        receiver = host if vector["to"] == "host" else mcu
    else:
        key = h(SESSION["key"]) if vector["state"] == "keyed" else None
        receiver = FrameCodec(key, Role.MCU)
    before = drops(receiver.stats)
    events = receiver.receive_data(h(vector["wire"]))
    assert [as_expect(e) for e in events] == [e for e in vector["expect"] if "event" in e]
    after = drops(receiver.stats)
    expected = {name: 0 for name in after}
    for e in vector["expect"]:
        if "drop" in e:
            expected[e["drop"]] += 1
    assert {k: after[k] - before[k] for k in after} == expected


# ------------------------------------------------------------------ the C reference


def compile_and_run(tmp_path: Path, header: str) -> subprocess.CompletedProcess[str]:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler (cc/gcc/clang) on this machine: the C reference is not tested")
    for name in ("mculink.c", "mculink.h", "mculink_test.c"):
        shutil.copy(C_DIR / name, tmp_path / name)
    (tmp_path / "mculink_vectors.h").write_text(header)
    exe = tmp_path / "mculink_test"
    flags = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O2"]
    sources = [str(tmp_path / "mculink.c"), str(tmp_path / "mculink_test.c")]
    built = subprocess.run(
        [cc, *flags, *sources, "-o", str(exe)], capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stderr
    return subprocess.run([str(exe)], capture_output=True, text=True, check=False, timeout=60)


def test_c_reference_passes_every_vector(tmp_path: Path) -> None:
    done = compile_and_run(tmp_path, C_HEADER.read_text())
    assert done.returncode == 0, done.stdout
    assert done.stdout.startswith("ok: ") and "FAIL" not in done.stdout


def test_c_runner_reports_a_vector_the_reference_does_not_meet(tmp_path: Path) -> None:
    """The runner can fail: one altered expectation is named and fails the run."""
    vectors = build()
    vectors["receive"][5]["expect"] = [{"drop": "auth_failures"}]  # really a CRC error
    done = compile_and_run(tmp_path, render_c_header(vectors))
    assert done.returncode == 1
    assert f"FAIL receive: {vectors['receive'][5]['name']}" in done.stdout
