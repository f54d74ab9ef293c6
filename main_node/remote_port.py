"""RemotePort: a satellite's charge port, driven over the gRPC link, as a ChargePort.

The link underneath (dial, Hello, event replay, grace, re-sync, the command stream) is
`main_node.satellite_link.SatelliteLink`; this module is the ChargePort command surface on it.

Desired state: availability, the current limit and a reservation are recorded before they are
sent, even while the link is down (the call still raises PortUnavailable), and re-applied in
full on every link-up; a repeated command is sent again (the port applies it idempotently).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from chargeport.convert import (
    Authorize,
    CancelReservation,
    Disable,
    Enable,
    ForceUnlock,
    GetStatus,
    Pause,
    Reserve,
    Resume,
    SetLimit,
    StopTransaction,
    WithdrawAuthorization,
    status_from_proto,
)
from chargeport.port import PortEvent, PortInfo, PortStatus, StopReason
from main_node.satellite_link import LinkRefused, SatelliteLink

__all__ = ["LinkHealth", "LinkRefused", "RemotePort"]


@dataclass(frozen=True, slots=True)
class LinkHealth:
    """What the dashboard and OCPP show about one satellite link."""

    connector_id: int
    serial: str
    connected: bool
    boot_id: str
    firmware_version: str
    address: str
    last_error: str
    since: float  # clock time of the last up/down change
    meter_public_key: str = ""  # the board's OCMF metering key, from Hello ("" = not signing)


class RemotePort(SatelliteLink):
    """ChargePort over the link to satellite `serial`, shown as station connector `connector_id`."""

    @property
    def info(self) -> PortInfo:
        return self._info

    def events(self) -> AsyncIterator[PortEvent]:
        return self._fanout.subscribe()

    async def enable(self) -> None:
        self.core.desired.enabled = True
        await self._call(Enable())

    async def disable(self) -> None:
        self.core.desired.enabled = False
        await self._call(Disable())

    async def authorize(self, id_tag: str, reservation_id: int | None = None) -> None:
        await self._call(Authorize(id_tag, reservation_id))

    async def withdraw_authorization(self) -> None:
        await self._call(WithdrawAuthorization())

    async def pause(self) -> None:
        await self._call(Pause())

    async def resume(self) -> None:
        await self._call(Resume())

    async def stop_transaction(self, reason: StopReason) -> None:
        await self._call(StopTransaction(reason))

    async def set_limit(self, amps: float, phases: int, valid_for_s: float = 0.0) -> None:
        await self._call(SetLimit(amps, phases, valid_for_s))
        # Recorded once the satellite accepted it: a malformed limit is never re-applied.
        self.core.desired.limit = (amps, phases, valid_for_s, self._clock.time())

    async def force_unlock(self) -> None:
        await self._call(ForceUnlock())

    async def reserve(self, reservation_id: int, id_tag: str, expiry: float) -> None:
        await self._call(Reserve(reservation_id, id_tag, expiry))
        self.core.desired.reservation = (reservation_id, id_tag, expiry)

    async def cancel_reservation(self, reservation_id: int) -> None:
        r = self.core.desired.reservation
        if r is not None and r[0] == reservation_id:
            self.core.desired.reservation = None
        await self._call(CancelReservation(reservation_id))

    async def status(self) -> PortStatus:
        reply = await self._call(GetStatus())
        return status_from_proto(reply.status)

    def health(self) -> LinkHealth:
        return LinkHealth(
            connector_id=self._info.connector_id,
            serial=self.serial,
            connected=self.connected,
            boot_id=self.boot_id,
            firmware_version=self._info.firmware_version,
            address=self.address,
            last_error=self.last_error,
            since=self.since,
            meter_public_key=self.meter_public_key,
        )
