"""Shared pieces for the OCPP tests: FakePorts, a session on a temp SQLite file, a live CSMS."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from waiting import until

from chargeport.fake_port import FakePort
from chargeport.port import PortInfo
from main_node.ocpp.client import OcppSession, SessionOptions
from main_node.ocpp.db import open_db
from system_aggregator.api import StationSystem

__all__ = ["Station", "make_ports", "options", "running_station", "until"]


def make_ports(n: int = 4) -> dict[int, FakePort]:
    """Connector 1 = the local port, 2..n = satellites (the charge point cannot tell)."""
    return {
        cid: FakePort(
            PortInfo(cid, f"SER-{cid}", "1.0.0", 32.0, 3, remote=cid > 1),
        )
        for cid in range(1, n + 1)
    }


@dataclass
class Station:
    session: OcppSession
    ports: dict[int, FakePort]
    limits: list[tuple[int, float | None]] = field(default_factory=list)


def options(url: str, **kw: Any) -> SessionOptions:
    base: dict[str, Any] = {
        "url": url,
        "station_id": "CP-1",
        "response_timeout_s": 5.0,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
        "time_scale": 0.02,
    }
    base.update(kw)
    return SessionOptions(**base)


@contextlib.asynccontextmanager
async def running_station(
    db_path: Path,
    url: str,
    ports: dict[int, FakePort] | None = None,
    setup: Callable[[OcppSession], None] | None = None,
    system: StationSystem | None = None,
    **kw: Any,
) -> AsyncIterator[Station]:
    """Run an OcppSession against `url` until the block ends; the task is always stopped."""
    ports = ports if ports is not None else make_ports()
    conn = open_db(db_path)
    station = Station(session=None, ports=ports)  # type: ignore[arg-type]
    session = OcppSession(
        options(url, **kw),
        ports,
        conn,
        system=system,
        limit_sink=lambda cid, amps: station.limits.append((cid, amps)),
    )
    station.session = session
    if setup is not None:
        setup(session)
    task = asyncio.create_task(session.run())
    try:
        yield station
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        conn.close()
