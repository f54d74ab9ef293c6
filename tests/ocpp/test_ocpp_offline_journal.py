"""Offline safety (OCPP 1.6 section 4.10): transaction messages journaled, none lost on restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ocpp_station_fixture import make_ports, running_station
from waiting import until

from simulation.csms import CentralSystem


async def test_offline_transactions_survive_main_restart_and_arrive_in_order_ocpp16_4_10(
    tmp_path: Path,
) -> None:
    """Transactions run while the CSMS is down; the main is killed and restarted from the same
    SQLite file; after reconnect every Start/Stop arrives exactly once, in order."""
    db = tmp_path / "db.sqlite"
    csms = CentralSystem()
    await csms.start()
    port_no = csms.port
    try:
        ports = make_ports()
        async with running_station(db, csms.url, ports) as station:
            await csms.wait_for(lambda: len(csms.statuses) >= 5)
            await csms.stop()  # the CSMS goes away
            await asyncio.wait_for(until(lambda: not station.session.online), 5)
            for cid in (1, 2, 3):
                await ports[cid].authorize("TAG-OK")
                ports[cid].plug_in()
                ports[cid].meter(100.0 * cid)
                ports[cid].unplug()
            await asyncio.sleep(0)
            assert station.session.journal.pending_count() == 6
            # leaving the block cancels the session task: the "kill" while offline
        restarted = make_ports()
        async with running_station(db, f"ws://127.0.0.1:{port_no}/ocpp", restarted) as station:
            assert station.session.journal.pending_count() == 6
            await csms.start(port_no)
            await csms.wait_for(lambda: len(csms.actions("StopTransaction")) == 3)
            await asyncio.wait_for(until(lambda: station.session.journal.pending_count() == 0), 5)
        order = [a for a, _ in csms.messages if a in ("StartTransaction", "StopTransaction")]
        assert order == ["StartTransaction", "StopTransaction"] * 3
        stops = {p["transaction_id"] for p in csms.actions("StopTransaction")}
        assert stops == set(csms.transactions)
        assert sorted(t.connector_id for t in csms.transactions.values()) == [1, 2, 3]
        assert all(t.meter_stop == 100 * t.connector_id for t in csms.transactions.values())
    finally:
        await csms.stop()


async def test_reconnect_sends_no_second_boot_notification_ocpp16_4_2(tmp_path: Path) -> None:
    """Section 4.2: a mere reconnect does not repeat BootNotification."""
    csms = CentralSystem()
    await csms.start()
    try:
        async with running_station(tmp_path / "db.sqlite", csms.url) as station:
            await csms.wait_for(lambda: len(csms.statuses) >= 5)
            port_no = csms.port
            await csms.stop()
            await asyncio.wait_for(until(lambda: not station.session.online), 5)
            await csms.start(port_no)
            await csms.wait_for(lambda: csms.connects == 2)
            await asyncio.wait_for(until(lambda: station.session.online), 5)
            assert len(csms.actions("BootNotification")) == 1
    finally:
        await csms.stop()


async def test_boot_pending_then_accepted_sends_nothing_else_before_ocpp16_4_2(
    tmp_path: Path,
) -> None:
    """Section 4.2: while Pending only BootNotification is sent, retried after `interval`."""
    async with CentralSystem(boot_status="Pending", boot_interval=1) as csms:
        async with running_station(tmp_path / "db.sqlite", csms.url):
            await csms.wait_for(lambda: len(csms.actions("BootNotification")) >= 2)
            assert {a for a, _ in csms.messages} == {"BootNotification"}
            csms.boot_status = "Accepted"
            await csms.wait_for(lambda: len(csms.statuses) >= 5)
