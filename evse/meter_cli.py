"""`chargeport meter`: the board's metering key and OCMF record checks.

    chargeport meter pubkey [--state-dir DIR]     print the public key (hex DER SPKI)
    chargeport meter verify RECORD --pubkey KEY   exit 0 valid, 1 invalid with a one-line reason

RECORD is a record (`OCMF|...` or its hex) or a file with one record per line (e.g. a
transaction's begin and end); in a file the pages must increase per context, so a replayed or
reordered record fails. KEY is the public key (hex or base64 DER, or PEM) or a file holding it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from chargeport.errors import ChargeportError
from evse.meter_key import MeterKeyError, load_signer
from evse.ocmf import (
    public_key_hex,
)
from evse.ocmf_verify import (
    InvalidRecord,
    PagingGuard,
    ParsedRecord,
    key_id,
    load_public_key,
    verify_record,
)

__all__ = ["add_arguments", "run"]

_DEFAULT_STATE_DIR = "/var/lib/chargeport"
_MAX_INPUT = 4 * 1024 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="meter_command", required=True, metavar="ACTION")
    pub = sub.add_parser("pubkey", help="print the board's metering public key (for the label)")
    pub.add_argument(
        "--state-dir",
        default=_DEFAULT_STATE_DIR,
        help=f"the board's state dir (board.state_dir / station.state_dir; {_DEFAULT_STATE_DIR})",
    )
    ver = sub.add_parser("verify", help="check OCMF records against a public key")
    ver.add_argument("record", metavar="FILE_OR_STRING", help="a record, or a file of records")
    ver.add_argument("--pubkey", required=True, metavar="KEY", help="public key, or its file")


def run(args: argparse.Namespace) -> int:
    if args.meter_command == "pubkey":
        try:
            signer = load_signer(args.state_dir)
        except MeterKeyError as exc:
            raise ChargeportError(str(exc)) from None
        print(public_key_hex(signer))
        return 0
    return _verify(args.record, args.pubkey)


def _read_small(path: Path, what: str) -> str:
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_INPUT + 1)
    except OSError as exc:
        raise ChargeportError(f"{path}: cannot read the {what}: {exc.strerror}") from None
    if len(data) > _MAX_INPUT:
        raise ChargeportError(f"{path}: {what} file larger than {_MAX_INPUT} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ChargeportError(f"{path}: the {what} file is not UTF-8 text") from None


def _records(arg: str) -> list[tuple[str, str]]:
    """(where, text) of each record named by the FILE_OR_STRING argument."""
    if arg.lstrip().startswith("OCMF|"):
        return [("record", arg)]
    path = Path(arg)
    if not path.is_file():
        if all(c in "0123456789abcdefABCDEF" for c in arg.strip()) and arg.strip():
            return [("record", arg)]  # a hex-encoded record
        raise ChargeportError(f"{arg}: neither an OCMF record nor a file")
    lines = _read_small(path, "record").splitlines()
    found = [(f"{path}:{n}", line) for n, line in enumerate(lines, 1) if line.strip()]
    if not found:
        raise ChargeportError(f"{path}: no records in the file")
    return found


def _describe(rec: ParsedRecord) -> str:
    first = rec.readings[0]
    parts = [rec.page_label]
    if "TX" in first:
        parts.append(f"TX={first['TX']}")
    parts.append(f"{first.get('RV')} {first.get('RU', '')}".strip())
    parts.append(f"at {first.get('TM')}")
    parts.append(f"meter {rec.payload.get('MS', rec.payload.get('GS'))}")
    return " ".join(str(p) for p in parts)


def _verify(record_arg: str, key_arg: str) -> int:
    key_path = Path(key_arg)
    key_text = _read_small(key_path, "public key") if key_path.is_file() else key_arg
    try:
        key = load_public_key(key_text)
    except InvalidRecord as exc:
        raise ChargeportError(f"--pubkey: {exc}") from None
    guard, kid = PagingGuard(), key_id(key)
    records = _records(record_arg)
    for where, text in records:
        try:
            rec = verify_record(text, key)
            guard.accept(kid, rec)
        except InvalidRecord as exc:
            prefix = f"{where}: " if len(records) > 1 else ""
            print(f"invalid: {prefix}{exc}")
            return 1
        print(f"valid: {_describe(rec)}")
    return 0
