"""Liveness at the application level, both ways: a stopped process keeps its sockets open (the
kernel still ACKs) and answers no heartbeat. A hung satellite is declared down by the main and
the grace rules run as for a killed one; a satellite that stops hearing its main runs its
fail-safe grace and says so in its log. Real gRPC on loopback, a real SIGSTOPped process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from linkkit import (
    Link,
    fake_port,
    next_event,
    sleeping_on,
    spawn_satellite,
    tell,
    wait_until,
)

from chargeport import PROTOCOL_VERSION
from chargeport.clock import ManualClock
from chargeport.port import (
    LinkChanged,
    MeterValue,
    PortUnavailable,
    SessionEvent,
    SessionEventType,
    StopReason,
)
from chargeport.v1 import link_pb2 as pb
from chargeport.v1 import link_pb2_grpc as pb_grpc


def is_session(kind: SessionEventType) -> Callable[[object], bool]:
    return lambda b: isinstance(b, SessionEvent) and b.type is kind


@contextlib.asynccontextmanager
async def satellite_process(link: Link, *args: str) -> AsyncIterator[subprocess.Popen[str]]:
    proc, port = await spawn_satellite(link.pki, *args)
    link.addresses["SAT-1"] = ("127.0.0.1", port)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


@pytest.mark.integration
async def test_sigstopped_satellite_is_declared_down_then_resumes_after_sigcont(
    link: Link,
) -> None:
    async with satellite_process(link) as proc:
        rp = await link.remote(liveness_s=2.0)
        sub = rp.events()
        await rp.authorize("TAG1")
        await tell(proc, "plug")
        await tell(proc, "ready")
        await tell(proc, "meter 500")
        await next_event(sub, lambda b: isinstance(b, MeterValue))
        boot = rp.boot_id
        os.kill(proc.pid, signal.SIGSTOP)  # hung: its sockets stay open, nothing answers
        down = await next_event(sub, lambda b: isinstance(b, LinkChanged))
        assert not down.body.connected  # type: ignore[union-attr]
        assert "silent" in rp.last_error
        with pytest.raises(PortUnavailable):
            await rp.status()
        os.kill(proc.pid, signal.SIGCONT)
        up = await next_event(sub, lambda b: isinstance(b, LinkChanged))
        assert up.body.connected and rp.boot_id == boot  # type: ignore[union-attr]
        assert (await rp.status()).transaction_id is not None  # back inside the grace
        await tell(proc, "meter 600")
        meter = await next_event(sub, lambda b: isinstance(b, MeterValue))
        assert meter.body.energy_wh == 600.0  # type: ignore[union-attr]


@pytest.mark.integration
async def test_a_hung_satellite_past_the_grace_is_closed_as_a_killed_one_would_be(
    link: Link,
) -> None:
    """OCPP 1.6 Reason Other with the last meter; stopped on the board when it wakes up."""
    clock = ManualClock()
    async with satellite_process(link, "--grace", "30.0") as proc:
        rp = await link.remote(liveness_s=2.0, clock=clock)
        sub = rp.events()
        await rp.authorize("TAG1")
        await tell(proc, "plug")
        await tell(proc, "ready")
        await tell(proc, "meter 777")
        started = await next_event(sub, is_session(SessionEventType.TRANSACTION_STARTED))
        await next_event(sub, lambda b: isinstance(b, MeterValue))
        os.kill(proc.pid, signal.SIGSTOP)
        await next_event(sub, lambda b: isinstance(b, LinkChanged) and not b.connected)
        await wait_until(lambda: sleeping_on(clock))  # the grace timer is armed
        clock.advance(30.0)
        fin = await next_event(sub, is_session(SessionEventType.TRANSACTION_FINISHED))
        tx = fin.body.transaction  # type: ignore[union-attr]
        assert tx.transaction_id == started.body.transaction.transaction_id  # type: ignore[union-attr]
        assert (tx.meter_wh, tx.stop_reason) == (777.0, StopReason.OTHER)  # type: ignore[union-attr]
        os.kill(proc.pid, signal.SIGCONT)
        await next_event(sub, lambda b: isinstance(b, LinkChanged) and b.connected)
        # The board still ran the transaction the main closed: it is told to stop.
        await wait_until(lambda: rp.connected and not rp.ledger.has_open)
        async with asyncio.timeout(5.0):
            while (await rp.status()).transaction_id is not None:
                await asyncio.sleep(0.02)


async def test_a_satellite_that_stops_hearing_its_main_runs_the_failsafe(
    link: Link, caplog: pytest.LogCaptureFixture
) -> None:
    """A main whose gRPC stack still answers (HTTP/2 pings) but whose application sends no
    heartbeat: the satellite ends the session, logs it, and stops the charge after its grace
    (IEC 61851-1: no current offered without the controlling side)."""
    clock = ManualClock()
    fake = fake_port()
    host = await link.satellite(fake, secure=False, grace_period_s=30.0, clock=clock)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        stub = pb_grpc.LinkStub(channel)  # type: ignore[no-untyped-call]
        hello = await stub.Hello(
            pb.HelloRequest(
                station_id="s", main_boot_id="m", protocol_version=PROTOCOL_VERSION, liveness_s=0.5
            )
        )
        assert hello.liveness_s == 0.5
        events = stub.Events(pb.EventsRequest(session_id=hello.session_id))
        await events.initial_metadata()
        await stub.Ready(pb.ReadyRequest(session_id=hello.session_id))
        await fake.authorize("TAG1")
        fake.plug_in()
        fake.ev_ready()
        with caplog.at_level(logging.WARNING):
            # Silence from the main: its stream ends, though the channel is healthy.
            async with asyncio.timeout(5.0):
                async for _ in events:
                    pass
            assert await events.code() == grpc.StatusCode.OK
            assert not host.agent.ready and host.agent.streams == 0
            assert any("main silent" in r.getMessage() for r in caplog.records)
        await wait_until(lambda: sleeping_on(clock))  # the grace timer is armed
        clock.advance(30.0)
        await wait_until(lambda: host.agent.failsafe_count == 1)
        status = await fake.status()
        assert status.transaction_id is None and not status.enabled
        assert ("stop_transaction", (StopReason.OTHER,)) in fake.calls
