"""Discovery benchmark on 127.0.0.1: three satellite processes (link agent + mDNS advertiser, mTLS)
start; time until the main's three RemotePorts, located by MdnsLocator, are all Ready
(discovery + handshake). Baseline in the same run: the same start with a StaticLocator that
already knows the ports (handshake only), so `all_ready_ratio` is the price of discovery.
Then the time for the locator to follow a satellite that re-announces a new address.
Prints one JSON object last. `--runs N` for longer runs (default fits in 45 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from chargeport.pki import channel_credentials, init_pki
from main_node.discovery import MdnsLocator
from main_node.locator import Address, Locator, StaticLocator
from main_node.remote_port import RemotePort
from satellite.advertiser import Advertiser

ROOT = Path(__file__).resolve().parent.parent

# One satellite: the real link agent (satellite.host) on a FakePort plus the real advertiser.
SATELLITE = """
import asyncio, sys
from chargeport.fake_port import FakePort
from chargeport.port import PortInfo
from satellite.advertiser import Advertiser
from satellite.host import AgentHost
async def main():
    serial, pki, listen, advertise = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
    host = AgentHost(FakePort(PortInfo(1, serial, "1.0.0", 32.0, 3), enabled=False),
                     serial=serial, pki_dir=pki, listen=listen)
    port = await host.start()
    if advertise:
        adv = Advertiser(serial, port, boot_id=host.boot_id, firmware_version="1.0.0",
                         cooperating_responders=True)
        await adv.start()
    print("UP", port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if advertise:
        await adv.stop()
    await host.stop(0)
asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def one_start(pki: Path, serials: list[str], mdns: bool) -> float:
    """Seconds from spawning the satellites to all three RemotePorts Ready."""
    ports = {s: free_port() for s in serials}
    locator: Locator
    if mdns:
        expected = {s: i + 2 for i, s in enumerate(serials)}
        mdns_locator = MdnsLocator(expected, interfaces=["127.0.0.1"])
        await mdns_locator.start()
        locator = mdns_locator
    else:
        locator = StaticLocator({s: ("127.0.0.1", p) for s, p in ports.items()})
    remotes = [
        RemotePort(
            s,
            i + 2,
            locator,
            station_id="bench",
            main_boot_id="bench-main",
            credentials=channel_credentials(pki),
            retry_max_s=0.2,
        )
        for i, s in enumerate(serials)
    ]
    procs: list[asyncio.subprocess.Process] = []
    try:
        for rp in remotes:
            await rp.start()
        t0 = time.perf_counter()
        for s in serials:
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-c",
                    SATELLITE,
                    s,
                    str(pki),
                    f"127.0.0.1:{ports[s]}",
                    "1" if mdns else "0",
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.DEVNULL,
                    cwd=ROOT,
                )
            )
        async with asyncio.timeout(30):
            await asyncio.gather(*(rp.wait_connected() for rp in remotes))
        return time.perf_counter() - t0
    finally:
        for rp in remotes:
            await rp.stop()
        for p in procs:
            assert p.stdin is not None
            p.stdin.close()
        for p in procs:
            try:
                await asyncio.wait_for(p.wait(), 10)
            except TimeoutError:
                p.kill()
                await p.wait()
        if mdns:
            await mdns_locator.stop()


async def address_changes(runs: int) -> list[float]:
    """Seconds from a satellite re-announcing a new address to the locator returning it."""
    serial = f"BENCH-{uuid.uuid4().hex[:6]}"
    locator = MdnsLocator({serial: 2}, interfaces=["127.0.0.1"])
    adv = Advertiser(serial, 40000, boot_id="b", firmware_version="1", cooperating_responders=True)
    samples: list[float] = []
    async with locator:
        await adv.start()
        try:
            old: Address = await asyncio.wait_for(locator.wait_change(serial, None), 10)
            for i in range(runs):
                t0 = time.perf_counter()
                # update() returns after all its announcements; the first one is what counts.
                announce = asyncio.create_task(adv.update(port=40001 + i))
                old = await asyncio.wait_for(locator.wait_change(serial, old), 10)
                samples.append(time.perf_counter() - t0)
                await announce
        finally:
            await adv.stop()
    return samples


async def main(runs: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        pki = Path(tmp) / "pki"
        token = uuid.uuid4().hex[:4].upper()
        all_serials = [[f"B{token}-{r}-{i}" for i in range(3)] for r in range(runs)]
        init_pki(pki, "bench", [s for group in all_serials for s in group])
        mdns = [await one_start(pki, group, True) for group in all_serials]
        static = [await one_start(pki, group, False) for group in all_serials]
    moves = await address_changes(max(3, runs))
    all_ready = statistics.median(mdns)
    baseline = statistics.median(static)
    return {
        "all_ready_s": round(all_ready, 3),
        "all_ready_static_s": round(baseline, 3),
        "all_ready_ratio": round(all_ready / baseline, 3),
        "address_change_s": round(statistics.median(moves), 3),
        "runs": runs,
        "handshake_included": True,
        "mtls": True,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="starts per mode (median)")
    print(json.dumps(asyncio.run(main(parser.parse_args().runs))))
