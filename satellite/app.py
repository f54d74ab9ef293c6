"""The satellite process: board, evse runtime, board system, link agent, mDNS; until a signal."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

from chargeport.clock import Clock, RealClock, ScaledClock
from chargeport.config import SatelliteConfig
from chargeport.sdnotify import SdNotifier, watchdog_period
from chargeport.tasks import OwnedTasks
from evse.ev_sim import SimulatedEv, Step, parse_scenario, run_scenario
from evse.runtime import EvseRuntime
from evse.signing import open_signing
from hal.factory import open_board
from satellite.advertiser import Advertiser
from satellite.board_system import RESTART_EXIT_CODE, LocalBoardSystem
from satellite.host import AgentHost
from satellite.tx_journal import TxJournal

__all__ = ["run_satellite", "with_scenario"]

log = logging.getLogger(__name__)

SCENARIO_WAIT_S = 10.0  # real seconds a simulated EV waits for the main before going on anyway


async def run_satellite(
    config: SatelliteConfig,
    *,
    speed: float = 1.0,
    stop: asyncio.Event | None = None,
    on_listening: Callable[[int], None] | None = None,
) -> int:
    """Run until `stop` is set or SIGTERM/SIGINT arrives; returns the process exit code
    (RESTART_EXIT_CODE when the board restarts itself, e.g. into a new firmware slot)."""
    stop = stop or asyncio.Event()
    exit_code = 0
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    clock: Clock = RealClock() if speed == 1.0 else ScaledClock(speed)

    async def on_restart() -> None:
        nonlocal exit_code
        exit_code = RESTART_EXIT_CODE  # the supervisor (systemd) starts us again
        stop.set()

    board_system = LocalBoardSystem(
        config.board.serial,
        "satellite",
        config.board.state_dir,
        config.firmware.trusted_keys,
        config.firmware.target,
        version=config.board.firmware_version,
        clock=clock,
        on_restart=on_restart,
    )
    info = await board_system.info()
    link = config.link
    async with contextlib.AsyncExitStack() as stack:
        handler = board_system.make_log_handler()
        logging.getLogger().addHandler(handler)
        stack.callback(handler.close)
        stack.callback(logging.getLogger().removeHandler, handler)
        board, sim = await stack.enter_async_context(open_board(config.port, clock))
        runtime = EvseRuntime(
            board,
            config.port,
            connector_id=1,
            serial=config.board.serial,
            firmware_version=info.firmware_version,
            clock=clock,
            start_enabled=False,  # the link enables the port on Ready
            # The register survives a restart: the journal's interrupted transaction ends on it.
            register_file=Path(config.board.state_dir) / "meter-register.json",
            signing=open_signing(
                config.port,
                config.board.state_dir,
                serial=config.board.serial,
                firmware_version=info.firmware_version,
            ),
        )
        await runtime.start()
        stack.push_async_callback(runtime.stop)
        host = AgentHost(
            runtime.port,
            serial=config.board.serial,
            pki_dir=None if link.insecure else link.pki_dir,
            listen=config.agent.listen,
            boot_id=info.boot_id,
            firmware_version=info.firmware_version,
            grace_period_s=link.grace_period_s,
            liveness_s=link.liveness_s,  # until a main's Hello says its own
            keepalive_s=link.keepalive_s,
            ring_capacity=link.event_ring,
            board_system=board_system,
            journal=TxJournal.in_state_dir(config.board.state_dir),
        )
        port = await host.start()
        stack.push_async_callback(host.stop)
        if link.insecure:
            log.warning("link.insecure = true: the link is plain text and unauthenticated")
        if config.agent.advertise and link.mdns:
            advertiser = Advertiser(
                config.board.serial,
                port,
                boot_id=info.boot_id,
                firmware_version=info.firmware_version,
                role="satellite",
                interfaces=link.mdns_interfaces,
            )
            await advertiser.start()
            stack.push_async_callback(advertiser.stop)
        if sim is not None and config.port.scenario:
            text = await asyncio.to_thread(Path(config.port.scenario).read_text)
            steps = parse_scenario(text)
            tasks = OwnedTasks(log)
            stack.push_async_callback(tasks.cancel_all)
            tasks.spawn(_scenario(steps, sim.ev, clock, host.agent.linked), "satellite-scenario")
        log.info(
            "satellite %s listening on %d, boot %s, firmware %s",
            config.board.serial,
            port,
            info.boot_id[:8],
            info.firmware_version,
        )
        if on_listening is not None:
            on_listening(port)
        # systemd (Type=notify): ready now, keep-alives from this loop, stopping at the end.
        notifier = SdNotifier.from_env()
        if (period := watchdog_period(os.environ, os.getpid())) is not None:
            watchdog = OwnedTasks(log)
            stack.push_async_callback(watchdog.cancel_all)
            watchdog.spawn(notifier.keepalive(period), "systemd-watchdog")
        notifier.notify("READY=1", f"STATUS=satellite {config.board.serial} on port {port}")
        await stop.wait()
        notifier.notify("STOPPING=1")
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(sig)
    return exit_code


async def _scenario(
    steps: list[Step], ev: SimulatedEv, clock: Clock, linked: asyncio.Event
) -> None:
    """Play the EV's scenario once the main drives the port (bounded wait)."""
    # Until the main's Ready the port is disabled and a swipe is ignored: the sim's driver
    # would otherwise wait for ever.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(SCENARIO_WAIT_S):
            await linked.wait()
    await run_scenario(steps, ev, clock)


def with_scenario(config: SatelliteConfig, scenario: str | None) -> SatelliteConfig:
    """The config with `port.scenario` replaced by a command-line scenario file."""
    if not scenario:
        return config
    return dataclasses.replace(config, port=dataclasses.replace(config.port, scenario=scenario))
