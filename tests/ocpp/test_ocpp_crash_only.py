"""The OCPP session is crash-only (issue 12): any error restarts what failed, with backoff;
an error that keeps coming back ends the session so that its owner can end the process."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
from ocpp.v16.enums import Action
from ocpp_station_fixture import make_ports, options, until

import simulation.csms as csms_module
from chargeport.fake_port import FakePort
from chargeport.tasks import TaskGaveUp
from main_node.ocpp.client import OcppSession
from main_node.ocpp.db import open_db
from simulation.csms import CentralSystem, on


async def test_an_unexpected_error_in_the_connection_reconnects_the_session(
    tmp_path: Path,
) -> None:
    """Before issue 12 only network errors were caught: anything else killed the session's
    task group and left the main up but offline for good."""
    calls: list[bool] = []

    def on_connection(up: bool) -> None:
        calls.append(up)
        if len(calls) == 1:
            raise RuntimeError("a bug in a listener")

    conn = open_db(tmp_path / "db.sqlite")
    async with CentralSystem() as csms:
        session = OcppSession(options(csms.url), make_ports(), conn, on_connection=on_connection)
        task = asyncio.create_task(session.run())
        try:
            await csms.wait_for(lambda: csms.connects >= 2)
            await until(lambda: session.online)
            assert await csms.change_configuration("HeartbeatInterval", "60") == "Accepted"
            assert len(csms.actions("BootNotification")) == 1  # a reconnect is no new boot
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            conn.close()


async def test_an_error_that_keeps_coming_back_ends_the_session(tmp_path: Path) -> None:
    def on_connection(up: bool) -> None:
        if up:
            raise RuntimeError("always")

    conn = open_db(tmp_path / "db.sqlite")
    try:
        async with CentralSystem() as csms:
            session = OcppSession(
                options(csms.url), make_ports(), conn, on_connection=on_connection
            )
            with pytest.raises(ExceptionGroup) as caught:
                async with asyncio.timeout(30):
                    await session.run()
            assert caught.group_contains(TaskGaveUp)
            assert csms.connects > 1  # it did retry before giving up
    finally:
        conn.close()


async def test_a_failing_inner_loop_is_restarted_and_the_session_stays_online(
    tmp_path: Path,
) -> None:
    """The limit loop dies on its first push (a listener's bug); it is restarted and the
    limits reach the energy manager after all."""
    pushed: list[tuple[int, float | None]] = []

    def limit_sink(cid: int, amps: float | None) -> None:
        if not pushed:
            pushed.append((-1, None))
            raise RuntimeError("first push fails")
        pushed.append((cid, amps))

    conn = open_db(tmp_path / "db.sqlite")
    async with CentralSystem() as csms:
        session = OcppSession(options(csms.url), make_ports(), conn, limit_sink=limit_sink)
        task = asyncio.create_task(session.run())
        try:
            await until(lambda: session.online and any(cid == 0 for cid, _ in pushed))
            assert await csms.change_configuration("HeartbeatInterval", "60") == "Accepted"
            assert csms.connects == 1
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            conn.close()


class BrokenPort(FakePort):
    """A port whose authorize has a bug (not a PortError)."""

    async def authorize(self, id_tag: str, reservation_id: int | None = None) -> None:
        raise RuntimeError("a bug below the charge point")


async def test_work_after_a_reply_that_fails_fails_alone(tmp_path: Path) -> None:
    """RemoteStartTransaction is Accepted, then authorizing the port blows up: that work is
    logged and dropped; the session and its connection stay up."""
    ports = make_ports(2)
    ports[2] = BrokenPort(ports[2].info)
    conn = open_db(tmp_path / "db.sqlite")
    async with CentralSystem() as csms:
        session = OcppSession(options(csms.url), ports, conn)
        task = asyncio.create_task(session.run())
        try:
            await until(lambda: session.online)
            await csms.wait_for(lambda: len(csms.statuses) >= 3)
            assert await csms.remote_start("TAG-OK", 2) == "Accepted"
            assert await csms.change_configuration("HeartbeatInterval", "60") == "Accepted"
            assert await csms.remote_start("TAG-OK", 2) == "Accepted"
            assert await csms.trigger("Heartbeat") == "Accepted"
            await csms.wait_for(lambda: csms.actions("Heartbeat"))
            assert csms.connects == 1 and not task.done()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            conn.close()


async def test_no_answer_in_time_is_a_failed_attempt_not_a_lost_connection_ocpp16_4_10(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TimeoutError is an OSError in Python: a CSMS slow to answer StartTransaction must count
    as a failed attempt (retried later, section 4.10), not as a dead connection."""
    slow_once = asyncio.Event()

    class SlowCsms(csms_module.CsmsConnection):
        @on(Action.start_transaction)
        async def on_start(
            self, connector_id: int, id_tag: str, meter_start: int, **kw: Any
        ) -> Any:
            if not slow_once.is_set():
                slow_once.set()
                await asyncio.sleep(1.0)  # longer than the station's response timeout
            return super().on_start(connector_id, id_tag, meter_start, **kw)

    monkeypatch.setattr(csms_module, "CsmsConnection", SlowCsms)
    ports = make_ports(2)
    conn = open_db(tmp_path / "db.sqlite")
    async with CentralSystem() as csms:
        opts = options(csms.url, response_timeout_s=0.3)
        session = OcppSession(opts, ports, conn)
        task = asyncio.create_task(session.run())
        try:
            await until(lambda: session.online)
            await ports[1].authorize("TAG-OK")
            ports[1].plug_in()
            await until(lambda: slow_once.is_set())
            # Retried after TransactionMessageRetryInterval, on the same connection.
            await until(lambda: session.journal.pending_count() == 0)
            assert csms.connects == 1
            assert len(csms.actions("StartTransaction")) == 2  # the late one and the retry
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            conn.close()
