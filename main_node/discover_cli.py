"""`chargeport discover`: list the boards advertised on mDNS, as a table or JSON for scripts."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from rich.console import Console
from rich.table import Table

from chargeport.config import MainConfig, load_config
from main_node.discovery import BoardRecord, DiscoveryReport, browse_report

__all__ = ["add_arguments", "render_table", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `chargeport discover`."""
    parser.add_argument(
        "--timeout", type=float, default=3.0, metavar="S", help="listen this long (default 3)"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument(
        "--interface",
        action="append",
        metavar="IP",
        help="interface address or name to browse on (repeatable; 'all' = every interface); "
        "default: link.mdns_interfaces from --config, else every interface",
    )
    parser.add_argument(
        "--config",
        metavar="TOML",
        help="a main config: also report configured-but-unseen and unconfigured boards",
    )


def render_table(
    boards: list[BoardRecord], expected: dict[str, int], unroutable: dict[str, str] | None = None
) -> Table:
    """The boards as a rich table; a connector column when a config names them.

    An address another host cannot dial (0.0.0.0, loopback seen on a LAN) is marked.
    """
    unroutable = unroutable or {}
    table = Table(title=f"chargeport boards on mDNS ({len(boards)})")
    columns = ["serial", "role", "address", "port", "firmware", "boot id"]
    if expected:
        columns.insert(1, "connector")
    for name in columns:
        table.add_column(name)
    for b in boards:
        address = b.address + (" (unroutable)" if b.serial in unroutable else "")
        row = [b.serial, b.role, address, str(b.port), b.firmware_version, b.boot_id]
        if expected:
            row.insert(1, str(expected.get(b.serial, "-")))
        table.add_row(*row)
    return table


def run(args: argparse.Namespace) -> int:
    """Browse, print, and exit 1 when the config's expectations are not met."""
    expected: dict[str, int] | None = None
    interfaces: list[str] | None = None  # a newcomer's first look: the whole LAN
    if args.config:
        config = load_config(args.config, MainConfig)
        expected = {s.serial: s.connector for s in config.satellites}
        interfaces = config.link.mdns_interfaces
    if args.interface:
        interfaces = args.interface
    if not getattr(args, "verbose", False):
        # The problems are printed below once; the locator's running log would repeat them.
        logging.getLogger("main_node.discovery").setLevel(logging.ERROR)
    report: DiscoveryReport = asyncio.run(browse_report(args.timeout, interfaces, expected))
    if args.json:
        boards = [
            b.to_json() | {"unroutable": report.unroutable.get(b.serial, "")} for b in report.boards
        ]
        print(json.dumps(boards, indent=2))
    else:
        Console().print(render_table(report.boards, expected or {}, report.unroutable))
    problems = report.problems()
    for line in problems:
        print(f"chargeport discover: {line}", file=sys.stderr)
    return 1 if problems else 0
