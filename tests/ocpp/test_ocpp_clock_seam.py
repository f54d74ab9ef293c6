"""OCPP timers run on the session's Clock (issue 12): with `--speed N` (a ScaledClock) the
MeterValueSampleInterval (OCPP 1.6 section 9.1.17) and HeartbeatInterval (9.1.10) are
simulated seconds, like the timestamps the messages carry."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from ocpp_station_fixture import make_ports, options, until

from chargeport.clock import ScaledClock
from main_node.ocpp.client import OcppSession
from main_node.ocpp.db import open_db
from main_node.ocpp.meter_values import parse_iso_time
from simulation.csms import CentralSystem

SPEED = 60.0  # a minute of station time per real second


async def test_meter_values_and_heartbeat_follow_the_scaled_clock(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "db.sqlite")
    ports = make_ports(2)
    clock = ScaledClock(SPEED)
    async with CentralSystem(boot_interval=120) as csms:
        opts = options(
            csms.url,
            time_scale=1.0,
            heartbeat_interval_s=120,
            meter_value_sample_interval_s=60,
        )
        session = OcppSession(opts, ports, conn, clock=clock)
        task = asyncio.create_task(session.run())
        try:
            await until(lambda: session.online)
            await ports[1].authorize("TAG-OK")
            ports[1].plug_in()
            ports[1].meter(1500.0, 7000.0)
            # Real seconds (not 60 and 120) bound the waits: the timers are simulated time.
            tx = await csms.wait_for(lambda: list(csms.transactions.values()), within_s=10)
            await csms.wait_for(lambda: len(tx[0].meter_values) >= 2, within_s=10)
            await csms.wait_for(lambda: csms.actions("Heartbeat"), within_s=10)
            stamps = [parse_iso_time(mv["timestamp"]) for mv in tx[0].meter_values[:2]]
            assert 50.0 <= stamps[1] - stamps[0] <= 70.0  # one sample interval of station time
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            conn.close()
