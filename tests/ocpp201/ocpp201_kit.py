"""Shared pieces for the OCPP 2.0.1 tests: FakePorts, a Session201 on a temp SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from waiting import until

from chargeport.fake_port import FakePort
from chargeport.port import PortInfo
from main_node.ocpp.db import open_db
from main_node.ocpp201.session import Options201, Session201
from system_aggregator.api import StationSystem

__all__ = ["Station201", "make_ports", "running_station", "until"]

_TX_IDS = itertools.count(1)  # unique across restarts of a station within the test run


def make_ports(n: int = 4) -> dict[int, FakePort]:
    """EVSE 1 = the local port, 2..n = satellites (the session cannot tell)."""
    return {
        cid: FakePort(PortInfo(cid, f"SER-{cid}", "1.0.0", 32.0, 3, remote=cid > 1))
        for cid in range(1, n + 1)
    }


@dataclass
class Station201:
    session: Session201
    ports: dict[int, FakePort]
    limits: list[tuple[int, float | None]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def running_station(
    db_path: Path,
    url: str,
    ports: dict[int, FakePort] | None = None,
    system: StationSystem | None = None,
    limit_sink: Callable[[int, float | None], None] | None = None,
    **kw: Any,
) -> AsyncIterator[Station201]:
    """Run a Session201 against `url` until the block ends; the task is always stopped."""
    ports = ports if ports is not None else make_ports()
    conn = open_db(db_path)
    base: dict[str, Any] = {
        "url": url,
        "station_id": "CP-201",
        "response_timeout_s": 5.0,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
        "time_scale": 0.02,
    }
    base.update(kw)
    station = Station201(session=None, ports=ports)  # type: ignore[arg-type]
    station.session = Session201(
        Options201(**base),
        ports,
        conn,
        system=system,
        limit_sink=limit_sink or (lambda cid, amps: station.limits.append((cid, amps))),
        new_tx_id=lambda: f"tx-{next(_TX_IDS)}",
    )
    task = asyncio.create_task(station.session.run())
    try:
        yield station
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        conn.close()
