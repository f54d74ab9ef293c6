"""OCPP 2.0.1 offline (E12 / E13): TransactionEvents journaled while the CSMS is away, marked
offline, kept across a main restart and drained in order, each exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ocpp.v201 import call
from ocpp201_kit import make_ports, running_station, until

from simulation.csms201 import CentralSystem201


async def test_offline_events_survive_restart_and_drain_in_order_e12(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    csms = CentralSystem201()
    await csms.start()
    port_no = csms.port
    try:
        ports = make_ports()
        async with running_station(db, csms.url, ports) as station:
            await csms.wait_for(lambda: len(csms.statuses) >= 4)
            await csms.stop()
            await until(lambda: not station.session.online)
            for evse in (1, 2, 3):
                await ports[evse].authorize("TAG-OK")
                ports[evse].meter(100.0 * evse)
                ports[evse].plug_in()
                ports[evse].ev_ready()
                ports[evse].meter(200.0 * evse)
                ports[evse].unplug()
            await asyncio.sleep(0)
            # Started + Ended per gun (the charging state changes ride on them)
            assert station.session.journal.pending_count() == 6
        restarted = make_ports()
        url = f"ws://127.0.0.1:{port_no}/ocpp"
        async with running_station(db, url, restarted) as station:
            assert station.session.journal.pending_count() == 6
            await csms.start(port_no)
            await csms.wait_for(lambda: sum(t.ended for t in csms.transactions.values()) == 3)
            await until(lambda: station.session.journal.pending_count() == 0)
        events = csms.actions("TransactionEvent")
        assert [(e["evse"]["id"], e["event_type"]) for e in events] == [
            (1, "Started"),
            (1, "Ended"),
            (2, "Started"),
            (2, "Ended"),
            (3, "Started"),
            (3, "Ended"),
        ]
        assert all(e.get("offline") is True for e in events)
        for tx in csms.transactions.values():
            assert [e["seq_no"] for e in tx.events] == [0, 1]
            assert tx.energy_wh("Ended") == 200.0 * tx.evse_id
            assert tx.stopped_reason == "EVDisconnected"
    finally:
        await csms.stop()


async def test_reconnect_sends_no_second_boot_b01(tmp_path: Path) -> None:
    csms = CentralSystem201()
    await csms.start()
    port_no = csms.port
    try:
        async with running_station(tmp_path / "db.sqlite", csms.url) as station:
            await csms.wait_for(lambda: len(csms.statuses) >= 4)
            await csms.stop()
            await until(lambda: not station.session.online)
            await csms.start(port_no)
            await csms.wait_for(lambda: csms.connects == 2)
            await until(lambda: station.session.online)
            assert len(csms.actions("BootNotification")) == 1
            # every status again after the reconnect (G01)
            await csms.wait_for(lambda: len(csms.statuses) >= 8)
    finally:
        await csms.stop()


async def test_refused_event_retried_then_set_aside_e13(tmp_path: Path) -> None:
    """E13: a TransactionEvent the CSMS answers with a CALLERROR is retried after
    MessageAttemptInterval x attempts; after MessageAttempts it is set aside and the events
    behind it flow again (going offline is no attempt)."""
    ports = make_ports(1)
    async with (
        CentralSystem201() as csms,
        running_station(tmp_path / "db.sqlite", csms.url, ports) as station,
    ):
        await csms.wait_for(lambda: len(csms.statuses) >= 1)
        interval = await csms.send(
            call.SetVariables(
                set_variable_data=[
                    {
                        "attribute_value": "1",
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {
                            "name": "MessageAttemptInterval",
                            "instance": "TransactionEvent",
                        },
                    }
                ]
            )
        )
        assert interval.set_variable_result[0]["attribute_status"] == "Accepted"
        csms.refuse_transaction_events = 2  # the Started event: two refusals, then accepted
        ports[1].plug_in()
        ports[1].ev_ready()
        await csms.request_start("TAG-OK", evse_id=1)
        tx = await csms.wait_for(lambda: csms.transaction_on(1))
        assert len(csms.actions("TransactionEvent.refused")) == 2
        assert tx.events[0]["event_type"] == "Started"
        csms.refuse_transaction_events = 3  # the Ended event: refused MessageAttempts (3) times
        ports[1].unplug()
        await until(lambda: station.session.journal.failed_count() == 1)
        assert len(csms.actions("TransactionEvent.refused")) == 5
        assert not tx.ended
        # the next transaction's events are not held behind the one set aside
        ports[1].plug_in()
        ports[1].ev_ready()
        await csms.request_start("TAG-OK", evse_id=1)
        await csms.wait_for(lambda: len(csms.transactions) == 2)
        await until(lambda: station.session.journal.pending_count() == 0)
        assert station.session.journal.failed_count() == 1
