"""The session's remote operations: TriggerMessage, Reset and the firmware / diagnostics
status notifications (OCPP 1.6 sections 5.14, 5.17, 6.15, 6.19), apart from the connection.

`SessionOps` is a mixin of `client.OcppSession`; the hooks it declares are the session's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ocpp.v16 import call

from chargeport.board import ResetKind
from chargeport.port import PortError, StopReason
from main_node.ocpp.station_state import StationState
from system_aggregator.api import StationSystem

__all__ = ["Offline", "SessionOps", "wait_event"]

log = logging.getLogger(__name__)


class Offline(Exception):
    """A live message could not be sent: no accepted connection to the CSMS."""


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait for `event` at most `seconds`; True when it was set.

    `asyncio.timeout`, not `asyncio.wait_for`: on Python 3.11 wait_for can swallow a
    cancellation that races with the inner wait, which hangs a TaskGroup on shutdown.
    """
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


class SessionOps(StationState):
    """Triggered messages, reset routing and the aggregator's status notifications."""

    system: StationSystem | None
    tx_ended: asyncio.Event  # set whenever a transaction's StopTransaction is journaled
    reset_stop_wait_s: float = 10.0  # how long a reset waits for the stops it asked for

    def _post(self, payload: Any) -> None:
        raise NotImplementedError  # the session queues live CALLs

    async def async_boot_again(self) -> None:
        raise NotImplementedError  # the session owns BootNotification

    def send_meter_values(self, cid: int, context: str) -> None:
        raise NotImplementedError  # the session builds MeterValues

    async def async_trigger(self, message: str, connector_id: int | None) -> None:
        """Send the message a TriggerMessage asked for (section 5.17)."""
        targets = [connector_id] if connector_id else sorted(self.ports)
        if message == "BootNotification":
            await self.async_boot_again()
        elif message == "Heartbeat":
            self._post(call.Heartbeat())
        elif message == "StatusNotification":
            for cid in [connector_id] if connector_id is not None else [0, *targets]:
                self.status_changed(cid)
        elif message == "MeterValues":
            for cid in targets:
                self.send_meter_values(cid, "Trigger")
        elif message == "FirmwareStatusNotification":
            self._post(call.FirmwareStatusNotification(status=self.firmware_status))
        elif message == "DiagnosticsStatusNotification":
            self._post(call.DiagnosticsStatusNotification(status=self.diagnostics_status))

    async def async_firmware_status(self, status: str) -> None:
        """The aggregator reports a FirmwareStatus: FirmwareStatusNotification (section 6.25)."""
        self.firmware_status = status
        self._post(call.FirmwareStatusNotification(status=status))

    async def async_diagnostics_status(self, status: str) -> None:
        """The aggregator reports a DiagnosticsStatus: DiagnosticsStatusNotification (6.19)."""
        self.diagnostics_status = status
        self._post(call.DiagnosticsStatusNotification(status=status))

    async def async_reset(self, kind: ResetKind) -> None:
        """Stop running transactions (section 5.14), then let the aggregator reset the boards.

        The boards only reset once every StopTransaction is journaled (or the wait ran out):
        a reset that beat the stop events would lose them.
        """
        reason = StopReason.HARD_RESET if kind is ResetKind.HARD else StopReason.SOFT_RESET
        running = sorted(self.active_tx)
        for cid in running:
            with contextlib.suppress(PortError):
                await self.ports[cid].stop_transaction(reason)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.reset_stop_wait_s
        while any(cid in self.active_tx for cid in running):
            self.tx_ended.clear()
            if not await wait_event(self.tx_ended, max(0.0, deadline - loop.time())):
                log.warning("reset: transactions still running on %s", sorted(self.active_tx))
                break
        if self.system is not None:
            await self.system.reset(kind)
