"""systemd's notify protocol (sd_notify(3)) in a few lines: READY, WATCHDOG, STOPPING, STATUS.

The service manager names a unix datagram socket in `$NOTIFY_SOCKET` (a leading '@' is the
abstract namespace); each notification is one datagram of `KEY=value` lines. With
`WatchdogSec=` set, `$WATCHDOG_USEC` asks for a `WATCHDOG=1` at least that often:
`keepalive` sends one from the event loop every half period, so a loop that hangs stops
them and systemd restarts the process (ARCHITECTURE.md: systemd is the last supervisor).
Without `$NOTIFY_SOCKET` every call is a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping

__all__ = ["SdNotifier", "watchdog_period"]

log = logging.getLogger(__name__)


def watchdog_period(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between keep-alives (half of WATCHDOG_USEC), or None when none is asked of us."""
    usec = environ.get("WATCHDOG_USEC", "")
    owner = environ.get("WATCHDOG_PID", "")
    if owner and owner != str(pid):
        return None  # the watchdog belongs to another process (sd_watchdog_enabled(3))
    try:
        period = int(usec) / 1e6
    except ValueError:
        return None
    return period / 2 if period > 0 else None


class SdNotifier:
    """Sends notifications to `$NOTIFY_SOCKET`; does nothing when there is none."""

    def __init__(self, address: str | None) -> None:
        self.address = address or None
        self._failed = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SdNotifier:
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        """Send `fields` ("READY=1", "STATUS=...") as one datagram; False when it could not."""
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        message = "\n".join(fields).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)
                sock.sendto(message, target)
        except OSError as exc:
            if not self._failed:  # once: a missing manager must not flood the log
                log.warning("systemd notify socket %s: %s", self.address, exc)
            self._failed = True
            return False
        self._failed = False
        return True

    async def keepalive(self, period_s: float) -> None:
        """WATCHDOG=1 every `period_s` from the event loop, until cancelled."""
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(period_s)
