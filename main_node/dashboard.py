"""The station's web dashboard (aiohttp), served by the main.

GET / is a single page; GET /api/state is the StationView snapshot; GET /ws pushes a fresh
snapshot whenever the view changes (coalesced, so a burst of meter values is one message).
Actions (enable/disable a gun, collect diagnostics) need the operator password; without one
configured the dashboard is read-only.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import Any

from aiohttp import WSMsgType, web

from chargeport.port import ChargePort, PortError
from chargeport.tasks import OwnedTasks
from main_node.view import StationView

__all__ = ["Dashboard"]

log = logging.getLogger(__name__)

PUSH_INTERVAL_S = 0.2  # coalesce changes into at most five pushes a second


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
    ) -> None:
        self._view = view
        self._ports = ports
        self._host = host
        self._port = port
        self._password = operator_password
        self._collect = collect_diagnostics
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self._changed = asyncio.Event()
        self._remove_listener: Callable[[], None] | None = None
        self._tasks = OwnedTasks(log)
        self.bound_port = 0

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.bound_port}/"

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/api/state", self._state)
        app.router.add_get("/ws", self._ws)
        app.router.add_post("/api/connectors/{connector}/{action}", self._connector_action)
        app.router.add_post("/api/diagnostics", self._diagnostics)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self._app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else self._port
        self._remove_listener = self._view.add_listener(self._changed.set)
        self._tasks.spawn(self._pusher(), "dashboard-push")
        log.info("dashboard at %s (%s)", self.url, "operator" if self._password else "read-only")

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

    def _snapshot(self) -> dict[str, Any]:
        snap = self._view.snapshot()
        snap["read_only"] = not self._password
        return snap

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self._snapshot())

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
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

    def _authorized(self, request: web.Request) -> web.Response | None:
        """None when the request may act; otherwise the error response to send."""
        if not self._password:
            return web.json_response(
                {"error": "read-only: no operator password is configured"}, status=403
            )
        given = request.headers.get("X-Operator-Password", "")
        if not hmac.compare_digest(given.encode(), self._password.encode()):
            return web.json_response({"error": "wrong operator password"}, status=401)
        return None

    async def _connector_action(self, request: web.Request) -> web.Response:
        denied = self._authorized(request)
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
        denied = self._authorized(request)
        if denied is not None:
            return denied
        if self._collect is None:
            return web.json_response({"error": "diagnostics are not available"}, status=503)
        name = await self._collect()
        return web.json_response({"ok": True, "file": name})
