"""A satellite binds its port exclusively: a second one on the same port fails with a reason."""

from __future__ import annotations

import pytest

from chargeport.errors import ChargeportError
from chargeport.fake_port import FakePort
from chargeport.port import PortInfo
from satellite.host import AgentHost

pytestmark = pytest.mark.integration


async def test_second_satellite_on_the_same_port_refuses_to_start() -> None:
    first = AgentHost(
        FakePort(PortInfo(1, "SAT-A", "1.0.0", 32.0, 3)), serial="SAT-A", pki_dir=None
    )
    port = await first.start()
    second = AgentHost(
        FakePort(PortInfo(1, "SAT-B", "1.0.0", 32.0, 3)),
        serial="SAT-B",
        pki_dir=None,
        listen=f"127.0.0.1:{port}",
    )
    try:
        with pytest.raises(ChargeportError, match=f"port {port} is in use"):
            await second.start()
    finally:
        await second.stop()
        await first.stop()
