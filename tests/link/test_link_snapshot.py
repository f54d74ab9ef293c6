"""Snapshot, then live (link.proto theory 5): a main new to a satellite boot hears the port's
state now, once, never its history replayed as if it were happening (OCPP 1.6 4.9: the CSMS
sees no transition that did not just happen). Transaction records still arrive: they are
billing facts the journal dedupes (OCPP 1.6 4.10). Real gRPC on loopback."""

from __future__ import annotations

from linkkit import Link, Recorder, fake_port, next_event, wait_until

from chargeport.port import (
    LinkChanged,
    MeterValue,
    SessionEvent,
    SessionEventType,
    StopReason,
)
from main_node.ocpp.connector_status import ConnectorStatus, ConnectorStatusTracker

Ev = SessionEventType
RECORDS = {Ev.TRANSACTION_STARTED, Ev.TRANSACTION_FINISHED}


async def test_a_restarted_main_hears_the_snapshot_not_the_history(link: Link) -> None:
    fake = fake_port()
    host = await link.satellite(fake)
    first = await link.remote(main_boot_id="boot-A")
    # History: one whole session, then a second one charging now.
    await first.authorize("TAG1")
    fake.plug_in()
    fake.ev_ready()
    fake.meter(300.0, 7000.0)
    await first.stop_transaction(StopReason.REMOTE)
    fake.unplug()
    await first.authorize("TAG2")
    fake.plug_in()
    fake.ev_ready()
    fake.meter(450.0, 7000.0)
    await wait_until(lambda: first.last_seq == host.agent.last_seq)
    await first.stop()  # the main is killed ...
    history = {e.body.type for e in fake.history if isinstance(e.body, SessionEvent)}
    assert {Ev.AUTHORIZED, Ev.CHARGING_STARTED, Ev.SESSION_FINISHED} <= history

    second = await link.remote(main_boot_id="boot-B", connect=False)  # ... and comes back
    rec = Recorder(second.events())
    await wait_until(
        lambda: any(isinstance(e.body, LinkChanged) and e.body.connected for e in rec.events)
    )
    up = next(i for i, e in enumerate(rec.events) if isinstance(e.body, LinkChanged))
    before_up = [e.body for e in rec.events[:up]]
    kinds = [b.type for b in before_up if isinstance(b, SessionEvent)]
    # The records of both transactions, then the state now: a session charging.
    assert [k for k in kinds if k in RECORDS] == [
        Ev.TRANSACTION_STARTED,
        Ev.TRANSACTION_FINISHED,
        Ev.TRANSACTION_STARTED,
    ]
    assert [k for k in kinds if k not in RECORDS] == [Ev.SESSION_STARTED, Ev.CHARGING_STARTED]
    assert second.ledger.transaction is not None
    assert second.ledger.transaction.id_tag == "TAG2"
    assert any(isinstance(b, MeterValue) and b.energy_wh == 450.0 for b in before_up)

    # What the CSMS would see: with the link down until the snapshot, exactly one status.
    tracker = ConnectorStatusTracker(None, link_up=False)
    statuses = [s for e in rec.events if (s := tracker.apply(e.body)) is not None]
    assert statuses == [ConnectorStatus("Charging")]

    # Then live.
    sub = second.events()
    fake.meter(460.0, 7000.0)
    live = await next_event(sub, lambda b: isinstance(b, MeterValue))
    assert live.body.energy_wh == 460.0  # type: ignore[union-attr]
    await rec.close()


async def test_a_restarted_main_hears_an_idle_board_as_idle(link: Link) -> None:
    fake = fake_port()
    await link.satellite(fake)
    first = await link.remote(main_boot_id="boot-A")
    await first.authorize("TAG1")
    fake.plug_in()
    fake.ev_ready()
    await first.stop_transaction(StopReason.REMOTE)
    fake.unplug()
    await first.stop()
    second = await link.remote(main_boot_id="boot-B", connect=False)
    rec = Recorder(second.events())
    # The recorder has heard the link come up (not only the link object's flag).
    await wait_until(
        lambda: any(isinstance(e.body, LinkChanged) and e.body.connected for e in rec.events)
    )
    tracker = ConnectorStatusTracker(None, link_up=False)
    statuses = [s for e in rec.events if (s := tracker.apply(e.body)) is not None]
    assert statuses == [ConnectorStatus("Available")]
    assert not second.ledger.has_open
    await rec.close()
