"""The station's web dashboard (aiohttp), served by the main.

GET / is a single page; GET /api/state is the StationView snapshot (plus the site panel and
the progress rows); GET /ws pushes a fresh snapshot whenever something changes (coalesced, so a
burst of meter values is one message). The charts: a 1 Hz sampler fills a bounded ring
(main_node/history.py); GET /api/history returns it, so a reloaded page has its last hour, and
every pushed snapshot carries the newest sample. GET /api/log lists transactions and events
(main_node/records.py, folded from the ports' own events); the snapshot's `log_version` tells
the page when to fetch it again. Firmware and diagnostics progress per board comes from a
`ProgressTracker` (main_node/progress.py) when the app passes one.

Actions (enable/disable a gun, collect diagnostics) need an operator: POST /api/login with the
password sets a session cookie (HttpOnly, SameSite=Strict, Secure over TLS), POST /api/logout
ends it. A script may instead send X-Operator-Password on a POST (checked like a login). Without
a password configured the dashboard is read-only. uPlot (MIT, vendored from npm in static/) draws
the charts: no CDN, the station has no internet.

Security (issue 14; the pure parts are in main_node/dashboard_auth.py): optional TLS from
certificate paths; the password kept only as an scrypt hash and compared in constant time;
wrong passwords limited per client (then 429 with Retry-After); CSP and friends on every
response; a WebSocket or POST whose Origin is another site is refused (403).
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from importlib import resources
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from chargeport.port import ChargePort, MeterValue, PortError, PortEvent
from chargeport.security_log import DASHBOARD_LOGIN_FAILED, security_event
from chargeport.tasks import OwnedTasks
from main_node.dashboard_auth import (
    SESSION_COOKIE,
    LoginLimiter,
    SessionStore,
    check_hash,
    hash_password,
    same_origin,
    security_headers,
    verify_password,
)
from main_node.energy import EnergySnapshot
from main_node.errors import MainNodeError
from main_node.history import DEFAULT_CAPACITY, HistoryRing
from main_node.progress import ProgressTracker
from main_node.records import StationRecords
from main_node.view import StationView

__all__ = ["Dashboard", "DashboardConfigError"]

log = logging.getLogger(__name__)

PUSH_INTERVAL_S = 0.2  # coalesce changes into at most five pushes a second
SAMPLE_INTERVAL_S = 1.0  # one chart sample per gun per second
MAX_LOGIN_BODY = 4096
STATIC = {
    "dashboard.css": "text/css",
    "dashboard.js": "text/javascript",
    "uPlot.iife.min.js": "text/javascript",
    "uPlot.min.css": "text/css",
    "uPlot.LICENSE.txt": "text/plain",
}


class SiteSource(Protocol):
    """What the site panel reads: the energy manager's snapshot and its change listener."""

    def snapshot(self) -> EnergySnapshot: ...

    def add_listener(self, listener: Callable[[EnergySnapshot], None]) -> Callable[[], None]: ...


class DashboardConfigError(MainNodeError):
    """The dashboard's password hash or TLS files cannot be used."""


class Dashboard:
    """Serves the page and the JSON/WebSocket API for one station."""

    def __init__(
        self,
        view: StationView,
        ports: Mapping[int, ChargePort],
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        operator_password: str = "",
        collect_diagnostics: Callable[[], Awaitable[str]] | None = None,
        update_firmware: Callable[[str], Coroutine[Any, Any, None]] | None = None,
        operator_password_hash: str = "",
        tls_cert_file: str = "",
        tls_key_file: str = "",
        max_failures: int = 5,
        failure_window_s: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
        site: SiteSource | None = None,
        progress: ProgressTracker | None = None,
        history_capacity: int = DEFAULT_CAPACITY,
        sample_interval_s: float = SAMPLE_INTERVAL_S,
        wall: Callable[[], float] = time.time,
        session_ttl_s: float = 12 * 3600.0,
    ) -> None:
        self._view = view
        self._ports = ports
        self._host = host
        self._port = port
        if operator_password and operator_password_hash:
            raise DashboardConfigError(
                "dashboard: set operator_password_hash or operator_password, not both"
            )
        if operator_password_hash:
            try:
                check_hash(operator_password_hash)
            except ValueError as exc:
                raise DashboardConfigError(f"dashboard.{exc}") from None
        # Only the hash is kept: a plain password from the config is hashed right here.
        self._hash = operator_password_hash or (
            hash_password(operator_password) if operator_password else ""
        )
        self._tls = (tls_cert_file, tls_key_file) if tls_cert_file else None
        self._limiter = LoginLimiter(max_failures, failure_window_s)
        self._sessions = SessionStore(session_ttl_s)
        self._monotonic = monotonic
        self._wall = wall
        self._site = site
        self._progress = progress
        self.history = HistoryRing(view.guns, history_capacity)
        self.records = StationRecords()
        self._sample_interval_s = sample_interval_s
        self._static_cache: dict[str, str] = {}
        self._grid: dict[int, tuple[tuple[float, ...], float]] = {}  # voltages, frequency
        self._collect = collect_diagnostics
        self._update_firmware = update_firmware
        self._rollout: asyncio.Task[None] | None = None  # one firmware rollout at a time
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self._changed = asyncio.Event()
        self._remove_listeners: list[Callable[[], None]] = []
        self._tasks = OwnedTasks(log)
        self.bound_port = 0

    @property
    def url(self) -> str:
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{self._host}:{self.bound_port}/"

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self._tls is None:
            return None
        cert, key = self._tls
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(cert, key or None)
        except (OSError, ssl.SSLError) as exc:
            raise DashboardConfigError(f"dashboard: TLS certificate/key unusable: {exc}") from None
        return context

    async def _headers(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(security_headers(request.host, self._tls is not None))

    def _app(self) -> web.Application:
        app = web.Application()
        app.on_response_prepare.append(self._headers)
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/api/state", self._state)
        app.router.add_get("/api/history", self._history)
        app.router.add_get("/api/log", self._log)
        app.router.add_get("/api/session", self._session)
        app.router.add_post("/api/login", self._login)
        app.router.add_post("/api/logout", self._logout)
        app.router.add_get("/ws", self._ws)
        app.router.add_post("/api/connectors/{connector}/{action}", self._connector_action)
        app.router.add_post("/api/diagnostics", self._diagnostics)
        app.router.add_post("/api/firmware", self._firmware)
        return app

    async def start(self) -> None:
        context = self._ssl_context()
        self._runner = web.AppRunner(self._app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, ssl_context=context)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else self._port
        self._remove_listeners.append(self._view.add_listener(self._view_changed))
        if self._site is not None:
            self._remove_listeners.append(self._site.add_listener(lambda _: self._changed.set()))
        if self._progress is not None:
            self._remove_listeners.append(self._progress.add_listener(self._changed.set))
        self.records.ocpp_connection(self._view.ocpp_connected, self._wall())
        for connector, port in self._ports.items():
            self._tasks.spawn(self._follow(connector, port.events()), f"dashboard-log-{connector}")
        self._tasks.spawn(self._sampler(), "dashboard-sampler")
        self._tasks.spawn(self._pusher(), "dashboard-push")
        log.info("dashboard at %s (%s)", self.url, "operator" if self._hash else "read-only")

    async def stop(self) -> None:
        for remove in self._remove_listeners:
            remove()
        self._remove_listeners.clear()
        await self._tasks.cancel_all()
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # ---------------------------------------------------------------- feeds

    def _view_changed(self) -> None:
        self.records.ocpp_connection(self._view.ocpp_connected, self._wall())
        self._changed.set()

    async def _follow(self, connector: int, events: AsyncIterator[PortEvent]) -> None:
        async for event in events:
            if isinstance(event.body, MeterValue):  # the view keeps no voltage or frequency
                self._grid[connector] = (event.body.voltage_v, event.body.frequency_hz)
            before = self.records.version
            self.records.apply(connector, event)
            if self.records.version != before:
                self._changed.set()

    def sample(self, t: float) -> None:
        """Record every gun's current power, currents and register at `t` (the 1 Hz tick)."""
        for connector, gun in self._view.guns.items():
            self.history.record(connector, t, gun.power_w, gun.current_a, gun.energy_wh)
        if self._site is not None:
            site = self._site.snapshot()
            self.history.site.append(
                t, site.mains_a, site.available_a, site.site_limit_a, site.allocation
            )
        self._changed.set()

    async def _sampler(self) -> None:
        while True:
            self.sample(self._wall())
            await asyncio.sleep(self._sample_interval_s)

    # ---------------------------------------------------------------- handlers

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(text=self._read_static("dashboard.html"), content_type="text/html")

    def _read_static(self, name: str) -> str:
        text = self._static_cache.get(name)
        if text is None:
            text = resources.files("main_node").joinpath(f"static/{name}").read_text()
            self._static_cache[name] = text
        return text

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:  # a fixed list: no path ever comes from the request
            raise web.HTTPNotFound()
        return web.Response(text=self._read_static(name), content_type=STATIC[name])

    def _foreign(self, request: web.Request) -> bool:
        return not same_origin(request.headers.get("Origin"), request.host, self._tls is not None)

    def _snapshot(self, *, history: bool = True) -> dict[str, Any]:
        snap = self._view.snapshot()
        if not history:
            for gun in snap["guns"]:
                gun.pop("history", None)
        for gun in snap["guns"]:
            volts, hz = self._grid.get(gun["connector"], ((), 0.0))
            gun["voltage_v"] = [round(v, 1) for v in volts] if gun["link_up"] else []
            gun["frequency_hz"] = round(hz, 2) if gun["link_up"] else 0.0
        snap["read_only"] = not self._hash
        snap["site"] = self._site.snapshot().to_json() if self._site is not None else None
        snap["progress"] = self._progress.to_json() if self._progress is not None else None
        snap["sample"] = self.history.latest()
        snap["site_sample"] = self.history.site.latest() if self._site is not None else None
        snap["log_version"] = self.records.version
        return snap

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self._snapshot())

    async def _history(self, request: web.Request) -> web.Response:
        try:
            since = float(request.query.get("since", "0"))
        except ValueError:
            return web.json_response({"error": "since: expected unix seconds"}, status=400)
        site = self.history.site.series(since) if self._site is not None else None
        return web.json_response(
            {
                "interval_s": self._sample_interval_s,
                "guns": self.history.series(since),
                "site": site,
            }
        )

    async def _log(self, request: web.Request) -> web.Response:
        return web.json_response(self.records.to_json())

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        if self._foreign(request):  # cross-site WebSocket hijacking: another page's script
            raise web.HTTPForbidden(text="foreign Origin")
        ws = web.WebSocketResponse(heartbeat=10.0)
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            await ws.send_json(self._snapshot(history=False))
            async for msg in ws:  # the page sends nothing; this just waits for close
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            self._sockets.discard(ws)
        return ws

    async def _pusher(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            if self._sockets:
                snap = self._snapshot(history=False)
                for ws in list(self._sockets):
                    try:
                        await ws.send_json(snap)
                    except (ConnectionError, RuntimeError):
                        self._sockets.discard(ws)
            await asyncio.sleep(PUSH_INTERVAL_S)

    # ---------------------------------------------------------------- operator sessions

    def _is_operator(self, request: web.Request) -> bool:
        return self._sessions.valid(request.cookies.get(SESSION_COOKIE), self._monotonic())

    async def _session(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "read_only": not self._hash,
                "operator": bool(self._hash) and self._is_operator(request),
            }
        )

    async def _check_password(self, request: web.Request, given: str) -> web.Response | None:
        """None when `given` is right; else the 429/401 to send (wrong ones are counted)."""
        client = request.remote or "?"
        wait = self._limiter.retry_after(client, self._monotonic())
        if wait:
            return web.json_response(
                {"error": f"too many wrong passwords; retry in {math.ceil(wait)} s"},
                status=429,
                headers={"Retry-After": str(math.ceil(wait))},
            )
        # scrypt takes tens of ms on purpose: off the loop, so the pushes keep flowing.
        if not await asyncio.to_thread(verify_password, given, self._hash):
            self._limiter.failed(client, self._monotonic())
            security_event(DASHBOARD_LOGIN_FAILED, f"wrong operator password from {client}")
            return web.json_response({"error": "wrong operator password"}, status=401)
        return None

    async def _login(self, request: web.Request) -> web.Response:
        if not self._hash:
            return web.json_response(
                {"error": "read-only: no operator password is configured"}, status=403
            )
        if self._foreign(request):
            return web.json_response({"error": "foreign Origin"}, status=403)
        if (request.content_length or 0) > MAX_LOGIN_BODY:
            return web.json_response({"error": "request too large"}, status=413)
        try:
            body = await request.json()
        except ValueError:
            body = None
        given = body.get("password") if isinstance(body, dict) else None
        if not isinstance(given, str):
            return web.json_response({"error": 'expected JSON {"password": "..."}'}, status=400)
        denied = await self._check_password(request, given)
        if denied is not None:
            return denied
        token = self._sessions.create(self._monotonic())
        response = web.json_response({"ok": True, "operator": True})
        response.set_cookie(
            SESSION_COOKIE, token, httponly=True, samesite="Strict", secure=self._tls is not None,
            path="/", max_age=int(self._sessions.ttl_s),
        )  # fmt: skip
        return response

    async def _logout(self, request: web.Request) -> web.Response:
        if self._foreign(request):
            return web.json_response({"error": "foreign Origin"}, status=403)
        self._sessions.revoke(request.cookies.get(SESSION_COOKIE))
        response = web.json_response({"ok": True, "operator": False})
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    async def _authorized(self, request: web.Request) -> web.Response | None:
        """None when the request may act; otherwise the error response to send."""
        if not self._hash:
            return web.json_response(
                {"error": "read-only: no operator password is configured"}, status=403
            )
        if self._foreign(request):
            return web.json_response({"error": "foreign Origin"}, status=403)
        if self._is_operator(request):
            return None
        given = request.headers.get("X-Operator-Password")
        if given is None:
            return web.json_response({"error": "log in as operator first"}, status=401)
        return await self._check_password(request, given)

    async def _connector_action(self, request: web.Request) -> web.Response:
        denied = await self._authorized(request)
        if denied is not None:
            return denied
        action = request.match_info["action"]
        try:
            port = self._ports[int(request.match_info["connector"])]
        except (KeyError, ValueError):
            return web.json_response({"error": "unknown connector"}, status=404)
        if action not in ("enable", "disable"):
            return web.json_response({"error": f"unknown action {action!r}"}, status=400)
        try:
            await (port.enable() if action == "enable" else port.disable())
        except PortError as exc:
            return web.json_response({"error": str(exc) or type(exc).__name__}, status=409)
        return web.json_response({"ok": True})

    async def _firmware(self, request: web.Request) -> web.Response:
        """Start a firmware rollout from a location (as UpdateFirmware does); 202 at once, the
        progress follows on /ws (`progress.firmware`, `firmware_status`)."""
        denied = await self._authorized(request)
        if denied is not None:
            return denied
        if self._update_firmware is None:
            return web.json_response({"error": "firmware updates are not available"}, status=503)
        if self._rollout is not None and not self._rollout.done():
            return web.json_response({"error": "a firmware rollout is running"}, status=409)
        try:
            body = await request.json()
        except ValueError:
            body = None
        location = body.get("location") if isinstance(body, dict) else None
        if not isinstance(location, str) or not location:
            return web.json_response({"error": 'expected JSON {"location": "URL"}'}, status=400)
        self._rollout = self._tasks.spawn(self._update_firmware(location), "dashboard-rollout")
        return web.json_response({"ok": True, "location": location}, status=202)

    async def _diagnostics(self, request: web.Request) -> web.Response:
        denied = await self._authorized(request)
        if denied is not None:
            return denied
        if self._collect is None:
            return web.json_response({"error": "diagnostics are not available"}, status=503)
        name = await self._collect()
        return web.json_response({"ok": True, "file": name})
