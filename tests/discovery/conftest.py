"""Fixtures for discovery tests: advertiser processes, unique serials."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from discovery_kit import AdvertiserProc


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Serials unique to this test run: other engineers' tests advertise on 127.0.0.1 too."""
    token = uuid.uuid4().hex[:6].upper()
    return lambda name: f"T{token}-{name}"


@pytest.fixture
async def advertisers() -> AsyncIterator[Callable[..., AdvertiserProc]]:
    """Factory for advertiser children; every one is stopped and reaped afterwards."""
    made: list[AdvertiserProc] = []

    def make(
        serial: str, port: int, *extra: str, prefix: list[str] | None = None
    ) -> AdvertiserProc:
        proc = AdvertiserProc(serial, port, prefix=prefix or [], extra=list(extra))
        made.append(proc)
        return proc

    yield make
    await asyncio.gather(*(p.stop() for p in made))
