"""`chargeport sim`: a complete 4-gun station on one host.

The main and three satellites run as separate, supervised processes found by mDNS on
127.0.0.1 and linked with mTLS from a fresh station PKI; a built-in OCPP central system runs in
this process unless `--csms` names an external one. Live: a terminal table and the dashboard
URL. `--headless` runs unattended and prints one JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import re
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from chargeport.config import parse_host_port
from chargeport.errors import ChargeportError
from simulation.csms import CentralSystem
from simulation.csms201 import CentralSystem201
from simulation.station import STATION_ID, prepare
from simulation.supervisor import ProcessSpec, Supervisor

__all__ = ["add_arguments", "fetch_state", "run"]

log = logging.getLogger(__name__)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "scenarios"
DEFAULT_SCENARIOS = {1: "gun1.txt", 2: "gun2.txt", 3: "gun3.txt", 4: "gun4.txt"}
# A charge point id travels as the last segment of the websocket URL (OCPP-J 1.6 section 3.1).
_STATION_ID = re.compile(r"[A-Za-z0-9._-]{1,48}")
# The RFID tags the default scenarios swipe; the built-in CSMS accepts them.
SIM_TAGS = ("04A1B2C3", "04D4E5F6", "04778899", "04AABBCC")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    parser.add_argument("--headless", action="store_true", help="no table; print a JSON summary")
    parser.add_argument(
        "--duration", type=float, default=600.0, help="simulated seconds to run (headless)"
    )
    parser.add_argument(
        "--until-complete",
        action="store_true",
        help="headless: stop once every gun has completed a session and is idle again",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="N=FILE",
        help="scenario file for gun N (repeatable)",
    )
    parser.add_argument(
        "--csms",
        default="",
        metavar="ws://HOST:PORT/PATH",
        help="an external OCPP 1.6J central system instead of the built-in one; the station "
        "connects to <URL>/<station id> (it appends the id unless the URL already ends with it)",
    )
    parser.add_argument(
        "--ocpp",
        choices=("1.6", "2.0.1"),
        default="1.6",
        help="OCPP version the station speaks (the built-in CSMS speaks it too; default 1.6)",
    )
    parser.add_argument(
        "--station-id", default=STATION_ID, help=f"the charge point id (default {STATION_ID})"
    )
    parser.add_argument(
        "--mqtt",
        default="",
        metavar="HOST:PORT",
        help="publish every gun on this MQTT broker (retained state under chargeport/<station>)",
    )
    parser.add_argument(
        "--state-dir",
        default="",
        help="keep PKI, keys, databases, logs here (default: a temp folder removed on exit)",
    )
    parser.add_argument(
        "--satellites",
        type=int,
        default=3,
        help="satellite boards besides the main (default 3: a 4-gun station)",
    )
    parser.add_argument(
        "--restart-delay",
        type=float,
        default=2.0,
        help="restart a board process that died after this many real seconds, as systemd would",
    )
    parser.add_argument("--dashboard-port", type=int, default=8080, help="0 = any free port")
    parser.add_argument(
        "--operator-password", default=None, help="dashboard password (default: generated)"
    )


def _scenarios(args: argparse.Namespace, guns: int) -> dict[int, Path]:
    chosen = {n: EXAMPLES / name for n, name in DEFAULT_SCENARIOS.items() if n <= guns}
    for item in args.scenario:
        gun, sep, file = item.partition("=")
        if not sep or not gun.isdigit() or not 1 <= int(gun) <= guns:
            raise ChargeportError(f"--scenario {item!r}: expected N=FILE with N from 1 to {guns}")
        path = Path(file)
        if not path.is_file():
            raise ChargeportError(f"--scenario {item!r}: no such file {file}")
        chosen[int(gun)] = path.resolve()
    return chosen


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def run(args: argparse.Namespace) -> int:
    if args.speed <= 0:
        raise ChargeportError(f"--speed: expected a positive number, got {args.speed}")
    if args.satellites < 0:
        raise ChargeportError("--satellites: expected 0 or more")
    if not _STATION_ID.fullmatch(args.station_id):
        raise ChargeportError(
            f"--station-id {args.station_id!r}: expected 1 to 48 letters, digits, '-', '_' or '.'"
        )
    if args.mqtt:
        try:
            parse_host_port(args.mqtt)
        except ValueError as exc:
            raise ChargeportError(f"--mqtt: {exc}") from None
    scenarios = _scenarios(args, args.satellites + 1)  # every argument checked before start-up
    return asyncio.run(_run(args, scenarios))


async def _run(args: argparse.Namespace, scenarios: dict[int, Path]) -> int:
    keep = bool(args.state_dir)
    state_dir = Path(args.state_dir) if keep else Path(tempfile.mkdtemp(prefix="chargeport-sim-"))
    supervisor = Supervisor()
    csms: CentralSystem | CentralSystem201 | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log_handler = _log_to_file(state_dir / "logs" / "sim.log")
    try:
        csms_url = args.csms
        if not csms_url:
            if args.ocpp == "2.0.1":
                csms = CentralSystem201(accepted_tags=SIM_TAGS)
            else:
                csms = CentralSystem(accepted_tags=SIM_TAGS)
            await csms.start()
            csms_url = csms.url
        guns = args.satellites + 1
        password = args.operator_password
        if password is None:
            password = secrets.token_urlsafe(8)
        dashboard_port = args.dashboard_port or _free_port()
        layout = prepare(
            state_dir,
            satellites=args.satellites,
            csms_url=csms_url,
            dashboard_port=dashboard_port,
            operator_password=password,
            scenarios=scenarios,
            mqtt=parse_host_port(args.mqtt) if args.mqtt else None,
            grace_period_s=10.0,
            # 10 kHz per channel in real time; at high speed-ups 2 kHz (40 samples per mains
            # cycle) keeps four boards' metering within two cores.
            sample_rate_hz=10_000 if args.speed <= 10 else 2_000,
            station_id=args.station_id,
            ocpp_version=args.ocpp,
        )
        boards = [
            (serial, "satellite", config) for serial, config in layout.satellite_configs.items()
        ]
        boards.append(("main", "main", layout.main_config))
        for name, role, config in boards:
            argv = [sys.executable, "-m", "chargeport_cli", role, "--config", str(config)]
            supervisor.add(
                ProcessSpec(
                    name=name,
                    argv=[*argv, "--speed", str(args.speed)],
                    log_path=layout.logs / f"{name.lower()}.log",
                    restart_delay_s=args.restart_delay,
                )
            )
        url = f"http://127.0.0.1:{dashboard_port}/"
        if args.headless:
            summary = await _headless(args, url, stop, csms, guns)
            print(json.dumps(summary))
        else:
            print(f"dashboard: {url}  (operator password: {password})")
            print(f"state: {state_dir}{'' if keep else ' (removed on exit)'}; Ctrl-C stops")
            await _live(url, stop, supervisor)
        return 0
    finally:
        await supervisor.stop()
        if csms is not None:
            await csms.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        logging.getLogger().removeHandler(log_handler)
        log_handler.close()
        if not keep:
            shutil.rmtree(state_dir, ignore_errors=True)


def _log_to_file(path: Path) -> logging.Handler:
    """The terminal belongs to the live table (or the JSON summary): this process's own logs,
    the built-in CSMS's included, go to the state folder beside the boards' logs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    return handler


async def fetch_state(session: aiohttp.ClientSession, url: str) -> dict[str, Any] | None:
    """The main's station snapshot (GET <dashboard>/api/state), or None while it is not up."""
    try:
        async with session.get(url + "api/state", timeout=aiohttp.ClientTimeout(total=2)) as r:
            data: dict[str, Any] = await r.json()
            return data
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None


def _done(state: dict[str, Any] | None, guns: int) -> bool:
    if state is None or len(state["guns"]) < guns:
        return False
    return all(g["sessions_completed"] >= 1 and not g["transaction_id"] for g in state["guns"])


async def _headless(
    args: argparse.Namespace,
    url: str,
    stop: asyncio.Event,
    csms: CentralSystem | CentralSystem201 | None,
    guns: int,
) -> dict[str, Any]:
    deadline = time.monotonic() + args.duration / args.speed
    state: dict[str, Any] | None = None
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline and not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
            state = await fetch_state(session, url) or state
            if args.until_complete and _done(state, guns):
                break
    summary: dict[str, Any] = {
        "guns": [
            {
                "connector": g["connector"],
                "sessions_completed": g["sessions_completed"],
                "energy_wh": g["energy_delivered_wh"],
                "faults": g["faults"],
            }
            for g in (state or {"guns": []})["guns"]
        ],
        "csms": {"transactions": _transactions(csms) if csms is not None else []},
    }
    if state is None:
        summary["error"] = "the main never answered; see the logs"
    return summary


def _transactions(csms: CentralSystem | CentralSystem201) -> list[dict[str, Any]]:
    if isinstance(csms, CentralSystem201):
        return [
            {
                "transaction_id": tx.transaction_id,
                "connector_id": tx.evse_id,
                "id_tag": tx.id_token,
                "meter_start": tx.energy_wh("Started"),
                "meter_stop": tx.energy_wh("Ended"),
                "reason": tx.stopped_reason,
            }
            for tx in csms.transactions.values()
        ]
    return [
        {
            "transaction_id": tx.transaction_id,
            "connector_id": tx.connector_id,
            "id_tag": tx.id_tag,
            "meter_start": tx.meter_start,
            "meter_stop": tx.meter_stop,
            "reason": tx.reason,
        }
        for tx in csms.transactions.values()
    ]


async def _live(url: str, stop: asyncio.Event, supervisor: Supervisor) -> None:
    from rich.live import Live

    from simulation.table import render_table

    async with aiohttp.ClientSession() as session:
        with Live(render_table(None, supervisor), refresh_per_second=4) as live:
            while not stop.is_set():
                state = await fetch_state(session, url)
                live.update(render_table(state, supervisor))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
