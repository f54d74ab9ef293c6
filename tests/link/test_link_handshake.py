"""The two-phase handshake, command gating, bad input, main restart and the fail-safe,
against a real gRPC server on loopback (the satellite side driven by raw stubs or RemotePort)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from linkkit import Link, fake_port, next_event, sleeping_on, wait_until

from chargeport import PROTOCOL_VERSION
from chargeport.clock import ManualClock
from chargeport.port import (
    CommandRefused,
    InvalidArgument,
    LinkChanged,
    PortDisabledChanged,
    SessionEvent,
    SessionEventType,
    StopReason,
)
from chargeport.v1 import link_pb2 as pb
from chargeport.v1 import link_pb2_grpc as pb_grpc


@pytest.fixture
async def plain(link: Link) -> AsyncIterator[tuple[Link, grpc.aio.Channel]]:
    """An insecure satellite (SAT-1 over a FakePort) and a raw channel to it."""
    await link.satellite(fake_port(), secure=False)
    host, port = link.addresses["SAT-1"]
    async with grpc.aio.insecure_channel(f"{host}:{port}") as channel:
        yield link, channel


def hello(main_boot_id: str = "m1", version: int = PROTOCOL_VERSION) -> pb.HelloRequest:
    return pb.HelloRequest(station_id="st", main_boot_id=main_boot_id, protocol_version=version)


async def test_hello_describes_the_satellite_and_port(
    plain: tuple[Link, grpc.aio.Channel],
) -> None:
    link, channel = plain
    stub = pb_grpc.LinkStub(channel)
    reply = await stub.Hello(hello())
    assert reply.serial == "SAT-1" and reply.protocol_version == PROTOCOL_VERSION
    assert reply.satellite_boot_id == link.hosts[0].boot_id and reply.session_id
    assert (reply.port.connector, reply.port.max_current_a, reply.port.phases) == (1, 32.0, 3)
    assert not reply.resumed
    assert (await stub.Hello(hello())).resumed  # same main boot id: a resume
    again = await stub.Hello(hello("m2"))  # a restarted main
    assert not again.resumed and link.hosts[0].agent.main_boot_id == "m2"


async def test_commands_before_ready_are_failed_precondition(
    plain: tuple[Link, grpc.aio.Channel],
) -> None:
    link, channel = plain
    stub = pb_grpc.LinkStub(channel)
    reply = await stub.Hello(hello())
    req = pb.CommandRequest(session_id=reply.session_id, connector=1, enable=pb.Empty())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Command(req)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "Ready" in (err.value.details() or "")
    # Ready without an Events subscription is refused too; the port stays disabled.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Ready(pb.ReadyRequest(session_id=reply.session_id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert not (await link.hosts[0].agent.port.status()).enabled


async def test_ready_enables_the_port_and_bad_input_keeps_the_agent_serving(
    plain: tuple[Link, grpc.aio.Channel],
) -> None:
    _, channel = plain
    stub = pb_grpc.LinkStub(channel)
    reply = await stub.Hello(hello())
    events = stub.Events(pb.EventsRequest(session_id=reply.session_id))
    await events.initial_metadata()
    await stub.Ready(pb.ReadyRequest(session_id=reply.session_id))
    first = await events.read()
    assert first.WhichOneof("body") == "enabled" and first.enabled and first.seq == 1
    sid = reply.session_id
    cases = [
        (pb.CommandRequest(session_id=sid, connector=1), grpc.StatusCode.INVALID_ARGUMENT),
        (
            pb.CommandRequest(session_id=sid, connector=1, set_limit=pb.SetLimit(amps=-1)),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            pb.CommandRequest(session_id=sid, connector=1, stop_transaction=pb.StopTransaction()),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            pb.CommandRequest(session_id=sid, connector=5, pause=pb.Empty()),
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            pb.CommandRequest(session_id="old", connector=1, pause=pb.Empty()),
            grpc.StatusCode.FAILED_PRECONDITION,
        ),
    ]
    for req, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Command(req)
        assert err.value.code() == code and err.value.details()
    # The bidi stream answers with codes instead of dying.
    call = stub.Commands()
    await call.write(
        pb.CommandRequest(session_id=sid, connector=9, correlation_id=4, pause=pb.Empty())
    )
    bad = await call.read()
    assert (bad.correlation_id, bad.code) == (4, grpc.StatusCode.NOT_FOUND.value[0])
    await call.write(
        pb.CommandRequest(session_id=sid, connector=1, correlation_id=5, get_status=pb.Empty())
    )
    good = await call.read()
    assert good.code == 0 and good.status.enabled
    await call.done_writing()
    events.cancel()


async def test_protocol_version_mismatch_is_refused_on_both_sides(link: Link) -> None:
    await link.satellite(fake_port(), secure=False)
    host, port = link.addresses["SAT-1"]
    async with grpc.aio.insecure_channel(f"{host}:{port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pb_grpc.LinkStub(channel).Hello(hello(version=PROTOCOL_VERSION + 1))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "protocol version mismatch" in (err.value.details() or "")
    # A main speaking another version never comes up and says why.
    rp = await link.remote(secure=False, connect=False, protocol_version=PROTOCOL_VERSION + 1)
    await wait_until(lambda: "protocol version mismatch" in rp.last_error)
    assert not rp.connected


async def test_health_and_reflection_are_served(plain: tuple[Link, grpc.aio.Channel]) -> None:
    _, channel = plain
    health = health_pb2_grpc.HealthStub(channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service="chargeport.v1.Link"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = refl.ServerReflectionInfo()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    answer = await call.read()
    names = {s.name for s in answer.list_services_response.service}
    assert {"chargeport.v1.Link", "grpc.health.v1.Health"} <= names
    await call.done_writing()


async def test_remote_port_handshake_and_commands(link: Link) -> None:
    fake = fake_port()
    await link.satellite(fake)
    rp = await link.remote()
    assert rp.info.firmware_version == "1.0.0" and rp.info.remote and rp.info.connector_id == 2
    sub = rp.events()
    await rp.authorize("TAG1")
    fake.plug_in()
    started = await next_event(
        sub,
        lambda b: isinstance(b, SessionEvent) and b.type is SessionEventType.TRANSACTION_STARTED,
    )
    assert started.body.transaction.id_tag == "TAG1"  # type: ignore[union-attr]
    with pytest.raises(InvalidArgument):
        await rp.set_limit(16, 2)
    with pytest.raises(CommandRefused):
        await rp.resume()
    assert (await rp.status()).transaction_id == started.body.transaction.transaction_id  # type: ignore[union-attr]


async def test_main_restart_resyncs_with_the_new_main_boot_id(link: Link) -> None:
    fake = fake_port()
    host = await link.satellite(fake)
    first = await link.remote(main_boot_id="boot-A")
    await first.authorize("TAG1")
    fake.plug_in()
    await first.disable()
    await first.stop()  # the main goes away ...
    second = await link.remote(main_boot_id="boot-B")  # ... and comes back as a new boot
    assert host.agent.main_boot_id == "boot-B"
    status = await second.status()
    assert status.enabled  # a new main's wish resets: the port is offered again after Ready
    assert status.transaction_id is not None  # the running transaction survives the main


async def test_failsafe_stops_the_charge_after_the_grace_period(link: Link) -> None:
    clock = ManualClock()
    fake = fake_port()
    host = await link.satellite(fake, grace_period_s=30.0, clock=clock)
    rp = await link.remote()
    await rp.authorize("TAG1")
    fake.plug_in()
    fake.ev_ready()
    await rp.stop()
    await wait_until(lambda: host.agent.streams == 0 and sleeping_on(clock))  # grace armed
    clock.advance(29.0)  # not due yet: nothing can happen
    assert ("stop_transaction", (StopReason.OTHER,)) not in fake.calls
    clock.advance(1.0)
    await wait_until(lambda: host.agent.failsafe_count == 1)
    assert ("stop_transaction", (StopReason.OTHER,)) in fake.calls
    status = await fake.status()
    assert status.transaction_id is None and not status.enabled
    # The main comes back: Ready offers the port again and the finished transaction is replayed.
    back = await link.remote()
    assert (await back.status()).enabled


async def test_a_main_back_within_the_grace_period_keeps_the_charge(link: Link) -> None:
    clock = ManualClock()
    fake = fake_port()
    host = await link.satellite(fake, grace_period_s=30.0, clock=clock)
    rp = await link.remote()
    await rp.authorize("TAG1")
    fake.plug_in()
    await rp.stop()
    await wait_until(lambda: host.agent.streams == 0)
    sub_back = await link.remote()
    await wait_until(lambda: not sleeping_on(clock))  # the grace was cancelled ...
    clock.advance(60.0)  # ... so this reaches no timer
    assert host.agent.failsafe_count == 0
    assert (await sub_back.status()).transaction_id is not None


async def test_link_changed_is_emitted_on_up_and_down(link: Link) -> None:
    await link.satellite(fake_port())
    rp = await link.remote(connect=False)
    sub = rp.events()
    # A main new to the board: the snapshot (after Ready enabled the port) comes first, so
    # consumers hear "up" with the port's state already in place.
    enabled = await next_event(sub, lambda b: isinstance(b, PortDisabledChanged))
    assert enabled.body == PortDisabledChanged(True)
    up = await next_event(sub, lambda b: isinstance(b, LinkChanged))
    assert up.body == LinkChanged(True, link.hosts[0].boot_id, "1.0.0")
    await link.hosts[0].stop(0)
    down = await next_event(sub, lambda b: isinstance(b, LinkChanged))
    assert down.body == LinkChanged(False, link.hosts[0].boot_id, "1.0.0")
