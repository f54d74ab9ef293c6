"""The signed bundle format and `chargeport fw` (streaming verification, error classes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from agg_fixtures import TARGET, Keys, make_bundle

from chargeport.bundle import (
    Corrupt,
    InvalidSignature,
    StreamingVerifier,
    WrongTarget,
    load_public_key,
    verify_file,
)
from chargeport_cli.cli import main as cli


def feed_all(data: bytes, keys: list[Path], chunk: int, target: str | None = TARGET) -> bytes:
    v = StreamingVerifier([load_public_key(k) for k in keys], target)
    out = bytearray()
    for i in range(0, len(data), chunk):
        out += v.feed(data[i : i + chunk])
    v.finish()
    return bytes(out)


@pytest.mark.parametrize("chunk", [1, 7, 100, 4096, 1 << 20])
def test_any_chunking_yields_the_payload(tmp_path: Path, keys: Keys, chunk: int) -> None:
    payload = os.urandom(5000)
    (tmp_path / "p").write_bytes(payload)
    from chargeport.bundle import sign_bundle

    sign_bundle(tmp_path / "p", keys.key, "2.0.0", TARGET, tmp_path / "b")
    assert feed_all((tmp_path / "b").read_bytes(), [keys.pub], chunk) == payload


def _tamper(data: bytes, how: str) -> bytes:
    if how == "truncated":
        return data[:-10]
    if how == "extended":
        return data + b"x"
    if how == "payload-bit":
        return data[:-5] + bytes([data[-5] ^ 1]) + data[-4:]
    if how == "manifest-bit":
        i = data.index(b'"version"')
        return data[:i] + b"'" + data[i + 1 :]
    if how == "bad-magic":
        return b"NOTABNDL" + data[8:]
    if how == "header-only":
        return data[:20]
    raise AssertionError(how)


@pytest.mark.parametrize(
    ("how", "error"),
    [
        ("truncated", Corrupt),
        ("extended", Corrupt),
        ("payload-bit", Corrupt),
        ("manifest-bit", InvalidSignature),  # the signature covers the manifest bytes
        ("bad-magic", Corrupt),
        ("header-only", Corrupt),
    ],
)
def test_tampered_bundles_are_refused(
    tmp_path: Path, keys: Keys, how: str, error: type[Exception]
) -> None:
    data = make_bundle(tmp_path, keys.key, size=3000).read_bytes()
    with pytest.raises(error):
        feed_all(_tamper(data, how), [keys.pub], 512)


def test_untrusted_signer_and_wrong_target(tmp_path: Path, keys: Keys) -> None:
    bundle = make_bundle(tmp_path, keys.other_key)
    with pytest.raises(InvalidSignature):
        verify_file(bundle, [load_public_key(keys.pub)], TARGET)
    assert verify_file(bundle, [load_public_key(keys.other_pub)], None).version == "2.0.0"
    with pytest.raises(WrongTarget):
        verify_file(bundle, [load_public_key(keys.other_pub)], "other-board")


def test_signature_refused_before_the_payload_arrives(tmp_path: Path, keys: Keys) -> None:
    data = make_bundle(tmp_path, keys.other_key, size=100_000).read_bytes()
    v = StreamingVerifier([load_public_key(keys.pub)], TARGET)
    with pytest.raises(InvalidSignature):
        v.feed(data[:1000])  # header only: a board stops receiving right there


def test_fw_cli_keygen_sign_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "k"
    assert cli(["fw", "keygen", "--out", str(key)]) == 0
    (tmp_path / "img").write_bytes(b"firmware" * 1000)
    bundle = tmp_path / "img.bundle"
    args = ["fw", "sign", "--key", str(key), "--version", "3.1.0", "--target", TARGET]
    assert cli([*args, str(tmp_path / "img"), "-o", str(bundle)]) == 0
    assert cli(["fw", "verify", "--pub", f"{key}.pub", "--target", TARGET, str(bundle)]) == 0
    assert "3.1.0" in capsys.readouterr().out
    assert cli(["fw", "verify", "--pub", f"{key}.pub", "--target", "x", str(bundle)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "target" in err
    assert cli(["fw", "verify", "--pub", str(key), str(bundle)]) == 2  # a private key file
    assert cli(["fw", "sign", "--key", str(key), "--version", "1.0.0", "--target", "t",
                str(tmp_path / "missing"), "-o", str(bundle)]) == 2  # fmt: skip
