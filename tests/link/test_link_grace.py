"""Link loss on the main side: the grace period, closing a lost port's session, exactly one
TransactionFinished per transaction (OCPP 1.6 4.10 StopTransaction), and grace in real seconds
under a ScaledClock. Real gRPC on loopback; a kill -9'd satellite process for the "never back"
path."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from linkkit import (
    Link,
    Recorder,
    TcpProxy,
    fake_port,
    next_event,
    sleeping_on,
    spawn_satellite,
    tell,
    wait_until,
)

from chargeport.clock import ManualClock, ScaledClock
from chargeport.config import ConfigError, SatelliteConfig, load_config
from chargeport.port import (
    LinkChanged,
    MeterValue,
    PortUnavailable,
    SessionEvent,
    SessionEventType,
    StopReason,
)
from satellite.agent import real_seconds

HERE = Path(__file__).parent
Proxies = Callable[[tuple[str, int]], Awaitable[TcpProxy]]
FIN = SessionEventType.TRANSACTION_FINISHED
SFIN = SessionEventType.SESSION_FINISHED


def is_session(kind: SessionEventType) -> Callable[[object], bool]:
    return lambda b: isinstance(b, SessionEvent) and b.type is kind


async def charging(link: Link, proxy: TcpProxy, fake: Any, clock: Any) -> tuple[Any, Recorder, str]:
    """A RemotePort through `proxy`, a running transaction at 500 Wh."""
    rp = await link.remote(address=("127.0.0.1", proxy.port), clock=clock)
    rec = Recorder(rp.events())
    await rp.authorize("TAG1")
    fake.plug_in()
    fake.ev_ready()
    fake.meter(500.0, 7000.0)
    await wait_until(lambda: any(isinstance(e.body, MeterValue) for e in rec.events))
    tx = (await rp.status()).transaction_id
    assert tx is not None
    return rp, rec, tx


async def cut(rp: Any, proxy: TcpProxy, host: Any, clock: ManualClock, timers: int = 2) -> None:
    proxy.paused = True
    proxy.cut()
    await wait_until(lambda: not rp.connected and host.agent.streams == 0)
    await wait_until(lambda: sleeping_on(clock, timers))  # the grace timers are armed


async def test_blip_shorter_than_the_grace_closes_nothing_and_resumes(
    link: Link, proxy_factory: Proxies
) -> None:
    clock = ManualClock()
    fake = fake_port()
    host = await link.satellite(fake, grace_period_s=30.0, clock=clock)
    proxy = await proxy_factory(host.address)
    rp, rec, tx = await charging(link, proxy, fake, clock)
    assert rp.grace_period_s == 30.0  # the satellite's own grace, from Hello
    await cut(rp, proxy, host, clock)
    clock.advance(29.0)  # no timer is due yet: nothing can happen
    fake.meter(600.0, 7000.0)  # still charging on the satellite
    proxy.paused = False
    await wait_until(lambda: rp.connected and rp.last_seq == host.agent.last_seq)
    await wait_until(lambda: not sleeping_on(clock))  # both timers cancelled by the resume
    clock.advance(60.0)  # so this reaches no timer
    assert host.agent.failsafe_count == 0
    assert (await rp.status()).transaction_id == tx
    assert rec.sessions(FIN) == [] and rec.sessions(SFIN) == []
    assert rec.events[-1].body == MeterValue(600.0, 7000.0)
    await rec.close()


@pytest.mark.integration
async def test_kill_9_and_never_back_closes_the_session_after_the_grace_with_the_last_meter(
    link: Link,
) -> None:
    """OCPP 1.6 Reason Other: the main cannot tell a dead board from a cut cable."""
    clock = ManualClock()
    proc, port = await spawn_satellite(link.pki, "--grace", "30.0")
    try:
        rp = await link.remote(address=("127.0.0.1", port), keepalive_s=0.5, clock=clock)
        sub = rp.events()
        await rp.authorize("TAG9")
        await tell(proc, "plug")
        await tell(proc, "ready")
        await tell(proc, "meter 777")
        started = await next_event(sub, is_session(SessionEventType.TRANSACTION_STARTED))
        await next_event(sub, lambda b: isinstance(b, MeterValue))
        proc.kill()  # SIGKILL: no goodbye on the wire
        proc.wait()
        await next_event(sub, lambda b: isinstance(b, LinkChanged) and not b.connected)
        with pytest.raises(PortUnavailable):
            await rp.status()  # unavailable at once; the session stays open for the grace
        await wait_until(lambda: sleeping_on(clock))  # the grace timer is armed
        clock.advance(29.0)  # not due yet: nothing can happen
        assert sub.pending() == 0  # type: ignore[attr-defined]
        clock.advance(1.0)
        fin = await next_event(sub, is_session(FIN))
        tx = fin.body.transaction  # type: ignore[union-attr]
        assert tx.transaction_id == started.body.transaction.transaction_id  # type: ignore[union-attr]
        assert (tx.meter_wh, tx.stop_reason) == (777.0, StopReason.OTHER)
        end = await next_event(sub, is_session(SFIN))
        assert end.body.session_id == fin.body.session_id != ""  # type: ignore[union-attr]
        assert not rp.connected and not rp.ledger.has_open
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


async def test_back_after_the_grace_with_the_same_boot_finishes_each_transaction_once(
    link: Link, proxy_factory: Proxies
) -> None:
    """The satellite's fail-safe stopped the charge; its replayed TransactionFinished and
    SessionFinished are dropped: OCPP sees one StopTransaction (OCPP 1.6 4.10)."""
    clock = ManualClock()
    fake = fake_port()
    host = await link.satellite(fake, grace_period_s=30.0, clock=clock)
    proxy = await proxy_factory(host.address)
    rp, rec, tx = await charging(link, proxy, fake, clock)
    boot = rp.boot_id
    await cut(rp, proxy, host, clock)
    clock.advance(30.0)
    await wait_until(lambda: host.agent.failsafe_count == 1 and len(rec.sessions(SFIN)) == 1)
    [fin] = rec.sessions(FIN)
    assert fin.transaction is not None and fin.transaction.transaction_id == tx
    assert (fin.transaction.meter_wh, fin.transaction.stop_reason) == (500.0, StopReason.OTHER)
    fake.unplug()  # the driver leaves while the link is still down
    proxy.paused = False
    await wait_until(lambda: rp.connected and rp.last_seq == host.agent.last_seq)
    assert rp.boot_id == boot and rp.handshakes == 2
    assert [f.transaction.transaction_id for f in rec.sessions(FIN)] == [tx]  # type: ignore[union-attr]
    assert len(rec.sessions(SFIN)) == 1
    assert (await rp.status()).transaction_id is None
    await rec.close()


async def test_a_satellite_still_charging_past_the_mains_grace_is_told_to_stop(
    link: Link, proxy_factory: Proxies
) -> None:
    """The two grace timers race: if the main closed the transaction first, the satellite must
    not keep delivering energy outside any OCPP transaction."""
    main_clock = ManualClock()
    fake = fake_port()
    host = await link.satellite(fake, grace_period_s=30.0, clock=ManualClock())  # never fires
    proxy = await proxy_factory(host.address)
    rp, rec, tx = await charging(link, proxy, fake, main_clock)
    await cut(rp, proxy, host, main_clock, timers=1)
    main_clock.advance(30.0)
    await wait_until(lambda: len(rec.sessions(FIN)) == 1)
    assert host.agent.failsafe_count == 0 and (await fake.status()).transaction_id == tx
    proxy.paused = False
    await wait_until(lambda: ("stop_transaction", (StopReason.OTHER,)) in fake.calls)
    await wait_until(lambda: rp.connected and rp.last_seq == host.agent.last_seq)
    assert (await rp.status()).transaction_id is None
    assert [f.transaction.transaction_id for f in rec.sessions(FIN)] == [tx]  # type: ignore[union-attr]
    await rec.close()


async def test_grace_is_real_seconds_so_a_fast_sim_survives_blips(
    link: Link, proxy_factory: Proxies
) -> None:
    """At sim speed 1000 a simulated 10 s grace would be 10 ms real: shorter than a reconnect.
    The grace is real seconds, so handshakes after blips keep the charge."""
    clock = ScaledClock(1000.0)
    fake = fake_port()
    host = await link.satellite(fake, grace_period_s=10.0, clock=clock)
    proxy = await proxy_factory(host.address)
    rp, rec, tx = await charging(link, proxy, fake, clock)
    for _ in range(3):
        proxy.cut()
        await wait_until(lambda: not rp.connected)
        await wait_until(lambda: rp.connected and host.agent.streams == 1)
    past = clock.time() + 100.0  # far past a simulated 10 s grace
    await wait_until(lambda: clock.time() >= past)
    assert host.agent.failsafe_count == 0 and rp.handshakes == 4
    assert (await rp.status()).transaction_id == tx
    assert rec.sessions(FIN) == []
    await rec.close()


async def test_a_scaled_clock_still_ends_the_grace_in_real_seconds(link: Link) -> None:
    fake = fake_port()
    host = await link.satellite(fake, grace_period_s=0.3, clock=ScaledClock(1000.0))
    rp = await link.remote()
    await rp.authorize("TAG1")
    fake.plug_in()
    await rp.stop()
    await wait_until(lambda: host.agent.failsafe_count == 1)
    assert (await fake.status()).transaction_id is None


def test_real_seconds_undoes_the_clock_speed() -> None:
    assert real_seconds(ScaledClock(30.0), 10.0) == 300.0
    assert real_seconds(ManualClock(), 10.0) == 10.0


@pytest.mark.parametrize(("grace", "ok"), [(10.0, True), (2.0, True), (1.5, False)])
def test_config_requires_a_grace_of_at_least_two_keepalives(
    tmp_path: Path, grace: float, ok: bool
) -> None:
    path = tmp_path / "sat.toml"
    path.write_text(f"[link]\nkeepalive_s = 1.0\ngrace_period_s = {grace}\n")
    if ok:
        assert load_config(path, SatelliteConfig).link.grace_period_s == grace
    else:
        with pytest.raises(ConfigError, match=r"link\.grace_period_s"):
            load_config(path, SatelliteConfig)
