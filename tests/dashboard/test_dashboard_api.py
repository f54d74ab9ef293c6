"""The dashboard's HTTP API on a real loopback server: login sessions, history, log, site.

FakePorts stand in for the station below the ChargePort seam; everything above (aiohttp, the
cookie jar, the WebSocket) is real."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from seckit import client_context, localhost_cert

from chargeport.fake_port import FakePort
from chargeport.port import (
    MeterValue,
    PortInfo,
    SessionEvent,
    SessionEventType,
    StopReason,
    TransactionData,
)
from main_node.dashboard import Dashboard
from main_node.energy import EnergySnapshot, MainsStatus
from main_node.view import StationView

pytestmark = pytest.mark.integration

PASSWORD = "op-secret"
Serve = Callable[..., Awaitable[Dashboard]]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Site:
    """The energy manager's surface the site panel reads."""

    def __init__(self) -> None:
        self.listeners: list[Callable[[EnergySnapshot], None]] = []
        self.value = EnergySnapshot(
            32.0, 20.0, (10.0, 11.0, 12.0), None, {1: 10.0, 2: 10.0}, (1, 2), (),
            mains_status=MainsStatus.STALE,
        )  # fmt: skip

    def snapshot(self) -> EnergySnapshot:
        return self.value

    def add_listener(self, listener: Callable[[EnergySnapshot], None]) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)


@pytest.fixture
def ports() -> dict[int, FakePort]:
    return {c: FakePort(PortInfo(c, f"SN{c}", "1.0", 32.0, 3), enabled=True) for c in (1, 2)}


@pytest.fixture
async def serve(ports: dict[int, FakePort]) -> AsyncIterator[Serve]:
    started: list[Dashboard] = []

    feeders: list[asyncio.Task[None]] = []

    async def feed(view: StationView, connector: int, port: FakePort) -> None:
        async for event in port.events():  # what the app's view feeder does
            view.apply(connector, event)

    async def start(**kwargs: Any) -> Dashboard:
        view = StationView("ST-1", [p.info for p in ports.values()])
        for c, port in ports.items():
            feeders.append(asyncio.create_task(feed(view, c, port)))
        kwargs.setdefault("sample_interval_s", 3600.0)  # the test samples by hand
        dash = Dashboard(view, ports, port=0, **kwargs)
        await dash.start()
        await asyncio.sleep(0)  # the feeders subscribe
        started.append(dash)
        return dash

    yield start
    for dash in started:
        await dash.stop()
    for task in feeders:
        task.cancel()
    await asyncio.gather(*feeders, return_exceptions=True)


def jar() -> aiohttp.CookieJar:
    """A cookie jar that, like a browser, keeps cookies from http://127.0.0.1."""
    return aiohttp.CookieJar(unsafe=True)


async def login(session: aiohttp.ClientSession, url: str, password: str) -> aiohttp.ClientResponse:
    async with session.post(url + "api/login", json={"password": password}) as resp:
        await resp.read()
        return resp


async def disable(session: aiohttp.ClientSession, url: str) -> int:
    async with session.post(url + "api/connectors/1/disable") as resp:
        return resp.status


async def test_login_cookie_acts_and_logout_ends_it(
    serve: Serve, ports: dict[int, FakePort]
) -> None:
    dash = await serve(operator_password=PASSWORD)
    async with aiohttp.ClientSession(cookie_jar=jar()) as session:
        assert await disable(session, dash.url) == 401  # no cookie, no password: refused
        resp = await login(session, dash.url, PASSWORD)
        assert resp.status == 200
        cookie = resp.cookies["chargeport_session"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and not cookie["secure"]
        async with session.get(dash.url + "api/session") as r:
            assert await r.json() == {"read_only": False, "operator": True}
        assert await disable(session, dash.url) == 200  # the cookie alone, no password
        assert ("disable", ()) in ports[1].calls
        async with session.post(dash.url + "api/logout") as r:
            assert r.status == 200
        session.cookie_jar.clear()  # what the browser does with the expired cookie ...
        assert await disable(session, dash.url) == 401
        # ... and a copy of the old token kept by someone else is dead on the server too.
        stolen = cookie.value
        session.cookie_jar.update_cookies({"chargeport_session": stolen})
        assert await disable(session, dash.url) == 401


async def test_login_is_rate_limited_and_checks_its_input(serve: Serve) -> None:
    clock = Clock()
    dash = await serve(operator_password=PASSWORD, monotonic=clock, max_failures=3)
    async with aiohttp.ClientSession(cookie_jar=jar()) as session:
        async with session.post(dash.url + "api/login", data=b"not json") as r:
            assert r.status == 400 and "password" in (await r.json())["error"]
        for _ in range(3):
            assert (await login(session, dash.url, "guess")).status == 401
        limited = await login(session, dash.url, PASSWORD)
        assert limited.status == 429 and "chargeport_session" not in limited.cookies
        clock.now += 61.0
        assert (await login(session, dash.url, PASSWORD)).status == 200
        async with session.post(
            dash.url + "api/login", json={"password": PASSWORD}, headers={"Origin": "http://x.y"}
        ) as r:
            assert r.status == 403


async def test_read_only_dashboard_has_no_login(serve: Serve) -> None:
    dash = await serve()
    async with aiohttp.ClientSession(cookie_jar=jar()) as session:
        assert (await login(session, dash.url, "anything")).status == 403
        async with session.get(dash.url + "api/session") as r:
            assert await r.json() == {"read_only": True, "operator": False}


async def test_session_cookie_is_secure_over_tls(serve: Serve, tmp_path: Path) -> None:
    ca, cert, key = localhost_cert(tmp_path)
    dash = await serve(operator_password=PASSWORD, tls_cert_file=str(cert), tls_key_file=str(key))
    connector = aiohttp.TCPConnector(ssl=client_context(ca))
    async with aiohttp.ClientSession(connector=connector, cookie_jar=jar()) as session:
        resp = await login(session, dash.url, PASSWORD)
        assert resp.cookies["chargeport_session"]["secure"]


async def test_history_log_site_and_live_sample(serve: Serve, ports: dict[int, FakePort]) -> None:
    site = Site()
    dash = await serve(site=site, wall=lambda: 0.5)  # the sampler's first tick: t = 0.5
    ports[1].emit(MeterValue(5000.0, 7000.0, (230.0, 231.0, 229.0), (10.0, 10.5, 9.5), 50.0))
    tx = TransactionData("t1", "TAG", 5000.0)
    ports[1].emit(SessionEvent(SessionEventType.TRANSACTION_STARTED, "s", tx))
    stop = TransactionData("t1", "TAG", 5600.0, stop_reason=StopReason.EV_DISCONNECTED)
    ports[1].emit(SessionEvent(SessionEventType.TRANSACTION_FINISHED, "s", stop))
    async with aiohttp.ClientSession(cookie_jar=jar()) as session:
        async with session.ws_connect(dash.url + "ws") as ws:
            # Wait for the log to have folded both events in (pushed as log_version).
            while (await ws.receive_json())["log_version"] < 2:
                pass
            dash.history.record(1, 1.0, 0.0, (), 0.0)  # an older sample first
            for t in (2.0, 3.0):
                dash.sample(t)
            snap = await ws.receive_json()
            while snap["sample"].get("1", [0])[0] != 3.0:
                snap = await ws.receive_json()
        assert snap["sample"]["1"] == [3.0, 7000.0, 10.0, 10.5, 9.5, 5000.0]
        assert "history" not in snap["guns"][0]  # the chart ring travels once, over HTTP
        assert snap["site"]["mains_status"] == "stale" and snap["site"]["mains_a"] == [10, 11, 12]
        async with session.get(dash.url + "api/history") as r:
            hist = await r.json()
        assert hist["guns"]["1"]["t"][-3:] == [1.0, 2.0, 3.0]
        assert hist["site"]["t"] == [0.5, 2.0, 3.0]  # the site is sampled with the guns
        assert hist["site"]["mains_a"][2][-1] == 12.0 and hist["site"]["allocation"]["2"][-1] == 10
        assert snap["site_sample"]["t"] == [3.0]
        assert hist["guns"]["1"]["power_w"][-1] == 7000.0
        assert hist["guns"]["1"]["current_a"][1][-1] == 10.5
        async with session.get(dash.url + "api/history?since=2.5") as r:
            assert (await r.json())["guns"]["1"]["t"] == [3.0]
        async with session.get(dash.url + "api/history?since=x") as r:
            assert r.status == 400
        async with session.get(dash.url + "api/log") as r:
            log = await r.json()
        (row,) = log["transactions"]
        assert (row["energy_wh"], row["stop_reason"], row["id_tag"]) == (
            600.0,
            "EVDisconnected",
            "TAG",
        )
        async with session.get(dash.url + "api/state") as r:
            state = await r.json()
        assert state["guns"][0]["voltage_v"] == [230.0, 231.0, 229.0]
        assert state["guns"][0]["frequency_hz"] == 50.0
