"""The seam between satellite addressing and the link client.

The main's link client asks a `Locator` where a satellite serial is; mDNS discovery
(`main_node.discovery`) and static `host:port` entries both implement it.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Address", "Locator", "StaticLocator"]

Address = tuple[str, int]


class Locator(Protocol):
    def current(self, serial: str) -> Address | None:
        """The best known address for `serial`, or None when it has not been seen."""
        ...

    async def wait_change(self, serial: str, old: Address | None) -> Address:
        """Return as soon as `serial`'s address is known and differs from `old`."""
        ...


class StaticLocator:
    """Fixed addresses from the config (the fallback when a board is not on mDNS)."""

    def __init__(self, addresses: dict[str, Address]) -> None:
        self._addresses = dict(addresses)

    def current(self, serial: str) -> Address | None:
        return self._addresses.get(serial)

    async def wait_change(self, serial: str, old: Address | None) -> Address:
        import asyncio

        addr = self._addresses.get(serial)
        if addr is not None and addr != old:
            return addr
        await asyncio.Event().wait()  # static addresses never change
        raise AssertionError("unreachable")
