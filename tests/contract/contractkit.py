"""What the ChargePort contract tests hold: a port plus the hands that drive it."""

from __future__ import annotations

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
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def close(self) -> None:
        for close in reversed(self.closers):
            await close()
