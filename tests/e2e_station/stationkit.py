"""A whole station as real processes for end-to-end tests: layout, supervisor, CSMS, dashboard.

`running_station(...)` lays the station out with `simulation.station.prepare`, lets the
test shrink link timers in the generated TOML, starts the main and the satellites under the
`Supervisor` (restarted like systemd would) with the test's own `CentralSystem`, waits until
every gun is linked, and stops every process in its `finally`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from simulation.cli import fetch_state
from simulation.csms import CentralSystem, Transaction
from simulation.station import SimLayout, prepare, toml_value
from simulation.supervisor import ProcessSpec, Supervisor

__all__ = [
    "StationRig",
    "all_linked",
    "charging_scenario",
    "free_port",
    "gun",
    "rewrite_table",
    "running_station",
]

State = dict[str, Any]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def charging_scenario(path: Path, tag: str, amps: int = 16, phases: int = 3) -> Path:
    """A scenario: plug in, swipe `tag`, charge for (practically) ever."""
    path.write_text(
        f"plugin\nauth {tag}\nwait_pwm\ndraw_power_regulated {amps},{phases}\nsleep 100000\n"
    )
    return path


def rewrite_table(path: Path, table: str, **values: object) -> None:
    """Set `key = value` in `[table]` of a generated TOML file (replacing or adding the key)."""
    lines = path.read_text().splitlines()
    start = lines.index(f"[{table}]")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    body = lines[start + 1 : end]
    for key, value in values.items():
        line = f"{key} = {toml_value(value)}"
        found = [i for i, text in enumerate(body) if re.match(rf"{re.escape(key)}\s*=", text)]
        if found:
            body[found[0]] = line
        else:
            body.append(line)
    path.write_text("\n".join([*lines[: start + 1], *body, *lines[end:]]) + "\n")


@dataclass
class StationRig:
    """The running station and what the test needs to look at it."""

    csms: CentralSystem
    layout: SimLayout
    supervisor: Supervisor
    dashboard: str  # http://127.0.0.1:PORT/
    http: aiohttp.ClientSession

    @property
    def serials(self) -> list[str]:
        return list(self.layout.satellite_configs)

    def connector_of(self, serial: str) -> int:
        return 2 + self.serials.index(serial)

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-tail:]}"
            for p in sorted(self.layout.logs.glob("*.log"))
        )

    def log_of(self, name: str) -> str:
        path = self.layout.logs / f"{name.lower()}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self, name: str) -> int:
        """SIGKILL board process `name` (the supervisor restarts it); returns the pid killed."""
        pid = self.supervisor.pid(name)
        assert pid is not None, f"{name} is not running"
        os.kill(pid, signal.SIGKILL)
        return pid

    async def state(self) -> State | None:
        """GET /api/state from the main, or None while the main is not answering."""
        return await fetch_state(self.http, self.dashboard)

    async def wait_state(
        self,
        ok: Callable[[State], bool],
        within_s: float = 30.0,
        each: Callable[[State], None] | None = None,
    ) -> State:
        """Poll the dashboard until `ok(state)`; `each(state)` sees every sample on the way."""
        last: State | None = None
        try:
            async with asyncio.timeout(within_s):
                while True:
                    state = await self.state()
                    if state is not None:
                        last = state
                        if each is not None:
                            each(state)
                        if ok(state):
                            return state
                    await asyncio.sleep(0.2)
        except TimeoutError:
            raise AssertionError(f"the station never got there: {last}\n{self.logs()}") from None

    async def wait_csms(self, predicate: Callable[[], Any], within_s: float = 30.0) -> Any:
        try:
            return await self.csms.wait_for(predicate, within_s)
        except TimeoutError:
            raise AssertionError(f"the CSMS never saw it\n{self.logs()}") from None

    def open_transactions(self) -> dict[int, list[Transaction]]:
        """Per connector, the CSMS transactions without a StopTransaction."""
        out: dict[int, list[Transaction]] = {}
        for tx in self.csms.transactions.values():
            if tx.meter_stop is None:
                out.setdefault(tx.connector_id, []).append(tx)
        return out

    def stops_of(self, transaction_id: int) -> list[dict[str, Any]]:
        return [
            p for p in self.csms.actions("StopTransaction") if p["transaction_id"] == transaction_id
        ]

    def journal_pending(self) -> int:
        """Undelivered entries in the main's OCPP transaction journal (read-only peek)."""
        path = self.layout.state_dir / "main" / "ocpp.sqlite"
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT COUNT(*) FROM tx_journal WHERE state = 'pending'").fetchone()
            return int(row[0])
        finally:
            conn.close()


def gun(state: State, connector: int) -> State:
    found: State = next(g for g in state["guns"] if g["connector"] == connector)
    return found


def all_linked(count: int) -> Callable[[State], bool]:
    def ok(state: State) -> bool:
        guns = state["guns"]
        return len(guns) == count and all(g["link_up"] and g["boot_id"] for g in guns)

    return ok


@contextlib.asynccontextmanager
async def running_station(
    state_dir: Path,
    *,
    satellites: int,
    scenarios: dict[int, Path],
    grace_period_s: float,
    link: dict[str, object] | None = None,
    ocpp: dict[str, object] | None = None,
    port: dict[str, object] | None = None,
    speed: float = 1.0,
    restart_delay_s: float = 0.2,
    sample_rate_hz: int = 1_000,  # several boards metering on two shared cores
    accepted_tags: tuple[str, ...] = ("TAG-OK",),
) -> AsyncIterator[StationRig]:
    """The station running under a Supervisor; every process is stopped on the way out."""
    csms = CentralSystem(accepted_tags)
    await csms.start()
    dashboard_port = free_port()
    layout = prepare(
        state_dir,
        satellites=satellites,
        csms_url=csms.url,
        dashboard_port=dashboard_port,
        operator_password="pw",
        scenarios=scenarios,
        mqtt=None,
        grace_period_s=grace_period_s,
        sample_rate_hz=sample_rate_hz,
    )
    for config in [layout.main_config, *layout.satellite_configs.values()]:
        if link:
            rewrite_table(config, "link", **link)
        if port:
            rewrite_table(config, "port", **port)
    if ocpp:
        rewrite_table(layout.main_config, "ocpp", **ocpp)
    supervisor = Supervisor(stop_timeout_s=5.0)
    http = aiohttp.ClientSession()
    rig = StationRig(csms, layout, supervisor, f"http://127.0.0.1:{dashboard_port}/", http)
    try:
        boards = [(s, "satellite", c) for s, c in layout.satellite_configs.items()]
        for name, role, config in [*boards, ("main", "main", layout.main_config)]:
            argv = [sys.executable, "-m", "chargeport_cli", role, "--config", str(config)]
            supervisor.add(
                ProcessSpec(
                    name=name,
                    argv=[*argv, "--speed", str(speed)],
                    log_path=layout.logs / f"{name.lower()}.log",
                    restart_delay_s=restart_delay_s,
                )
            )
        await rig.wait_csms(lambda: csms.actions("BootNotification"))
        await rig.wait_state(all_linked(satellites + 1))
        crashed = {n: c.last_exit for n, c in supervisor.children.items() if c.starts != 1}
        assert not crashed, f"a board process died during start-up: {crashed}\n{rig.logs()}"
        yield rig
    finally:
        await supervisor.stop()
        await http.close()
        await csms.stop()
