"""A satellite agent process over a FakePort, for kill -9 tests.

Prints `LISTENING <port>` once serving; stdin lines script the port: `plug`, `ready`, `meter WH`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from chargeport.fake_port import FakePort
from chargeport.port import PortInfo
from satellite.host import AgentHost


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serial", default="SAT-1")
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--pki")
    ap.add_argument("--grace", type=float, default=10.0)
    args = ap.parse_args()
    fake = FakePort(PortInfo(1, args.serial, "3.0.0", 32.0, 3), enabled=False)
    host = AgentHost(
        fake, serial=args.serial, pki_dir=args.pki, listen=args.listen, grace_period_s=args.grace
    )
    port = await host.start()
    print(f"LISTENING {port}", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().split():
        if line[0] == "plug":
            fake.plug_in()
        elif line[0] == "ready":
            fake.ev_ready()
        elif line[0] == "meter":
            fake.meter(float(line[1]), 7000.0)
        print(f"OK {line[0]}", flush=True)
    await host.stop(0)


if __name__ == "__main__":
    asyncio.run(main())
