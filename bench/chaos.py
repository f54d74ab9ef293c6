"""Chaos bench (issue 12): the simulated station charges while faults hit it in random order.

The main and its satellites run as real processes under the sim's Supervisor (restarted as
systemd would), with the built-in OCPP central system in this process and one EV per gun that
charges for ever. Faults, in a seeded random order: kill -9 of a satellite, kill -9 of the
main, SIGSTOP/SIGCONT of a board, a full state disk (the main's state dir on a tmpfs that is
filled up; left out, with the reason in the JSON, where mounting is impossible), malformed
CSMS frames, a CSMS outage and a lost main-satellite link (1 s to `--link-loss-max-s`, the
satellite metering on; 120 s for the long run). After each fault the station must come back:
every gun linked and charging, the CSMS connected.

At the end every open transaction is stopped remotely and the journal drains. Figures:
`survived` (tries after which the station came back), `tx_lost` (a StartTransaction without
its StopTransaction, or a duplicate one), `wh_lost` (EV-side energy, summed over every board
lifetime from the registers the main reports, minus billed meterStop - meterStart) and
`wh_lost_fraction`. The baseline measured in the same run is the energy of the same station
before the first fault (`baseline_wh_per_s`), against which `energy_ratio` compares the
chaotic part. Prints one JSON object as the last line; the defaults finish in under 45 s.
`--tries N --minutes M` for long runs.
"""

# ruff: noqa: E402  (the sys.path fix below must run before `ocpp` is imported)
from __future__ import annotations

import sys
from pathlib import Path

# bench/ocpp.py is named like the `ocpp` package; keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from simulation.cli import fetch_state
from simulation.csms import CentralSystem
from simulation.station import SimLayout, prepare, toml_value
from simulation.supervisor import ProcessSpec, Supervisor

TAG = "TAG-OK"
State = dict[str, Any]
FRAMES = [  # issue 12's frames and friends: each must fail alone
    '[2,"c1","SetChargingProfile",{"connectorId":1,"csChargingProfiles":{"chargingProfileId":1,'
    '"stackLevel":1,"chargingProfilePurpose":"TxDefaultProfile","chargingProfileKind":"Absolute",'
    '"chargingSchedule":{"chargingRateUnit":"A","chargingSchedulePeriod":[{"startPeriod":0,'
    '"limit":1e27}]}}}]',
    '[2,"c2","DataTransfer",{"vendorId":"v","data":' + "[" * 400_000,
    '[2,17,"Reset",{"type":"Hard"}]',
    '[2,"c3","NoSuchAction",{}]',
    '[2,"c4","ChangeAvailability",{"connectorId":-1,"type":"Inoperative"}]',
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _set(path: Path, table: str, **values: object) -> None:
    """Set `key = value` in `[table]` of a generated TOML file."""
    lines = path.read_text().splitlines()
    start = lines.index(f"[{table}]")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    body = [
        line
        for line in lines[start + 1 : end]
        if not any(re.match(rf"{k}\s*=", line) for k in values)
    ]
    body += [f"{k} = {toml_value(v)}" for k, v in values.items()]
    path.write_text("\n".join([*lines[: start + 1], *body, *lines[end:]]) + "\n")


class LinkProxy:
    """A loopback TCP proxy between the main and one satellite: `cut()` drops the link (both
    boards keep running; the satellite keeps metering) until `restore()`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.paused = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.paused:
            writer.close()
            return
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:  # the satellite is restarting
            writer.close()
            return
        self._writers |= {writer, up_w}
        pipes = {
            asyncio.ensure_future(self._pipe(reader, up_w)),
            asyncio.ensure_future(self._pipe(up_r, writer)),
        }
        self._tasks |= pipes
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for w in (writer, up_w):
            w.close()
            self._writers.discard(w)
        for t in pipes:
            t.cancel()
        self._tasks -= pipes

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await r.read(65536):
                w.write(data)
                await w.drain()

    def cut(self) -> None:
        self.paused = True
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self.paused = False

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class EnergyWatch:
    """EV-side energy per gun: the sum over every board lifetime of its register's growth."""

    def __init__(self) -> None:
        self.last: dict[int, float] = {}
        self.total: dict[int, float] = {}
        self.boot: dict[int, str] = {}

    def sample(self, state: State) -> None:
        for g in state["guns"]:
            cid, reg, boot = g["connector"], float(g["energy_wh"]), g["boot_id"] or ""
            if not g["link_up"] or not boot:
                continue  # no fresh reading behind a lost link
            last = self.last.get(cid)
            if last is None or boot != self.boot.get(cid):
                # A new board lifetime: a restarted satellite reads on from 0, a restarted
                # main from its persisted register; energy since our last look counts if the
                # register went on (same meter), not if it restarted.
                if last is not None and reg >= last:
                    self.total[cid] = self.total.get(cid, 0.0) + reg - last
                self.boot[cid] = boot
            elif reg > last:
                self.total[cid] = self.total.get(cid, 0.0) + reg - last
            self.last[cid] = reg

    def wh(self) -> float:
        return sum(self.total.values())


class Chaos:
    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args = args
        self.root = root
        self.rng = random.Random(args.seed)
        self.csms = CentralSystem([TAG])
        self.supervisor = Supervisor(stop_timeout_s=5.0)
        self.watch = EnergyWatch()
        self.http: aiohttp.ClientSession | None = None
        self.dashboard = ""
        self.layout: SimLayout | None = None
        self.mounted: Path | None = None
        self.skipped: dict[str, str] = {}
        self.faults_run: list[str] = []
        self.recover_s: list[float] = []
        self.proxies: dict[str, LinkProxy] = {}  # per satellite serial: the link to cut
        self.link_losses_s: list[float] = []

    # ------------------------------------------------------------ station

    def _mount_state(self, main_dir: Path) -> None:
        main_dir.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(main_dir)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0:
            self.mounted = main_dir
        else:
            reason = done.stderr.strip() or "mount failed (not root?)"
            self.skipped["disk_full"] = f"no tmpfs: {reason}"

    async def start(self) -> None:
        args = self.args
        state_dir = self.root / "station"
        self._mount_state(state_dir / "main")
        await self.csms.start()
        dashboard_port = _free_port()
        guns = list(range(1, args.satellites + 2))
        scenarios = {}
        for c in guns:
            path = self.root / f"gun{c}.txt"
            # The satellites link (static addresses) before the main's OCPP session is up: a
            # swipe then would be refused offline, so the driver waits a few seconds first.
            path.write_text(
                f"sleep 15\nplugin\nauth {TAG}\nwait_pwm\ndraw_power_regulated 16,3\n"
                "sleep 1000000\n"
            )
            scenarios[c] = path
        layout = prepare(
            state_dir,
            satellites=args.satellites,
            csms_url=self.csms.url,
            dashboard_port=dashboard_port,
            operator_password="",
            scenarios=scenarios,
            mqtt=None,
            grace_period_s=args.grace,
            sample_rate_hz=1000,
        )
        self.layout = layout
        for config in [layout.main_config, *layout.satellite_configs.values()]:
            _set(config, "link", keepalive_s=0.5, grace_period_s=args.grace, mdns=False)
        # Each satellite on a fixed port, the main dialling it through a proxy the link-loss
        # fault cuts (no netem on these machines: the loss is made in the link's TCP path).
        main_text = layout.main_config.read_text()
        for serial, config in layout.satellite_configs.items():
            sat_port = _free_port()
            _set(config, "agent", listen=f"127.0.0.1:{sat_port}", advertise=False)
            proxy = LinkProxy(("127.0.0.1", sat_port))
            via = await proxy.start()
            self.proxies[serial] = proxy
            main_text = re.sub(
                rf'(serial = "{re.escape(serial)}"\nconnector = \d+)',
                rf'\1\naddress = "127.0.0.1:{via}"',
                main_text,
            )
        layout.main_config.write_text(main_text)
        if args.no_hold:  # the old rule, for comparison: close a lost board at the grace
            _set(layout.main_config, "link", lost_stop_hold_s=0.0)
        self.dashboard = f"http://127.0.0.1:{dashboard_port}/"
        self.http = aiohttp.ClientSession()
        boards = [(s, "satellite", c) for s, c in layout.satellite_configs.items()]
        for name, role, config in [*boards, ("main", "main", layout.main_config)]:
            argv = [sys.executable, "-m", "chargeport_cli", role, "--config", str(config)]
            self.supervisor.add(
                ProcessSpec(
                    name=name,
                    argv=[*argv, "--speed", str(args.speed)],
                    log_path=layout.logs / f"{name.lower()}.log",
                    restart_delay_s=0.2,
                )
            )

    async def state(self) -> State | None:
        assert self.http is not None
        state = await fetch_state(self.http, self.dashboard)
        if state is not None:
            self.watch.sample(state)
        return state

    def healthy(self, state: State | None) -> bool:
        if state is None or not self.csms.connections:
            return False
        guns = state["guns"]
        return len(guns) == self.args.satellites + 1 and all(
            g["link_up"] and g["transaction_id"] and g["power_w"] > 0 for g in guns
        )

    async def until_healthy(self, within_s: float) -> bool:
        try:
            async with asyncio.timeout(within_s):
                while not self.healthy(await self.state()):
                    await asyncio.sleep(0.2)
        except TimeoutError:
            return False
        return True

    async def watch_for(self, seconds: float) -> None:
        """Keep sampling the registers for `seconds` (the station runs on meanwhile)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await self.state()
            await asyncio.sleep(0.2)

    # ------------------------------------------------------------ faults

    def _board(self, satellites_only: bool = False) -> str:
        assert self.layout is not None
        names = list(self.layout.satellite_configs)
        return self.rng.choice(
            names if satellites_only or not self.rng.random() < 0.5 else ["main"]
        )

    def _signal(self, name: str, sig: signal.Signals) -> None:
        pid = self.supervisor.pid(name)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    async def kill_satellite(self) -> None:
        self._signal(self._board(satellites_only=True), signal.SIGKILL)

    async def kill_main(self) -> None:
        self._signal("main", signal.SIGKILL)

    async def stop_cont(self) -> None:
        name = self._board()
        self._signal(name, signal.SIGSTOP)
        await self.watch_for(1.5)
        self._signal(name, signal.SIGCONT)

    async def link_loss(self) -> None:
        """The link to one satellite is lost for 1..--link-loss-max-s real seconds; both
        boards run on. Past the grace the satellite's fail-safe stops the charge; its end
        register must still reach the CSMS (issue 16)."""
        serial = self.rng.choice(sorted(self.proxies))
        seconds = round(self.rng.uniform(1.0, max(1.0, self.args.link_loss_max_s)), 1)
        self.link_losses_s.append(seconds)
        proxy = self.proxies[serial]
        proxy.cut()
        await self.watch_for(seconds)
        proxy.restore()
        await self._swipe_again(serial)

    async def _swipe_again(self, serial: str) -> None:
        """After a fail-safe stop the EV is still plugged in: a remote start resumes it."""
        assert self.layout is not None
        cid = 2 + list(self.layout.satellite_configs).index(serial)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(20):
                while True:  # linked again: charging on, or stopped by its fail-safe
                    state = await self.state()
                    guns = (state or {}).get("guns", [])
                    g: dict[str, Any] = next((g for g in guns if g["connector"] == cid), {})
                    if g.get("link_up") and g.get("transaction_id") and g.get("power_w", 0) > 0:
                        return
                    if g.get("link_up") and not g.get("transaction_id") and self.csms.connections:
                        break
                    await asyncio.sleep(0.2)
                with contextlib.suppress(Exception):
                    await self.csms.remote_start(TAG, cid)

    async def disk_full(self) -> None:
        assert self.mounted is not None
        filler = self.mounted / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for size in (1 << 16, 1 << 12, 1 << 9, 1):
                with contextlib.suppress(OSError):
                    while True:
                        os.write(fd, b"\0" * size)
        finally:
            os.close(fd)
        await self.watch_for(2.0)
        filler.unlink()

    async def malformed(self) -> None:
        for frame in FRAMES:
            uid = m.group(1) if (m := re.match(r'\[2,"(\w+)"', frame)) else None
            with contextlib.suppress(TimeoutError, ValueError):
                await self.csms.send_raw(frame, uid)

    async def csms_outage(self) -> None:
        port = self.csms.port
        await self.csms.stop()
        await self.watch_for(2.0)
        await self.csms.start(port)

    def faults(self) -> dict[str, Callable[[], Awaitable[None]]]:
        every = {
            "kill_satellite": self.kill_satellite,
            "kill_main": self.kill_main,
            "stop_cont": self.stop_cont,
            "disk_full": self.disk_full,
            "malformed": self.malformed,
            "csms_outage": self.csms_outage,
            "link_loss": self.link_loss,
        }
        if self.args.satellites == 0:
            self.skipped["kill_satellite"] = "no satellite"
            self.skipped["link_loss"] = "no satellite"
        if self.args.faults:
            wanted = set(self.args.faults.split(","))
            if unknown := wanted - set(every):
                raise SystemExit(f"--faults: unknown {', '.join(sorted(unknown))}")
            return {k: v for k, v in every.items() if k in wanted and k not in self.skipped}
        return {k: v for k, v in every.items() if k not in self.skipped}

    # ------------------------------------------------------------ the run

    async def run(self) -> dict[str, Any]:
        args = self.args
        await self.start()
        if not await self.until_healthy(60.0):
            raise SystemExit("the station never started charging; see " + str(self.root))
        t0, e0 = time.monotonic(), self.watch.wh()
        await self.watch_for(args.baseline_s)
        baseline = (self.watch.wh() - e0) / (time.monotonic() - t0)
        faults = self.faults()
        names = list(faults)
        deadline = time.monotonic() + args.minutes * 60 if args.minutes else None
        tries = survived = 0
        chaos_t0, chaos_e0 = time.monotonic(), self.watch.wh()
        while tries < args.tries or (deadline is not None and time.monotonic() < deadline):
            if tries % len(names) == 0:
                self.rng.shuffle(names)
            name = names[tries % len(names)]
            tries += 1
            self.faults_run.append(name)
            began = time.monotonic()
            await faults[name]()
            await self.watch_for(0.5)  # let the fault be seen before asking for health
            ok = await self.until_healthy(args.recover_s)
            survived += ok
            self.recover_s.append(round(time.monotonic() - began, 2))
        chaos_rate = (self.watch.wh() - chaos_e0) / (time.monotonic() - chaos_t0)
        await self.finish()
        return self.figures(tries, survived, baseline, chaos_rate)

    async def finish(self) -> None:
        """Stop every open transaction remotely; wait until each has its StopTransaction."""

        def open_tx() -> list[int]:
            return [
                t.transaction_id for t in self.csms.transactions.values() if t.meter_stop is None
            ]

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                while open_tx():
                    for tx in open_tx():
                        with contextlib.suppress(Exception):
                            await self.csms.remote_stop(tx)
                    await self.watch_for(1.0)
        await self.watch_for(1.0)  # the last readings after the contactors opened

    def figures(
        self, tries: int, survived: int, baseline: float, chaos_rate: float
    ) -> dict[str, Any]:
        starts = self.csms.actions("StartTransaction")
        keys = [(s["connector_id"], s["timestamp"], s["id_tag"]) for s in starts]
        duplicates = len(keys) - len(set(keys))
        unstopped = [t for t in self.csms.transactions.values() if t.meter_stop is None]
        billed = sum((t.meter_stop or 0) - t.meter_start for t in self.csms.transactions.values())
        ev = self.watch.wh()
        wh_lost = max(0.0, ev - billed)
        return {
            "tries": tries,
            "survived": survived,
            "tx_lost": len(unstopped) + duplicates,
            "wh_lost": round(wh_lost, 1),
            "wh_lost_fraction": round(wh_lost / ev, 5) if ev > 0 else 0.0,
            "ev_wh": round(ev, 1),
            "billed_wh": billed,
            "transactions": len(self.csms.transactions),
            # meterStart / meterStop are whole Wh (OCPP 1.6): each transaction bills to +-1 Wh.
            "wh_resolution": len(self.csms.transactions),
            "baseline_wh_per_s": round(baseline, 2),
            "energy_ratio": round(chaos_rate / baseline, 3) if baseline > 0 else None,
            "link_losses_s": self.link_losses_s,
            "faults": self.faults_run,
            "recover_s": self.recover_s,
            "skipped": self.skipped,
        }

    async def close(self) -> None:
        await self.supervisor.stop()
        for proxy in self.proxies.values():
            await proxy.stop()
        if self.http is not None:
            await self.http.close()
        await self.csms.stop()
        if self.mounted is not None:
            umount = ["umount", "-l", str(self.mounted)]
            await asyncio.to_thread(subprocess.run, umount, check=False)


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="chargeport-chaos-"))
    chaos = Chaos(args, root)
    try:
        return await chaos.run()
    finally:
        await chaos.close()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tries", type=int, default=7, help="faults to inject (at least)")
    parser.add_argument("--faults", default="", help="only these faults (comma-separated)")
    parser.add_argument("--minutes", type=float, default=0.0, help="keep injecting this long")
    parser.add_argument("--satellites", type=int, default=1)
    parser.add_argument("--speed", type=float, default=10.0, help="simulated s per real s")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--grace", type=float, default=12.0, help="satellite grace (real s)")
    parser.add_argument("--baseline-s", type=float, default=2.0, help="fault-free window")
    parser.add_argument("--recover-s", type=float, default=25.0, help="per fault, real s")
    parser.add_argument(
        "--link-loss-max-s",
        type=float,
        default=4.0,
        help="longest main-satellite link loss (real s, from 1); 120 for the long run",
    )
    parser.add_argument(
        "--no-hold",
        action="store_true",
        help="close a lost satellite's transaction at the grace (link.lost_stop_hold_s = 0)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the run's folder and logs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    figures = asyncio.run(_main(args))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
