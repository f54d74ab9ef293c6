"""The satellite process: board, evse runtime, board system, link agent, mDNS; until a signal."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.util
import logging
import signal
import uuid
from collections.abc import Callable
from typing import Any

from chargeport.clock import Clock, RealClock, ScaledClock
from chargeport.config import SatelliteConfig
from chargeport.errors import ChargeportError
from satellite.host import AgentHost

__all__ = ["run_satellite", "with_scenario"]

log = logging.getLogger(__name__)


def _have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


async def _board_system(config: SatelliteConfig, clock: Clock, stop: asyncio.Event) -> Any:
    """The LocalBoardSystem when that module is installed (its boot id is the link's)."""
    if not _have("satellite.board_system"):
        return None
    from satellite.board_system import LocalBoardSystem

    async def on_restart() -> None:
        stop.set()  # the supervisor (systemd) starts us again, into the active slot

    return LocalBoardSystem(
        config.board.serial,
        "satellite",
        config.board.state_dir,
        config.firmware.trusted_keys,
        config.firmware.target,
        version=config.board.firmware_version,
        clock=clock,
        on_restart=on_restart,
    )


def _runtime(config: SatelliteConfig, clock: Clock, firmware_version: str) -> Any:
    if config.port.hal != "sim":
        raise ChargeportError(f"port.hal = {config.port.hal!r}: only 'sim' is wired up here yet")
    if not _have("evse.runtime"):
        raise ChargeportError("evse.runtime is not installed: cannot run a charge port")
    from evse.runtime import EvseRuntime  # type: ignore[import-not-found, unused-ignore]
    from hal.sim import SimBoard

    sim = SimBoard(clock=clock, max_current_a=config.port.max_current_a, phases=config.port.phases)
    return EvseRuntime(
        sim.board,
        config.port,
        connector_id=1,
        serial=config.board.serial,
        firmware_version=firmware_version,
        clock=clock,
        start_enabled=False,  # the link enables the port on Ready
    )


async def run_satellite(
    config: SatelliteConfig,
    *,
    speed: float = 1.0,
    stop: asyncio.Event | None = None,
    on_listening: Callable[[int], None] | None = None,
) -> None:
    """Run until `stop` is set or SIGTERM/SIGINT arrives; everything is shut down in order."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    clock: Clock = RealClock() if speed == 1.0 else ScaledClock(speed)
    board_system = await _board_system(config, clock, stop)
    boot_id = uuid.uuid4().hex
    version = config.board.firmware_version
    if board_system is not None:
        info = await board_system.info()
        boot_id, version = info.boot_id, info.firmware_version
    runtime = _runtime(config, clock, version)
    await runtime.start()
    link = config.link
    host = AgentHost(
        runtime.port,
        serial=config.board.serial,
        pki_dir=None if link.insecure else link.pki_dir,
        listen=config.agent.listen,
        boot_id=boot_id,
        firmware_version=version,
        grace_period_s=link.grace_period_s,
        keepalive_s=link.keepalive_s,
        ring_capacity=link.event_ring,
        board_system=board_system,
    )
    advertiser: Any = None
    try:
        port = await host.start()
        if link.insecure:
            log.warning("link.insecure = true: the link is plain text and unauthenticated")
        if config.agent.advertise and link.mdns and _have("satellite.advertiser"):
            from satellite.advertiser import Advertiser

            advertiser = Advertiser(
                config.board.serial,
                port,
                boot_id=boot_id,
                firmware_version=version,
                role="satellite",
                interfaces=link.mdns_interfaces,
            )
            await advertiser.start()
        if on_listening is not None:
            on_listening(port)
        await stop.wait()
    finally:
        if advertiser is not None:
            await advertiser.stop()
        await host.stop()
        await runtime.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


def with_scenario(config: SatelliteConfig, scenario: str | None) -> SatelliteConfig:
    """The config with `port.scenario` replaced by a command-line scenario file."""
    if not scenario:
        return config
    return dataclasses.replace(config, port=dataclasses.replace(config.port, scenario=scenario))
