"""The station's web dashboard (aiohttp), served by the main.

GET / is a single page; GET /api/state is the StationView snapshot; GET /ws pushes a fresh
snapshot whenever the view changes (coalesced, so a burst of meter values is one message).
Actions (enable/disable a gun, collect diagnostics) need the operator password; without one
configured the dashboard is read-only.

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
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import Any

from aiohttp import WSMsgType, web

from chargeport.errors import ChargeportError
from chargeport.port import ChargePort, PortError
from chargeport.security_log import DASHBOARD_LOGIN_FAILED, security_event
from chargeport.tasks import OwnedTasks
from main_node.dashboard_auth import (
    LoginLimiter,
    check_hash,
    hash_password,
    same_origin,
    security_headers,
    verify_password,
)
from main_node.view import StationView

__all__ = ["Dashboard", "DashboardConfigError"]

log = logging.getLogger(__name__)

PUSH_INTERVAL_S = 0.2  # coalesce changes into at most five pushes a second
STATIC = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}


class DashboardConfigError(ChargeportError):
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
        operator_password_hash: str = "",
        tls_cert_file: str = "",
        tls_key_file: str = "",
        max_failures: int = 5,
        failure_window_s: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
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
        self._monotonic = monotonic
        self._collect = collect_diagnostics
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self._changed = asyncio.Event()
        self._remove_listener: Callable[[], None] | None = None
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
        app.router.add_get("/ws", self._ws)
        app.router.add_post("/api/connectors/{connector}/{action}", self._connector_action)
        app.router.add_post("/api/diagnostics", self._diagnostics)
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
        self._remove_listener = self._view.add_listener(self._changed.set)
        self._tasks.spawn(self._pusher(), "dashboard-push")
        log.info("dashboard at %s (%s)", self.url, "operator" if self._hash else "read-only")

    async def stop(self) -> None:
        if self._remove_listener is not None:
            self._remove_listener()
        await self._tasks.cancel_all()
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # ---------------------------------------------------------------- handlers

    async def _index(self, request: web.Request) -> web.Response:
        page = resources.files("main_node").joinpath("static/dashboard.html").read_text()
        return web.Response(text=page, content_type="text/html")

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:  # a fixed list: no path ever comes from the request
            raise web.HTTPNotFound()
        text = resources.files("main_node").joinpath(f"static/{name}").read_text()
        return web.Response(text=text, content_type=STATIC[name])

    def _foreign(self, request: web.Request) -> bool:
        return not same_origin(request.headers.get("Origin"), request.host, self._tls is not None)

    def _snapshot(self) -> dict[str, Any]:
        snap = self._view.snapshot()
        snap["read_only"] = not self._hash
        return snap

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self._snapshot())

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        if self._foreign(request):  # cross-site WebSocket hijacking: another page's script
            raise web.HTTPForbidden(text="foreign Origin")
        ws = web.WebSocketResponse(heartbeat=10.0)
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            await ws.send_json(self._snapshot())
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
                snap = self._snapshot()
                for ws in list(self._sockets):
                    try:
                        await ws.send_json(snap)
                    except (ConnectionError, RuntimeError):
                        self._sockets.discard(ws)
            await asyncio.sleep(PUSH_INTERVAL_S)

    async def _authorized(self, request: web.Request) -> web.Response | None:
        """None when the request may act; otherwise the error response to send."""
        if not self._hash:
            return web.json_response(
                {"error": "read-only: no operator password is configured"}, status=403
            )
        if self._foreign(request):
            return web.json_response({"error": "foreign Origin"}, status=403)
        client = request.remote or "?"
        wait = self._limiter.retry_after(client, self._monotonic())
        if wait:
            return web.json_response(
                {"error": f"too many wrong passwords; retry in {math.ceil(wait)} s"},
                status=429,
                headers={"Retry-After": str(math.ceil(wait))},
            )
        given = request.headers.get("X-Operator-Password", "")
        # scrypt takes tens of ms on purpose: off the loop, so the pushes keep flowing.
        if not await asyncio.to_thread(verify_password, given, self._hash):
            self._limiter.failed(client, self._monotonic())
            security_event(DASHBOARD_LOGIN_FAILED, f"wrong operator password from {client}")
            return web.json_response({"error": "wrong operator password"}, status=401)
        return None

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

    async def _diagnostics(self, request: web.Request) -> web.Response:
        denied = await self._authorized(request)
        if denied is not None:
            return denied
        if self._collect is None:
            return web.json_response({"error": "diagnostics are not available"}, status=503)
        name = await self._collect()
        return web.json_response({"ok": True, "file": name})
