"""`chargeport hal`: board hardware chores. `hal provision` puts the MCU link key on a board.

The key is read from (or, with `--generate`, written to) a file and never printed or logged;
output names it only by `key_id`, a short fingerprint.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path

from chargeport.errors import ChargeportError
from hal.mculink.codec import LinkError
from hal.mculink.provision import async_provision, key_id
from hal.mculink.transport import load_link_key

__all__ = ["add_arguments", "run"]

log = logging.getLogger("chargeport.hal")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="hal_command", required=True, metavar="ACTION")
    p = sub.add_parser(
        "provision",
        help="put the MCU link key on a board (docs/mcu-link.md)",
        description="Put the MCU link key on a board's safety MCU. A blank MCU takes the key "
        "directly; one that already has a key needs --current-key-file. The new key is proven "
        "by a handshake before success is reported. The key is never printed.",
    )
    p.add_argument("--device", required=True, help="the MCU's serial device, e.g. /dev/ttyS1")
    p.add_argument(
        "--key-file",
        required=True,
        help="the new key: 64 hex digits (the file port.link_key_file names)",
    )
    p.add_argument(
        "--current-key-file",
        help="the key the board holds now, when replacing a key (not needed on a blank board)",
    )
    p.add_argument(
        "--generate",
        action="store_true",
        help="create --key-file with a fresh random key (mode 0600) if it does not exist",
    )
    p.add_argument("--baudrate", type=int, default=115_200, help="serial speed (default 115200)")
    p.add_argument(
        "--timeout", type=float, default=1.0, help="seconds to wait for each answer (default 1)"
    )


def run(args: argparse.Namespace) -> int:
    key_file = Path(args.key_file)
    if args.generate and not key_file.exists():
        _write_new_key(key_file)
    try:
        key = load_link_key(str(key_file))
        current = load_link_key(args.current_key_file) if args.current_key_file else None
    except LinkError as exc:
        raise ChargeportError(str(exc).replace("port.link_key_file", "key file")) from None
    try:
        outcome = asyncio.run(
            async_provision(
                args.device,
                key,
                current_key=current,
                baudrate=args.baudrate,
                timeout_s=args.timeout,
            )
        )
    except LinkError as exc:
        raise ChargeportError(str(exc)) from None
    log.info("MCU on %s: link key %s %s", args.device, key_id(key), outcome.value)
    print(f"{args.device}: link key {key_id(key)} {outcome.value}")
    return 0


def _write_new_key(path: Path) -> None:
    """A fresh key, readable by its owner only, written without a window of wider mode."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ChargeportError(f"--key-file {str(path)!r}: cannot create it: {exc}") from None
    with os.fdopen(fd, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
