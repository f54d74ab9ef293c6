"""A satellite advertiser in its own process, driven over stdin (one JSON command per line).

Prints `READY <instance name>` once announced and `UPDATED` after each update; stdin EOF or
`{"stop": true}` withdraws the advertisement and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from satellite.advertiser import Advertiser

__all__ = ["main"]


async def _run(args: argparse.Namespace) -> None:
    adv = Advertiser(
        args.serial,
        args.port,
        boot_id=args.boot,
        firmware_version=args.fw,
        role=args.role,
        interfaces=None if args.interface == ["all"] else args.interface,
        addresses=args.address,
        cooperating_responders=args.cooperating,
    )
    await adv.start()
    print("READY", adv.name.split(".")[0], flush=True)
    loop = asyncio.get_running_loop()
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            cmd = json.loads(line)
            if cmd.get("stop"):
                break
            await adv.update(**cmd["update"])
            print("UPDATED", flush=True)
    finally:
        await adv.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serial", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--boot", default="boot-1")
    parser.add_argument("--fw", default="1.0.0")
    parser.add_argument("--role", default="satellite")
    parser.add_argument("--interface", action="append", default=None)
    parser.add_argument("--address", action="append", default=None)
    parser.add_argument("--cooperating", action="store_true")
    args = parser.parse_args()
    args.interface = args.interface or ["127.0.0.1"]
    asyncio.run(_run(args))


if __name__ == "__main__":
    main()
