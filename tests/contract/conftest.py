"""Port factories for the ChargePort contract suite: every factory yields a `Harness`.

fake           FakePort in process
remote-fake    RemotePort -> gRPC (mTLS, loopback) -> agent -> FakePort
local          LocalPort over the evse runtime and a simulated board
remote-local   RemotePort -> gRPC (mTLS, loopback) -> agent -> LocalPort
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from contractkit import Harness

from chargeport.config import PortConfig
from chargeport.fake_port import FakePort
from chargeport.pki import channel_credentials, init_pki
from chargeport.port import ChargePort, PortInfo, SessionState
from main_node.locator import StaticLocator
from main_node.remote_port import RemotePort
from satellite.host import AgentHost


@pytest.fixture(scope="session")
def contract_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("contract-pki")
    init_pki(d, "contract", ["SAT-C"])
    return d


Parts = tuple[
    ChargePort, Callable[[], None], Callable[[], None], Callable[[], Awaitable[float]], list[Any]
]


def _fake(enabled: bool) -> Parts:
    fake = FakePort(PortInfo(1, "SAT-C", "1.0.0", 32.0, 3), enabled=enabled)

    async def offered() -> float:
        status = await fake.status()
        if status.session_state is not SessionState.CHARGING or status.limits is None:
            return 0.0
        return status.limits.max_current_a

    return fake, fake.plug_in, fake.ev_ready, offered, []


async def _local(enabled: bool) -> Parts:
    from chargeport.clock import RealClock
    from evse.runtime import EvseRuntime
    from hal.sim import SimBoard

    sim = SimBoard(clock=RealClock(), sample_rate_hz=1000)
    rt = EvseRuntime(
        sim.board,
        PortConfig(sample_rate_hz=1000),
        connector_id=1,
        serial="SAT-C",
        firmware_version="1.0.0",
        start_enabled=enabled,
    )
    await rt.start()

    async def close() -> None:
        await rt.stop()
        sim.close()

    async def offered() -> float:
        return sim.ev.offered_a

    return rt.port, sim.ev.plug_in, lambda: sim.ev.draw(16.0), offered, [close]


async def _remote(inner: ChargePort, pki: Path) -> tuple[RemotePort, list[Any]]:
    host = AgentHost(inner, serial="SAT-C", pki_dir=pki, grace_period_s=60.0)
    await host.start()
    rp = RemotePort(
        "SAT-C",
        1,
        StaticLocator({"SAT-C": host.address}),
        station_id="contract",
        main_boot_id="main",
        credentials=channel_credentials(pki),
        handshake_timeout_s=2.0,
    )
    await rp.start()
    async with asyncio.timeout(5):
        await rp.wait_connected()
        while not (await rp.status()).enabled:  # Ready enables the port
            await asyncio.sleep(0.01)
    return rp, [host.stop, rp.stop]


FACTORIES = ["fake", "remote-fake", "local", "remote-local"]


@pytest.fixture(params=FACTORIES)
async def harness(request: pytest.FixtureRequest, contract_pki: Path) -> AsyncIterator[Harness]:
    kind: str = request.param
    remote = kind.startswith("remote-")
    if kind.endswith("fake"):
        port, plug, ready, offered, closers = _fake(enabled=not remote)
    else:
        port, plug, ready, offered, closers = await _local(enabled=not remote)
    if remote:
        port, more = await _remote(port, contract_pki)
        closers += more
    h = Harness(port, plug, ready, offered, closers)
    try:
        yield h
    finally:
        await h.close()
