"""One precedence for a connector's availability, whoever asks (issue 11).

Precedence, highest first (OCPP 1.6 5.2 ChangeAvailability; the store is
`main_node.ocpp.availability.AvailabilityStore`, persisted):
  1. The CSMS's Inoperative (the connector's own or connector 0's). A local Enable (MQTT
     `cmd/enable`, the dashboard) does not override it: it is refused with a one-line reason,
     unless `station.local_enable_overrides_csms = true`.
  2. Otherwise the latest command wins. A local Disable always applies (it is the safe side).
What was applied last is the port's desired state: a RemotePort re-applies it on every Ready.

`LocalCommandPort` is the ChargePort the local surfaces get: every call goes to the port, an
Enable first passes `local_enable_refusal`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping

from chargeport.port import (
    ChargePort,
    CommandRefused,
    PortEvent,
    PortInfo,
    PortStatus,
    StopReason,
)

__all__ = ["LocalCommandPort", "guard_local_commands", "local_enable_refusal"]


def local_enable_refusal(connector: int, csms_effective: str, overrides: bool) -> str | None:
    """Why a local Enable may not apply now (None: it may)."""
    if csms_effective == "Inoperative" and not overrides:
        return (
            f"connector {connector} is Inoperative by the central system (ChangeAvailability); "
            "a local enable does not override it (station.local_enable_overrides_csms)"
        )
    return None


class LocalCommandPort:
    """`port` as the local surfaces (MQTT, dashboard) drive it: the precedence above applies."""

    def __init__(
        self,
        port: ChargePort,
        connector: int,
        csms_effective: Callable[[int], str],
        *,
        overrides: bool = False,
    ) -> None:
        self._port = port
        self._connector = connector
        self._csms_effective = csms_effective
        self._overrides = overrides

    @property
    def info(self) -> PortInfo:
        return self._port.info

    def events(self) -> AsyncIterator[PortEvent]:
        return self._port.events()

    async def status(self) -> PortStatus:
        return await self._port.status()

    async def enable(self) -> None:
        why = local_enable_refusal(
            self._connector, self._csms_effective(self._connector), self._overrides
        )
        if why is not None:
            raise CommandRefused(why)
        await self._port.enable()

    async def disable(self) -> None:
        await self._port.disable()

    async def authorize(self, id_tag: str, reservation_id: int | None = None) -> None:
        await self._port.authorize(id_tag, reservation_id)

    async def withdraw_authorization(self) -> None:
        await self._port.withdraw_authorization()

    async def pause(self) -> None:
        await self._port.pause()

    async def resume(self) -> None:
        await self._port.resume()

    async def stop_transaction(self, reason: StopReason) -> None:
        await self._port.stop_transaction(reason)

    async def set_limit(self, amps: float, phases: int, valid_for_s: float = 0.0) -> None:
        await self._port.set_limit(amps, phases, valid_for_s)

    async def force_unlock(self) -> None:
        await self._port.force_unlock()

    async def reserve(self, reservation_id: int, id_tag: str, expiry: float) -> None:
        await self._port.reserve(reservation_id, id_tag, expiry)

    async def cancel_reservation(self, reservation_id: int) -> None:
        await self._port.cancel_reservation(reservation_id)


def guard_local_commands(
    ports: Mapping[int, ChargePort],
    csms_effective: Callable[[int], str] | None,
    *,
    overrides: bool = False,
) -> dict[int, ChargePort]:
    """The ports for the local surfaces; unchanged when there is no central system."""
    if csms_effective is None:
        return dict(ports)
    return {
        c: LocalCommandPort(p, c, csms_effective, overrides=overrides) for c, p in ports.items()
    }
