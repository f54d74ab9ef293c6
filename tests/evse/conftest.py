"""Fixtures for evse runtime tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from evse_rig import Rig, make_rig


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    r = await make_rig()
    sub = r.rt.port.events()

    async def collect() -> None:
        async for e in sub:
            r.events.append(e)

    task = asyncio.create_task(collect())
    await r.rt.start()
    await r.settle()
    yield r
    await r.rt.stop()
    await task
    r.sim.close()
