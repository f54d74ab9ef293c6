"""What the ChargePort contract tests hold: a port plus the hands that drive it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from chargeport.port import ChargePort

__all__ = ["Harness"]


@dataclass
class Harness:
    """A port under test plus the hands of the driver and the car."""

    port: ChargePort
    plug_in: Callable[[], None]
    ev_ready: Callable[[], None]
    # The current (A) the car is offered now: the PWM duty it reads (IEC 61851-1 A.8), or for
    # the in-memory fake the offer it keeps.
    offered_a: Callable[[], Awaitable[float]]
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def wait_offer(self, amps: float) -> None:
        """Until the car is offered `amps` (the offer follows a command asynchronously)."""
        async with asyncio.timeout(5.0):
            while abs(await self.offered_a() - amps) > 0.01:
                await asyncio.sleep(0.005)

    async def close(self) -> None:
        for close in reversed(self.closers):
            await close()
