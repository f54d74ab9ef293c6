"""The station: connector number -> ChargePort, the local port plus one RemotePort per satellite.

The station owns the RemotePorts' connection managers; each recovers on its own, so one
satellite's restart never touches another port.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import grpc

from chargeport.clock import Clock
from chargeport.config import MainConfig
from chargeport.pki import channel_credentials
from chargeport.port import ChargePort
from main_node.locator import Locator
from main_node.remote_port import LinkHealth, RemotePort

__all__ = ["Station"]


class Station:
    """`ports[connector]` for every configured connector; `start`/`stop` run the links."""

    def __init__(
        self,
        config: MainConfig,
        locator: Locator,
        *,
        local_port: ChargePort | None = None,
        main_boot_id: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        clock: Clock | None = None,
        retry_max_s: float = 1.0,
    ) -> None:
        self.config = config
        self.main_boot_id = main_boot_id or uuid.uuid4().hex
        link = config.link
        if credentials is None and not link.insecure:
            credentials = channel_credentials(link.pki_dir)
        self.remotes: dict[int, RemotePort] = {
            sat.connector: RemotePort(
                sat.serial,
                sat.connector,
                locator,
                station_id=config.station.id,
                main_boot_id=self.main_boot_id,
                credentials=None if link.insecure else credentials,
                keepalive_s=link.keepalive_s,
                handshake_timeout_s=link.handshake_timeout_s,
                command_timeout_s=link.handshake_timeout_s,
                retry_max_s=retry_max_s,
                grace_period_s=link.grace_period_s,  # until Hello tells the satellite's own
                liveness_s=link.liveness_s,
                max_current_a=config.port.max_current_a,
                phases=config.port.phases,
                connector_type=config.port.connector_type,
                clock=clock,
                pki_dir=None if link.insecure else link.pki_dir,
                hold_stop_s=link.lost_stop_hold_s,
            )
            for sat in config.satellites
        }
        ports: dict[int, ChargePort] = {}
        if local_port is not None:
            ports[config.station.local_connector] = local_port
        ports.update(self.remotes)
        self.ports: dict[int, ChargePort] = dict(sorted(ports.items()))

    async def start(self) -> None:
        """Start every satellite link (they come up in the background)."""
        for remote in self.remotes.values():
            await remote.start()

    async def stop(self) -> None:
        for remote in self.remotes.values():
            await remote.stop()

    def link_health(self) -> Mapping[int, LinkHealth]:
        """Per remote connector: serial, connected, boot id, firmware version, last error."""
        return {connector: remote.health() for connector, remote in self.remotes.items()}
