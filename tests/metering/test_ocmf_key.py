"""The board's metering key and page counters on disk, and `chargeport meter pubkey|verify`."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pyocmf import OCMF

from chargeport_cli.cli import main
from evse.meter_key import (
    KEY_FILE,
    PAGING_FILE,
    MeterKeyError,
    SigningMeter,
    load_or_create_signer,
    load_signer,
)
from evse.ocmf import (
    MeterIdentity,
    Reading,
    ReadingReason,
    UserAssignment,
)
from evse.ocmf_verify import (
    PagingGuard,
    key_id,
    load_public_key,
    verify_record,
)

IDENTITY = MeterIdentity("chargeport", "SAT-0003", "4.2.0", "chargeport", "internal", "SAT-0003")
USER = UserAssignment.from_id_tag("TAG-1")
T0 = 1_764_860_707.0


def test_first_start_makes_a_0600_key_that_later_starts_reuse(tmp_path: Path) -> None:
    signer, created = load_or_create_signer(tmp_path)
    assert created
    path = tmp_path / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again, created_again = load_or_create_signer(tmp_path)
    assert not created_again
    assert again.public_key_der() == signer.public_key_der()


def test_a_key_readable_by_others_is_restricted_to_0600(tmp_path: Path) -> None:
    load_or_create_signer(tmp_path)
    path = tmp_path / KEY_FILE
    path.chmod(0o644)
    load_signer(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_corrupt_key_is_an_error_and_is_never_replaced(tmp_path: Path) -> None:
    """The public key is on the housing label: a broken key file must not become a new key."""
    path = tmp_path / KEY_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a key")
    with pytest.raises(MeterKeyError, match="not a PEM private key"):
        load_or_create_signer(tmp_path)
    assert path.read_bytes() == b"not a key"


@pytest.mark.filterwarnings("ignore:Identification Status:UserWarning")
def test_pages_survive_a_restart_and_never_repeat(tmp_path: Path) -> None:
    """OCMF Table 2: the counter counts on across restarts, so every page is new per key."""
    first = SigningMeter.open(tmp_path, IDENTITY)
    texts = [
        first.record(Reading(T0, 10.0, ReadingReason.BEGIN), USER).text,
        first.record(Reading(T0 + 5, 11.0), None).text,
    ]
    second = SigningMeter.open(tmp_path, IDENTITY)  # the board restarted
    assert second.public_key_hex == first.public_key_hex
    texts += [
        second.record(Reading(T0 + 60, 500.0, ReadingReason.END), USER).text,
        second.record(Reading(T0 + 65, 501.0), None).text,
    ]
    key = load_public_key(second.public_key_hex)
    guard = PagingGuard()
    pages = []
    for text in texts:
        rec = verify_record(text, key)
        guard.accept(key_id(key), rec)
        pages.append(rec.page_label)
        assert OCMF.from_string(text).verify_signature(second.public_key_hex)
    assert pages == ["T1", "F1", "T2", "F2"]


def test_counters_of_another_key_are_refused(tmp_path: Path) -> None:
    SigningMeter.open(tmp_path, IDENTITY).record(Reading(T0, 1.0, ReadingReason.BEGIN), USER)
    other = tmp_path / "other"
    (other / PAGING_FILE).parent.mkdir(parents=True)
    (other / PAGING_FILE).write_bytes((tmp_path / PAGING_FILE).read_bytes())
    with pytest.raises(MeterKeyError, match="another metering key"):
        SigningMeter.open(other, IDENTITY)


@pytest.mark.parametrize(
    ("content", "message"),
    [("{", "unreadable"), ('{"key": "00", "T": 2}', "another metering key")],
)
def test_unreadable_counters_are_an_error(tmp_path: Path, content: str, message: str) -> None:
    SigningMeter.open(tmp_path, IDENTITY)
    (tmp_path / PAGING_FILE).write_text(content)
    with pytest.raises(MeterKeyError, match=message):
        SigningMeter.open(tmp_path, IDENTITY)


def test_bad_counter_value_is_an_error(tmp_path: Path) -> None:
    meter = SigningMeter.open(tmp_path, IDENTITY)
    (tmp_path / PAGING_FILE).write_text(f'{{"key": "{meter.public_key_hex}", "T": 0}}')
    with pytest.raises(MeterKeyError, match="integer >= 1"):
        SigningMeter.open(tmp_path, IDENTITY)


# ------------------------------------------------------------------ the CLI


@pytest.fixture
def board(tmp_path: Path) -> tuple[Path, SigningMeter, list[str]]:
    """A state dir with a key, and a transaction's begin and end records."""
    meter = SigningMeter.open(tmp_path / "state", IDENTITY)
    records = [
        meter.record(Reading(T0, 1000.0, ReadingReason.BEGIN), USER).text,
        meter.record(Reading(T0 + 900, 8000.0, ReadingReason.END), USER).text,
    ]
    return tmp_path / "state", meter, records


def test_cli_pubkey_prints_the_hex_der_key(
    board: tuple[Path, SigningMeter, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    state, meter, _ = board
    assert main(["meter", "pubkey", "--state-dir", str(state)]) == 0
    assert capsys.readouterr().out.strip() == meter.public_key_hex


def test_cli_pubkey_without_a_key_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["meter", "pubkey", "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no metering key" in err
    assert not (tmp_path / KEY_FILE).exists()  # printing a key never makes one


def test_cli_verify_string_and_file(
    board: tuple[Path, SigningMeter, list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, meter, records = board
    assert main(["meter", "verify", records[0], "--pubkey", meter.public_key_hex]) == 0
    assert capsys.readouterr().out.startswith("valid: T1 TX=B 1.000 kWh")
    both = tmp_path / "tx.ocmf"
    both.write_text("\n".join(records) + "\n")
    keyfile = tmp_path / "key.hex"
    keyfile.write_text(meter.public_key_hex + "\n")
    assert main(["meter", "verify", str(both), "--pubkey", str(keyfile)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in out] == ["T1", "T2"]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("tampered", "signature does not match"),
        ("replayed", "replayed or out of order"),
        ("wrong-key", "another key"),
        ("garbage", "not an OCMF record"),
    ],
)
def test_cli_verify_invalid_exits_1_with_one_line(
    board: tuple[Path, SigningMeter, list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    reason: str,
) -> None:
    _, meter, records = board
    key = meter.public_key_hex
    lines = records
    if case == "tampered":
        lines = [records[0], records[1].replace('"RV":8.000', '"RV":9.000')]
    elif case == "replayed":
        lines = [records[0], records[1], records[0]]
    elif case == "wrong-key":
        key = SigningMeter.open(tmp_path / "other", IDENTITY).public_key_hex
    elif case == "garbage":
        lines = [records[0], "OCMF-ish nonsense"]
    path = tmp_path / "records"
    path.write_text("\n".join(lines))
    assert main(["meter", "verify", str(path), "--pubkey", key]) == 1
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("invalid: ") and reason in last


def test_cli_verify_bad_arguments_exit_2(
    board: tuple[Path, SigningMeter, list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, meter, records = board
    assert main(["meter", "verify", records[0], "--pubkey", "nonsense"]) == 2
    assert "--pubkey" in capsys.readouterr().err
    missing = str(tmp_path / "missing.ocmf")
    assert main(["meter", "verify", missing, "--pubkey", meter.public_key_hex]) == 2
    assert "neither an OCMF record nor a file" in capsys.readouterr().err
