"""Dashboard security (issue 14): the password as an scrypt hash (RFC 7914) compared in constant
time, wrong attempts limited per client (then 429), CSP and friends on every response, a foreign
Origin refused on /ws and POSTs, optional TLS. Pure core first, then a real server on loopback."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from seckit import client_context, localhost_cert

from chargeport.fake_port import FakePort
from chargeport.port import PortInfo
from chargeport.security_log import DASHBOARD_LOGIN_FAILED, LOGGER_NAME
from main_node.dashboard import Dashboard, DashboardConfigError
from main_node.dashboard_auth import (
    LoginLimiter,
    PasswordHashError,
    check_hash,
    hash_password,
    same_origin,
    security_headers,
    verify_password,
)
from main_node.view import StationView

pytestmark = pytest.mark.integration

PASSWORD = "operator-secret"
Serve = Callable[..., Awaitable[Dashboard]]

# ------------------------------------------------------------------ pure


def test_hash_round_trip_and_salted() -> None:
    stored = hash_password(PASSWORD)
    assert stored.startswith("scrypt$16384$8$1$") and PASSWORD not in stored
    assert verify_password(PASSWORD, stored)
    assert not verify_password(PASSWORD + "x", stored)
    assert not verify_password("", stored)
    assert hash_password(PASSWORD) != stored  # a fresh salt every time


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "pbkdf2$1$2$3$AAAA$AAAA",
        "scrypt$16384$8$1$not base64!$AAAAAAAAAAAAAAAAAAAAAA==",
        "scrypt$1000$8$1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==",  # N not a power of two
        "scrypt$4194304$8$1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==",  # N too large: not computed
        "scrypt$16384$8$1$AA==$AAAAAAAAAAAAAAAAAAAAAA==",  # salt too short
    ],
)
def test_malformed_hashes_are_refused(stored: str) -> None:
    with pytest.raises(PasswordHashError):
        check_hash(stored)


def test_limiter_five_failures_per_minute_per_client() -> None:
    limiter = LoginLimiter(max_failures=5, window_s=60.0)
    for t in range(5):
        assert limiter.retry_after("a", float(t)) == 0.0
        limiter.failed("a", float(t))
    assert limiter.retry_after("a", 5.0) == pytest.approx(55.0)  # until the first one expires
    assert limiter.retry_after("b", 5.0) == 0.0  # another client is not affected
    assert limiter.retry_after("a", 60.0) == 0.0  # the failure at t=0 left the window
    limiter.failed("a", 60.0)
    assert limiter.retry_after("a", 60.5) == pytest.approx(0.5)


def test_limiter_memory_is_bounded() -> None:
    limiter = LoginLimiter(max_failures=1, window_s=60.0, max_clients=3)
    for i in range(10):
        limiter.failed(f"c{i}", float(i))
    assert limiter.retry_after("c9", 9.0) > 0 and limiter.retry_after("c0", 9.0) == 0.0


@pytest.mark.parametrize(
    ("origin", "host", "tls", "same"),
    [
        (None, "127.0.0.1:8080", False, True),  # not a browser (curl, the sim's fetch_state)
        ("http://127.0.0.1:8080", "127.0.0.1:8080", False, True),
        ("http://evil.example", "127.0.0.1:8080", False, False),
        ("http://127.0.0.1:8081", "127.0.0.1:8080", False, False),  # another port
        ("https://127.0.0.1:8080", "127.0.0.1:8080", False, False),  # another scheme
        ("https://station.local", "station.local", True, True),
        ("null", "127.0.0.1:8080", False, False),  # sandboxed iframe, file:// page
    ],
)
def test_same_origin_table(origin: str | None, host: str, tls: bool, same: bool) -> None:
    assert same_origin(origin, host, tls) is same


def test_headers_forbid_inline_code_framing_and_sniffing() -> None:
    h = security_headers("127.0.0.1:8080", tls=False)
    csp = h["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp and "ws://127.0.0.1:8080" in csp
    assert h["X-Content-Type-Options"] == "nosniff" and h["X-Frame-Options"] == "DENY"
    assert h["Referrer-Policy"] == "no-referrer" and "Strict-Transport-Security" not in h
    assert "Strict-Transport-Security" in security_headers("h", tls=True)


# ------------------------------------------------------------------ a real server


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ports() -> dict[int, FakePort]:
    return {cid: FakePort(PortInfo(cid, f"SN{cid}", "1.0", 32.0, 3)) for cid in (1, 2)}


@pytest.fixture
async def serve(
    ports: dict[int, FakePort],
) -> AsyncIterator[Serve]:
    started: list[Dashboard] = []

    async def start(**kwargs: object) -> Dashboard:
        view = StationView("ST-1", [p.info for p in ports.values()])
        dash = Dashboard(view, ports, port=0, **kwargs)  # type: ignore[arg-type]
        await dash.start()
        started.append(dash)
        return dash

    yield start
    for dash in started:
        await dash.stop()


async def post(
    session: aiohttp.ClientSession, url: str, password: str, origin: str | None = None
) -> aiohttp.ClientResponse:
    headers = {"X-Operator-Password": password}
    if origin is not None:
        headers["Origin"] = origin
    async with session.post(url + "api/connectors/1/disable", headers=headers) as resp:
        await resp.read()
        return resp


async def test_every_response_carries_the_security_headers(serve: Serve) -> None:
    dash = await serve(operator_password=PASSWORD)
    async with aiohttp.ClientSession() as session:
        for path, status in [
            ("", 200), ("api/state", 200), ("static/dashboard.js", 200),
            ("static/dashboard.css", 200), ("static/..%2fdashboard.py", 404), ("nope", 404),
        ]:  # fmt: skip
            async with session.get(dash.url + path) as resp:
                assert resp.status == status, path
                assert resp.headers["X-Frame-Options"] == "DENY", path
                assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"], path
                assert resp.headers["X-Content-Type-Options"] == "nosniff", path
        async with session.get(dash.url) as resp:
            page = await resp.text()
        assert "<script>" not in page and "<style>" not in page  # CSP without unsafe-inline


async def test_wrong_passwords_are_limited_per_client_then_429(
    serve: Serve, ports: dict[int, FakePort], caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    dash = await serve(operator_password_hash=hash_password(PASSWORD), monotonic=clock)
    caplog.set_level(logging.WARNING)
    async with aiohttp.ClientSession() as session:
        for _ in range(5):
            assert (await post(session, dash.url, "guess")).status == 401
        limited = await post(session, dash.url, PASSWORD)  # even the right one: 429
        assert limited.status == 429 and int(limited.headers["Retry-After"]) == 60
        assert ("disable", ()) not in ports[1].calls
        # Another client (another loopback address) is not locked out.
        other = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=other) as session2:
            assert (await post(session2, dash.url, PASSWORD)).status == 200
        clock.now += 60.0  # the window has passed
        assert (await post(session, dash.url, PASSWORD)).status == 200
    events = [r for r in caplog.records if r.name == LOGGER_NAME]
    assert len(events) == 5
    assert {e.security_event for e in events} == {DASHBOARD_LOGIN_FAILED}  # type: ignore[attr-defined]


async def test_foreign_origin_refused_on_ws_and_post(
    serve: Serve, ports: dict[int, FakePort]
) -> None:
    dash = await serve(operator_password=PASSWORD)
    own = dash.url.rstrip("/")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(dash.url + "ws", origin="http://evil.example")
        assert info.value.status == 403
        async with session.ws_connect(dash.url + "ws", origin=own) as ws:
            snapshot = await ws.receive_json()
            assert snapshot["station_id"] == "ST-1"
        assert (await post(session, dash.url, PASSWORD, "http://evil.example")).status == 403
        assert ("disable", ()) not in ports[1].calls
        assert (await post(session, dash.url, PASSWORD, own)).status == 200
        assert ("disable", ()) in ports[1].calls


async def test_tls_dashboard(serve: Serve, tmp_path: Path) -> None:
    ca, cert, key = localhost_cert(tmp_path)
    dash = await serve(operator_password=PASSWORD, tls_cert_file=str(cert), tls_key_file=str(key))
    assert dash.url.startswith("https://")
    connector = aiohttp.TCPConnector(ssl=client_context(ca))
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(dash.url + "api/state") as resp:
            assert resp.status == 200
            assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
        assert (await post(session, dash.url, PASSWORD)).status == 200
    async with aiohttp.ClientSession() as plain:
        with pytest.raises(aiohttp.ClientError):
            async with plain.get(dash.url.replace("https", "http") + "api/state") as resp:
                await resp.read()


async def test_bad_settings_are_one_line_errors(serve: Serve, tmp_path: Path) -> None:
    with pytest.raises(DashboardConfigError, match="not both"):
        await serve(operator_password="a", operator_password_hash=hash_password("a"))
    with pytest.raises(DashboardConfigError, match="operator_password_hash"):
        await serve(operator_password_hash="scrypt$oops")
    with pytest.raises(DashboardConfigError, match="TLS certificate/key unusable"):
        await serve(tls_cert_file=str(tmp_path / "missing.pem"))
