"""An agent and its server together: what app.py, tests and benchmarks run for one port."""

from __future__ import annotations

import uuid
from pathlib import Path

from chargeport.board import BoardSystem
from chargeport.clock import Clock
from chargeport.pki import server_credentials
from chargeport.port import ChargePort
from satellite.agent import LinkAgent
from satellite.link_core import DEFAULT_LIVENESS_S
from satellite.server import LinkServer
from satellite.tx_journal import TxJournal

__all__ = ["AgentHost"]


class AgentHost:
    """Serve `port` as satellite `serial`; mTLS from `pki_dir`, or plain text when it is None."""

    def __init__(
        self,
        port: ChargePort,
        *,
        serial: str,
        pki_dir: str | Path | None,
        listen: str = "127.0.0.1:0",
        boot_id: str | None = None,
        firmware_version: str = "1.0.0",
        grace_period_s: float = 10.0,
        liveness_s: float = DEFAULT_LIVENESS_S,
        keepalive_s: float = 1.0,
        ring_capacity: int = 4096,
        board_system: BoardSystem | None = None,
        clock: Clock | None = None,
        journal: TxJournal | None = None,
    ) -> None:
        self.serial = serial
        self.boot_id = boot_id or uuid.uuid4().hex
        self.agent = LinkAgent(
            port,
            serial=serial,
            boot_id=self.boot_id,
            firmware_version=firmware_version,
            grace_period_s=grace_period_s,
            liveness_s=liveness_s,
            ring_capacity=ring_capacity,
            clock=clock,
            journal=journal,
        )
        creds = None if pki_dir is None else server_credentials(pki_dir, serial)
        self.server = LinkServer(
            self.agent,
            listen=listen,
            credentials=creds,
            board_system=board_system,
            keepalive_s=keepalive_s,
        )
        self.port = 0

    @property
    def address(self) -> tuple[str, int]:
        host = self.server.listen.rpartition(":")[0].strip("[]")
        return ("127.0.0.1" if host in ("0.0.0.0", "") else host, self.port)

    async def start(self) -> int:
        await self.agent.start()
        self.port = await self.server.start()
        return self.port

    async def stop(self, grace_s: float | None = 0.2) -> None:
        await self.server.stop(grace_s)
        await self.agent.stop()
