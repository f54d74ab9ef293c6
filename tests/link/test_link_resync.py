"""Re-sync after a replay gap: the satellite's ring lost the main's cursor (OUT_OF_RANGE), so
the main re-reads the port's status and makes its consumers consistent. Real gRPC, tiny ring."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from linkkit import Link, Recorder, TcpProxy, fake_port, wait_until

from chargeport.port import (
    CpState,
    CpStateChanged,
    ErrorCode,
    LimitsChanged,
    LinkChanged,
    MeterValue,
    PortDisabledChanged,
    PortErrorEvent,
    SessionEvent,
    SessionEventType,
    StopReason,
)

Proxies = Callable[[tuple[str, int]], Awaitable[TcpProxy]]


async def test_ring_overrun_reconciles_from_status_and_shows_the_gap(
    link: Link, proxy_factory: Proxies
) -> None:
    fake = fake_port()
    host = await link.satellite(fake, ring_capacity=8)  # holds a burst, not the gap
    proxy = await proxy_factory(host.address)
    rp = await link.remote(address=("127.0.0.1", proxy.port))
    rec = Recorder(rp.events())
    await rp.authorize("TAG1")
    fake.plug_in()
    fake.ev_ready()
    fake.meter(100.0, 7000.0)
    await wait_until(lambda: rp.ledger.energy_wh == 100.0)
    status = await rp.status()
    tx, session = status.transaction_id, status.session_id
    proxy.paused = True
    proxy.cut()
    await wait_until(lambda: not rp.connected)
    before = len(rec.events)
    # While the link is down more happens than the ring holds: the transaction ends ...
    fake.meter(200.0, 0.0)
    await fake.stop_transaction(StopReason.LOCAL)
    fake.unplug()
    for wh in (300.0, 301.0, 302.0, 303.0):
        fake.meter(wh, 0.0)
    await fake.set_limit(10.0, 1)
    await wait_until(lambda: host.agent._ring.first_seq > rp.last_seq + 1)  # cursor gone
    proxy.paused = False
    await wait_until(lambda: rp.connected and rp.handshakes == 2)
    await wait_until(lambda: rec.events[-1].body == MeterValue(303.0, 0.0))  # re-synced
    fake.meter(400.0, 0.0)  # live again after the re-sync
    await wait_until(lambda: rec.events and rec.events[-1].body == MeterValue(400.0, 0.0))
    after = [e.body for e in rec.events[before:]]
    up = after.index(LinkChanged(True, host.boot_id, "1.0.0"))
    gap_on, gap_off, fin, end, *state = after[up + 1 :]
    assert isinstance(gap_on, PortErrorEvent) and gap_on.code is ErrorCode.OTHER_ERROR
    assert gap_on.active and "lost" in gap_on.message
    assert gap_off == PortErrorEvent(ErrorCode.OTHER_ERROR, gap_on.message, False)
    # The transaction the main thought open is closed with the last meter value it saw.
    assert isinstance(fin, SessionEvent) and fin.type is SessionEventType.TRANSACTION_FINISHED
    assert fin.transaction is not None and fin.transaction.transaction_id == tx
    assert (fin.transaction.meter_wh, fin.transaction.stop_reason) == (100.0, StopReason.OTHER)
    assert end == SessionEvent(SessionEventType.SESSION_FINISHED, session or "")
    # Then the port's current state, then live events.
    assert state == [
        CpStateChanged(CpState.A),
        PortDisabledChanged(True),
        LimitsChanged(10.0, 1),
        MeterValue(303.0, 0.0),
        MeterValue(400.0, 0.0),
    ]
    fins = [
        b
        for e in rec.events
        if isinstance(b := e.body, SessionEvent) and b.type is SessionEventType.TRANSACTION_FINISHED
    ]
    assert len(fins) == 1
    await rec.close()


async def test_ring_overrun_with_the_transaction_still_running_closes_nothing(
    link: Link, proxy_factory: Proxies
) -> None:
    fake = fake_port()
    host = await link.satellite(fake, ring_capacity=8)
    proxy = await proxy_factory(host.address)
    rp = await link.remote(address=("127.0.0.1", proxy.port))
    rec = Recorder(rp.events())
    await rp.authorize("TAG1")
    fake.plug_in()
    await wait_until(lambda: rp.ledger.transaction is not None)
    proxy.paused = True
    proxy.cut()
    await wait_until(lambda: not rp.connected)
    for wh in range(1, 13):
        fake.meter(float(wh), 0.0)
    await wait_until(lambda: host.agent._ring.first_seq > rp.last_seq + 1)
    proxy.paused = False
    await wait_until(lambda: rp.connected and rp.handshakes == 2)
    await wait_until(lambda: rec.events[-1].body == MeterValue(12.0, 0.0))
    kinds = {b.type for e in rec.events if isinstance(b := e.body, SessionEvent)}
    assert SessionEventType.TRANSACTION_FINISHED not in kinds
    assert SessionEventType.SESSION_FINISHED not in kinds
    assert rp.ledger.transaction is not None and (await rp.status()).transaction_id is not None
    await rec.close()
