"""Desired state on the main, reconciled on every Ready (issue 11): availability rides on Ready,
the current limit and a reservation are pushed again after every link-up, and a repeated
command is applied again. OCPP 1.6 5.2: a ChangeAvailability(Inoperative) persists, also when
the board restarts. Real gRPC on loopback, a real satellite process for the restart."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from linkkit import Link, Recorder, TcpProxy, fake_port, spawn_satellite, wait_until

from chargeport.port import CommandRefused, LinkChanged, PortDisabledChanged, PortUnavailable
from main_node.local_availability import guard_local_commands, local_enable_refusal
from main_node.ocpp.availability import AvailabilityStore
from main_node.ocpp.db import open_db

Proxies = Callable[[tuple[str, int]], Awaitable[TcpProxy]]


@pytest.mark.integration
async def test_a_disabled_port_comes_back_disabled_after_its_satellite_restarts(
    link: Link,
) -> None:
    proc, port = await spawn_satellite(link.pki)
    procs = [proc]
    try:
        rp = await link.remote(address=("127.0.0.1", port))
        assert (await rp.status()).enabled  # the first Ready offered it
        await rp.set_limit(10.0, 3)
        await rp.disable()  # ChangeAvailability(Inoperative)
        boot = rp.boot_id
        rec = Recorder(rp.events())
        proc.kill()  # the board restarts: it forgets everything the main said
        proc.wait()
        proc2, _ = await spawn_satellite(link.pki, "--listen", f"127.0.0.1:{port}")
        procs.append(proc2)
        await wait_until(lambda: rp.connected and rp.boot_id != boot, within_s=10.0)
        assert not (await rp.status()).enabled
        async with asyncio.timeout(5.0):  # the limit follows the link-up
            while (limits := (await rp.status()).limits) is None or limits.max_current_a != 10:
                await asyncio.sleep(0.02)
        # Never offered in between: Ready carried the wish, no enable flapped through.
        after_restart = rec.events[
            next(i for i, e in enumerate(rec.events) if isinstance(e.body, LinkChanged)) :
        ]
        assert PortDisabledChanged(True) not in [e.body for e in after_restart]
        await rec.close()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            for stream in (p.stdin, p.stdout):
                if stream is not None:
                    stream.close()


async def test_a_wish_made_while_the_link_is_down_is_applied_at_the_next_ready(
    link: Link, proxy_factory: Proxies
) -> None:
    fake = fake_port()
    host = await link.satellite(fake)
    proxy = await proxy_factory(host.address)
    rp = await link.remote(address=("127.0.0.1", proxy.port))
    proxy.paused = True
    proxy.cut()
    await wait_until(lambda: not rp.connected)
    with pytest.raises(PortUnavailable):
        await rp.disable()  # said now, unheard now ...
    proxy.paused = False
    await wait_until(lambda: rp.connected and rp.handshakes == 2)
    assert not (await rp.status()).enabled  # ... applied at the next Ready


async def test_a_reservation_is_held_again_by_a_restarted_satellite_ocpp16_5_13(
    link: Link,
) -> None:
    fake = fake_port()
    host = await link.satellite(fake)
    rp = await link.remote()
    await rp.reserve(7, "TAG7", 4_000_000_000.0)
    boot = rp.boot_id
    await host.stop(0)
    fresh = fake_port()  # the restarted board holds nothing
    await link.satellite(fresh, listen=f"127.0.0.1:{host.port}")
    await wait_until(lambda: rp.connected and rp.boot_id != boot)
    await wait_until(lambda: ("reserve", (7, "TAG7", 4_000_000_000.0)) in fresh.calls)
    assert (await rp.status()).reservation_id == 7


async def test_a_repeated_command_is_sent_again(link: Link) -> None:
    fake = fake_port()
    await link.satellite(fake)
    rp = await link.remote()
    await rp.disable()
    await rp.disable()
    assert [c for c in fake.calls if c[0] == "disable"] == [("disable", ()), ("disable", ())]


def test_a_repeated_inoperative_is_applied_again_ocpp16_5_2(tmp_path: Path) -> None:
    """The store answers Accepted and still names the connector to push: a board that forgot
    (restarted, replaced) is disabled again."""
    store = AvailabilityStore(open_db(tmp_path / "s.db"), 3)
    first = store.request(2, "Inoperative", busy=[])
    again = store.request(2, "Inoperative", busy=[])
    assert (first.changes, first.apply) == ({2: "Inoperative"}, {2: "Inoperative"})
    assert (again.status, again.changes, again.apply) == ("Accepted", {}, {2: "Inoperative"})
    # Scheduled (a transaction runs): nothing to push yet (section 5.2).
    assert store.request(3, "Inoperative", busy=[3]).apply == {}
    # Connector 0 is every connector.
    everything = {1: "Operative", 2: "Operative", 3: "Operative"}
    assert store.request(0, "Operative", busy=[]).apply == everything


@pytest.mark.parametrize(
    ("csms", "overrides", "refused"),
    [
        ("Operative", False, False),
        ("Inoperative", False, True),  # the CSMS's word stands (OCPP 1.6 5.2)
        ("Inoperative", True, False),  # unless the station is configured otherwise
    ],
)
def test_local_enable_precedence(csms: str, overrides: bool, refused: bool) -> None:
    why = local_enable_refusal(3, csms, overrides)
    assert (why is not None) is refused
    if why is not None:
        assert "connector 3 is Inoperative by the central system" in why


async def test_a_local_enable_does_not_override_the_csms_inoperative(tmp_path: Path) -> None:
    store = AvailabilityStore(open_db(tmp_path / "s.db"), 2)
    fake = fake_port(enabled=True)
    local = guard_local_commands({2: fake}, store.effective)[2]
    store.request(2, "Inoperative", busy=[])
    await fake.disable()  # what the OCPP session does with the store's answer
    with pytest.raises(CommandRefused, match="Inoperative by the central system"):
        await local.enable()  # MQTT cmd/enable or the dashboard's Enable
    assert not (await fake.status()).enabled
    await local.disable()  # a local Disable always applies
    store.request(2, "Operative", busy=[])
    await local.enable()
    assert (await fake.status()).enabled
    overriding = guard_local_commands({2: fake}, store.effective, overrides=True)[2]
    store.request(0, "Inoperative", busy=[])  # connector 0 = the whole charge point
    await overriding.enable()
    assert ("enable", ()) == fake.calls[-1]
