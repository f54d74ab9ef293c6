"""`chargeport rollout LOCATION`: roll firmware out to every board of a running station, with
progress, from a technician's terminal.

The running main owns the boards' firmware slots, so the command does not touch a board: it
logs in to the main's dashboard (the operator password, from `$CHARGEPORT_OPERATOR_PASSWORD` or
a prompt), asks it to roll out the bundle at LOCATION (http, https, ftp, ftps: the same path as
OCPP UpdateFirmware), then follows the dashboard's websocket and shows each board's phase,
bytes, speed and ETA with rich, and the station's firmware status, until the rollout ends.
Exit 0 when the station ends on the new version (`Installed`), 1 when it failed (every board is
then back on the old one), 2 when the dashboard refuses.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from main_node.errors import MainNodeError

__all__ = ["DONE", "add_arguments", "rollout", "run"]

PASSWORD_ENV = "CHARGEPORT_OPERATOR_PASSWORD"
# The aggregator's final firmware statuses (system_aggregator.aggregator).
DONE = {
    "Installed",
    "InstallationFailed",
    "DownloadFailed",
    "InvalidSignature",
    "InstallVerificationFailed",
}


class RolloutRefused(MainNodeError):
    """The dashboard refused the login or the rollout (the message is its reason)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `chargeport rollout`."""
    parser.add_argument("location", metavar="LOCATION", help="URL of the signed bundle")
    parser.add_argument(
        "--dashboard",
        default="http://127.0.0.1:8080/",
        metavar="URL",
        help="the main's dashboard (default http://127.0.0.1:8080/)",
    )
    parser.add_argument(
        "--timeout", type=float, default=1800.0, metavar="S", help="give up after S seconds"
    )


async def _json(response: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        data = await response.json()
    except (aiohttp.ContentTypeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


async def rollout(
    dashboard: str, password: str, location: str, console: Console, timeout_s: float = 1800.0
) -> str:
    """Start the rollout and follow it; returns the final firmware status."""
    base = dashboard if dashboard.endswith("/") else dashboard + "/"
    parts = urlsplit(base)
    origin = {"Origin": f"{parts.scheme}://{parts.netloc}"}  # the dashboard refuses foreign ones
    jar = aiohttp.CookieJar(unsafe=True)  # the session cookie of a dashboard at an IP address
    async with aiohttp.ClientSession(cookie_jar=jar, headers=origin) as http:
        async with http.post(base + "api/login", json={"password": password}) as r:
            if r.status != 200:
                raise RolloutRefused(f"login refused: {(await _json(r)).get('error', r.status)}")
        async with http.ws_connect(base.replace("http", "ws", 1) + "ws") as ws:
            first = await ws.receive_json(timeout=30)
            before = first.get("firmware_status")
            async with http.post(base + "api/firmware", json={"location": location}) as r:
                if r.status != 202:
                    raise RolloutRefused(
                        f"rollout refused: {(await _json(r)).get('error', r.status)}"
                    )
            return await asyncio.wait_for(_follow(ws, console, before), timeout_s)


async def _follow(ws: aiohttp.ClientWebSocketResponse, console: Console, before: Any) -> str:
    columns = (
        TextColumn("{task.description:<18}"),
        TextColumn("{task.fields[phase]:<12}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    rows: dict[str, TaskID] = {}
    status = str(before)
    started = False
    with Progress(*columns, console=console, transient=False) as bars:
        overall = bars.add_task("station", total=None, phase=status)
        while True:
            snap = await ws.receive_json()
            for row in (snap.get("progress") or {}).get("firmware", []):
                board = str(row["board"])
                if board not in rows:
                    rows[board] = bars.add_task(board, total=row["total"] or None, phase="")
                bars.update(
                    rows[board],
                    completed=row["bytes"],
                    total=row["total"] or None,
                    phase=row["phase"],
                )
            status = str(snap.get("firmware_status"))
            started = started or status != before
            done = sum(1 for r in (snap.get("progress") or {}).get("firmware", []) if r["finished"])
            bars.update(overall, phase=f"{status} ({done}/{len(rows)} boards)")
            if started and status in DONE:
                return status


def run(args: argparse.Namespace) -> int:
    """`rollout`: 0 Installed, 1 failed; a refusal is a one-line ChargeportError (exit 2)."""
    password = os.environ.get(PASSWORD_ENV) or getpass.getpass("operator password: ")
    console = Console()
    status = asyncio.run(rollout(args.dashboard, password, args.location, console, args.timeout))
    console.print(f"firmware rollout: {status}")
    return 0 if status == "Installed" else 1
