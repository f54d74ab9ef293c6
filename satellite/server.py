"""Build the satellite's grpc.aio server: Link + Board services, health checking, reflection."""

from __future__ import annotations

import errno
import logging
import socket

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from chargeport.board import BoardSystem
from chargeport.config import parse_host_port
from chargeport.errors import ChargeportError
from chargeport.v1 import link_pb2 as pb
from chargeport.v1 import link_pb2_grpc as pb_grpc
from satellite.agent import LinkAgent
from satellite.board_service import BoardServicer

__all__ = ["LinkServer", "keepalive_options"]

log = logging.getLogger(__name__)

LINK_SERVICE = pb.DESCRIPTOR.services_by_name["Link"].full_name
BOARD_SERVICE = pb.DESCRIPTOR.services_by_name["Board"].full_name


def keepalive_options(keepalive_s: float) -> list[tuple[str, int]]:
    """HTTP/2 keepalive so a dead peer is noticed in about `keepalive_s` (both sides use it)."""
    ms = max(100, int(keepalive_s * 1000))
    return [
        ("grpc.keepalive_time_ms", max(50, ms // 2)),
        ("grpc.keepalive_timeout_ms", max(50, ms // 2)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        # The peer pings every keepalive_s/2; accept that instead of answering GOAWAY.
        ("grpc.http2.min_recv_ping_interval_without_data_ms", max(10, ms // 4)),
        ("grpc.http2.min_ping_interval_without_data_ms", max(10, ms // 4)),
    ]


def _why_unbindable(host: str, port: int) -> str:
    """gRPC says only "failed to bind": ask the OS the same question to name the cause."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"port {port} is in use (another satellite or program listens there); "
                    "stop it or choose another port"
                )
            if exc.errno == errno.EADDRNOTAVAIL:
                return f"{host} is not an address of this board; use one of its own or 0.0.0.0"
            return f"cannot bind: {exc.strerror}"
    return "cannot bind (gRPC refused the address)"


class LinkServer:
    """The agent's server; `start` binds (port 0 = any free port), `stop` drains and closes."""

    def __init__(
        self,
        agent: LinkAgent,
        *,
        listen: str,
        credentials: grpc.ServerCredentials | None,
        board_system: BoardSystem | None = None,
        keepalive_s: float = 1.0,
    ) -> None:
        self.agent = agent
        self.listen = listen
        self._credentials = credentials
        self._board_system = board_system
        self._keepalive_s = keepalive_s
        self.server: grpc.aio.Server | None = None
        self.health = health.aio.HealthServicer()
        self.port = 0

    async def start(self) -> int:
        """Bind and serve; returns the bound TCP port."""
        # Exclusive bind: with SO_REUSEPORT (gRPC's default) a second satellite on the same
        # port starts silently and the kernel splits the main's connections between the two.
        options = [*keepalive_options(self._keepalive_s), ("grpc.so_reuseport", 0)]
        server = grpc.aio.server(options=options)
        pb_grpc.add_LinkServicer_to_server(self.agent, server)  # type: ignore[no-untyped-call]
        services = [LINK_SERVICE]
        if self._board_system is not None:
            servicer = BoardServicer(self._board_system)
            pb_grpc.add_BoardServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
            services.append(BOARD_SERVICE)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        services.append(health_pb2.DESCRIPTOR.services_by_name["Health"].full_name)
        services.append(reflection.SERVICE_NAME)
        reflection.enable_server_reflection(services, server)
        try:
            host, port = parse_host_port(self.listen, allow_any_port=True)  # 0 = any free port
        except ValueError as exc:
            raise ChargeportError(f"agent.listen: {exc}") from None
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            if self._credentials is None:
                bound: int = server.add_insecure_port(address)
            else:
                bound = server.add_secure_port(address, self._credentials)
        except RuntimeError:
            bound = 0
        if bound == 0:
            raise ChargeportError(f"agent.listen {self.listen}: {_why_unbindable(host, port)}")
        await server.start()
        for name in services[:-2]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        self.server = server
        self.port = bound
        log.info("link agent %s listening on %s:%d", self.agent.serial, host, bound)
        return bound

    async def stop(self, grace_s: float | None = 0.5) -> None:
        if self.server is None:
            return
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)
        self.server = None
