"""Fixtures: a real mosquitto on a free loopback port, and a probe client subscribed to '#'."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from mqtt_harness import Broker, Probe


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A running mosquitto; `broker.restart()` brings it back on the same port."""
    b = Broker(tmp_path)
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
async def probe(broker: Broker) -> AsyncIterator[Probe]:
    p = Probe(broker, asyncio.get_running_loop())
    p.client.loop_start()
    await p.connected()
    try:
        yield p
    finally:
        p.client.disconnect()
        await asyncio.to_thread(p.client.loop_stop)
