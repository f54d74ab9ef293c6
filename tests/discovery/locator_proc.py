"""A main-side MdnsLocator in its own process (for network namespaces), reporting on stdout.

Prints one JSON line `{"serial": S, "address": [host, port]}` each time a configured serial's
address changes; stdin `report` prints the report's boards as JSON; EOF stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from main_node.discovery import MdnsLocator

__all__ = ["main"]


async def _follow(locator: MdnsLocator, serial: str) -> None:
    addr = None
    while True:
        addr = await locator.wait_change(serial, addr)
        print(json.dumps({"serial": serial, "address": list(addr)}), flush=True)


async def _run(serials: list[str], interfaces: list[str] | None) -> None:
    locator = MdnsLocator({s: i + 2 for i, s in enumerate(serials)}, interfaces=interfaces)
    loop = asyncio.get_running_loop()
    async with locator, asyncio.TaskGroup() as tg:
        followers = [tg.create_task(_follow(locator, s)) for s in serials]
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            if line.strip() == "report":
                boards = [b.to_json() for b in locator.report().boards]
                print(json.dumps({"boards": boards}), flush=True)
        for task in followers:
            task.cancel()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--expect", action="append", default=[])
    parser.add_argument("--interface", action="append", default=None)
    args = parser.parse_args()
    interfaces = None if args.interface in (None, ["all"]) else args.interface
    asyncio.run(_run(args.expect, interfaces))


if __name__ == "__main__":
    main()
