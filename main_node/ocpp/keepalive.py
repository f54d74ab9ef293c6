"""WebSocket pings at the interval the WebSocketPingInterval key says (OCPP 1.6 key 9.1.33).

The websockets library fixes its ping interval when it connects; this loop reads the key
before every ping instead, so GetConfiguration reports what the client really does and a
ChangeConfiguration applies at once (the session sets `wake`). 0 turns pings off. A pong that
does not come within `pong_timeout_s` closes the connection (the session then reconnects).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection

__all__ = ["ping_loop"]

log = logging.getLogger(__name__)


async def ping_loop(
    ws: ClientConnection,
    interval_s: Callable[[], float],
    wake: asyncio.Event,
    pong_timeout_s: float,
    on_pong: Callable[[], None] | None = None,
) -> None:
    """Ping every `interval_s()` seconds until the connection closes."""
    while True:
        wake.clear()
        interval = interval_s()
        if interval <= 0:
            await wake.wait()  # pings off until the key changes
            continue
        try:
            async with asyncio.timeout(interval):
                await wake.wait()
            continue  # the interval changed: start over with the new one
        except TimeoutError:
            pass
        pong = await ws.ping()
        try:
            async with asyncio.timeout(pong_timeout_s):
                await pong
        except TimeoutError:
            log.warning("CSMS did not answer a websocket ping within %.1f s", pong_timeout_s)
            await ws.close(code=1011, reason="keepalive ping timeout")
            return
        if on_pong is not None:
            on_pong()
