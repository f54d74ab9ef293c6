"""`chargeport pki init`: create the station CA and the board certificates."""

from __future__ import annotations

import argparse

from chargeport.pki import init_pki

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="pki_command", required=True, metavar="ACTION")
    init = sub.add_parser("init", help="create the CA (if missing), main and satellite certs")
    init.add_argument("--dir", required=True, help="PKI directory (link.pki_dir)")
    init.add_argument("--station", required=True, help="station id (goes into every cert)")
    init.add_argument(
        "--satellite",
        action="append",
        default=[],
        metavar="SERIAL",
        help="issue a certificate for this satellite serial (repeatable)",
    )
    init.add_argument("--days", type=int, default=3650, help="validity (default 3650)")
    init.add_argument("--force", action="store_true", help="replace the CA and every cert")


def run(args: argparse.Namespace) -> int:
    written = init_pki(args.dir, args.station, args.satellite, days=args.days, force=args.force)
    for path in written:
        print(path)
    if not written:
        print(f"{args.dir}: everything already present (use --force to replace)")
    return 0
