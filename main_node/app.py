"""The main board's process: its own port, the satellites, OCPP, energy, MQTT, dashboard.

Start-up order follows what depends on what (hardware, ports, station, then the services that
use the ports); shutdown is the reverse, through one AsyncExitStack, so a failure half-way
through start-up still closes everything that was opened.

Crash-only: every background task of the main is supervised (restarted with backoff) or, when
it cannot recover, ends the process with EXIT_FAILURE so that systemd starts it again; the
process-wide failure hook makes that true of the owned tasks of every component too. systemd
hears READY=1 once the station is up, WATCHDOG=1 from the event loop, STOPPING=1 at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from chargeport.board import ResetKind
from chargeport.clock import Clock, RealClock, ScaledClock
from chargeport.config import MainConfig
from chargeport.pki import channel_credentials
from chargeport.port import ChargePort, LinkChanged, PortError
from chargeport.sdnotify import SdNotifier, watchdog_period
from chargeport.tasks import OwnedTasks, RestartPolicy, set_failure_hook
from evse.ev_sim import SimulatedEv, Step, parse_scenario, run_scenario
from evse.runtime import EvseRuntime
from evse.signing import open_signing
from hal.factory import open_board
from main_node.dashboard import Dashboard
from main_node.discovery import DiscoveryReport, MdnsLocator, locator_from_config
from main_node.energy import EnergyManager, EnergySnapshot
from main_node.local_availability import guard_local_commands
from main_node.located_board import LocatedBoardSystem
from main_node.progress import ProgressTracker, TrackedBoard
from main_node.station import Station
from main_node.view import StationView
from satellite.board_system import RESTART_EXIT_CODE, LocalBoardSystem
from system_aggregator.aggregator import SystemAggregator
from system_aggregator.api import StatusCallback

__all__ = ["MainApp", "ocpp16_firmware_status", "run_main"]

log = logging.getLogger(__name__)

SCENARIO_WAIT_S = 10.0  # real seconds a simulated EV waits for the CSMS before going on anyway
REGISTER_FILE = "meter-register.json"  # the local port's energy register, in the state dir
# A component that cannot recover: the process ends so that its supervisor (systemd) restarts it.
EXIT_FAILURE = os.EX_SOFTWARE
# The OCPP session restarts after a failure it could not absorb itself; three in ten minutes
# and the process ends instead (a restart of everything is then the better bet).
OCPP_POLICY = RestartPolicy(initial_s=1.0, max_s=30.0, budget=3, window_s=600.0)


async def _feed_view(view: StationView, connector: int, port: ChargePort) -> None:
    events = port.events()  # subscribed from here on, so the snapshot below misses nothing
    try:
        view.seed(connector, await port.status())
    except PortError as exc:  # a satellite not linked yet: its LinkChanged will tell
        log.debug("no snapshot of connector %d yet: %s", connector, exc)
    async for event in events:
        view.apply(connector, event)
        body = event.body
        if isinstance(body, LinkChanged) and body.connected and not view.seeded(connector):
            # A satellite that was not linked at start: an idle port's snapshot publishes no
            # session event, so ask for its state once it answers.
            try:
                view.seed(connector, await port.status())
            except PortError as exc:
                log.debug("no snapshot of connector %d yet: %s", connector, exc)


# OCPP 1.6 core FirmwareStatus has no InvalidSignature (only SignedFirmwareStatusNotification of
# the security whitepaper has it, for SignedUpdateFirmware): a plain UpdateFirmware whose bundle
# is refused for its signature downloaded fine but cannot be installed.
_FIRMWARE_STATUS_16 = {"InvalidSignature": "InstallationFailed"}


def ocpp16_firmware_status(status: str) -> str:
    """The OCPP 1.6 FirmwareStatusNotification value for an aggregator firmware status."""
    return _FIRMWARE_STATUS_16.get(status, status)


async def _show_discovery(locator: MdnsLocator, view: StationView) -> None:
    """Keep the view's list of discovery problems (duplicates, missing, unconfigured) current."""
    while True:
        shown = view.discovery_problems

        def changed(report: DiscoveryReport, shown: list[str] = shown) -> bool:
            return report.problems() != shown

        view.set_discovery_problems((await locator.wait_report(changed)).problems())


class _ShownSystem:
    """The aggregator as OCPP sees it, with every status it reports also on the dashboard."""

    def __init__(self, system: SystemAggregator, view: StationView) -> None:
        self._system = system
        self._view = view

    async def update_firmware(
        self,
        location: str,
        retrieve_date: float,
        retries: int,
        retry_interval_s: float,
        on_status: StatusCallback,
    ) -> None:
        async def shown(status: str) -> None:
            self._view.set_status(firmware=status)  # the dashboard shows the precise reason
            await on_status(ocpp16_firmware_status(status))

        await self._system.update_firmware(
            location, retrieve_date, retries, retry_interval_s, shown
        )

    async def get_diagnostics(
        self,
        location: str,
        start: float | None,
        stop: float | None,
        retries: int,
        retry_interval_s: float,
        on_status: StatusCallback,
    ) -> str:
        async def shown(status: str) -> None:
            self._view.set_status(diagnostics=status)
            await on_status(status)

        return await self._system.get_diagnostics(
            location, start, stop, retries, retry_interval_s, shown
        )

    async def reset(self, kind: ResetKind) -> None:
        await self._system.reset(kind)

    async def set_time(self, unix_time: float) -> dict[str, float]:
        return await self._system.set_time(unix_time)


class MainApp:
    """Everything the main board runs; `run()` until `stop` is set."""

    def __init__(self, config: MainConfig, *, speed: float = 1.0) -> None:
        self.config = config
        self.clock: Clock = RealClock() if speed == 1.0 else ScaledClock(speed)
        self.boot_id = uuid.uuid4().hex
        self.state_dir = Path(config.station.state_dir)
        self.exit_code = 0
        self.stop = asyncio.Event()
        self.station: Station | None = None
        self.view: StationView | None = None
        self.dashboard: Dashboard | None = None
        self.ocpp: Any = None
        self.failure: str | None = None  # what ended the process, when something did
        self.notifier = SdNotifier.from_env()
        self._tasks = OwnedTasks(log, on_failure=self._task_failed)

    def _task_failed(self, name: str, exc: BaseException) -> None:
        """An owned task died for good: end the process, non-zero, for systemd to restart it."""
        if self.stop.is_set():
            return  # already on the way out: a failure while stopping changes nothing
        log.critical("%s cannot recover (%s): exiting with %d", name, exc, EXIT_FAILURE)
        self.failure = f"{name}: {exc}"
        self.exit_code = EXIT_FAILURE
        self.stop.set()

    async def _start_mains_meter(
        self, stack: contextlib.AsyncExitStack, energy: EnergyManager
    ) -> None:
        """Poll the Modbus meter at the grid connection into the energy manager."""
        from hal.modbus_meter import ModbusMeter
        from hal.register_map import load_map
        from main_node.mains_meter import MainsMeterPoller

        e = self.config.energy
        meter = ModbusMeter(
            e.mains_meter_device, e.mains_meter_unit, register_map=load_map(e.mains_meter_model)
        )
        stack.push_async_callback(meter.async_close)
        poller = MainsMeterPoller(
            meter,
            energy,
            clock=self.clock,
            interval_s=e.mains_meter_interval_s,
            grid_power=e.pv_surplus,
            where=f"mains meter on {e.mains_meter_device}",
            connect=meter.async_open,
        )
        self._tasks.spawn(poller.run(), "mains-meter")

    async def _on_restart(self) -> None:
        """The local board restarts (reset or firmware activation): exit for the supervisor."""
        self.exit_code = RESTART_EXIT_CODE
        self.stop.set()

    @contextlib.asynccontextmanager
    async def _services(self) -> AsyncIterator[None]:
        config = self.config
        self.state_dir.mkdir(parents=True, exist_ok=True)
        async with contextlib.AsyncExitStack() as stack:
            board_system = LocalBoardSystem(
                config.station.serial,
                "main",
                self.state_dir,
                config.firmware.trusted_keys,
                config.firmware.target,
                version=config.station.firmware_version,
                clock=self.clock,
                on_restart=self._on_restart,
            )
            handler = board_system.make_log_handler()
            logging.getLogger().addHandler(handler)
            stack.callback(logging.getLogger().removeHandler, handler)
            stack.callback(handler.close)
            info = await board_system.info()
            self.boot_id = info.boot_id
            log.info(
                "main %s boot %s firmware %s (%s)",
                info.serial,
                info.boot_id[:8],
                info.firmware_version,
                info.boot_reason,
            )

            board, sim = await stack.enter_async_context(open_board(config.port, self.clock))
            runtime = EvseRuntime(
                board,
                config.port,
                connector_id=config.station.local_connector,
                serial=config.station.serial,
                firmware_version=info.firmware_version,
                clock=self.clock,
                signing=open_signing(
                    config.port,
                    self.state_dir,
                    serial=config.station.serial,
                    firmware_version=info.firmware_version,
                ),
                # The board's register survives a restart (kill -9 included): the PowerLoss
                # StopTransaction of a lost transaction carries it (issue 12).
                register_file=self.state_dir / REGISTER_FILE,
            )
            await runtime.start()
            stack.push_async_callback(runtime.stop)

            locator = locator_from_config(config)
            if isinstance(locator, MdnsLocator):
                await locator.start()
                stack.push_async_callback(locator.stop)
            credentials = None if config.link.insecure else channel_credentials(config.link.pki_dir)
            station = Station(
                config,
                locator,
                local_port=runtime.port,
                main_boot_id=self.boot_id,
                credentials=credentials,
                clock=self.clock,
            )
            self.station = station
            await station.start()
            stack.push_async_callback(station.stop)

            view = StationView(config.station.id, [p.info for p in station.ports.values()])
            self.view = view
            view.guns[config.station.local_connector].boot_id = self.boot_id
            if isinstance(locator, MdnsLocator):
                self._tasks.spawn_supervised(
                    functools.partial(_show_discovery, locator, view), "discovery-status"
                )
            for connector, port in station.ports.items():
                self._tasks.spawn_supervised(
                    functools.partial(_feed_view, view, connector, port), f"view-{connector}"
                )

            satellites = [
                LocatedBoardSystem(sat.serial, locator, credentials) for sat in config.satellites
            ]
            for sat_board in satellites:
                stack.push_async_callback(sat_board.aclose)
            # Each board reports its own firmware/diagnostics bytes to the dashboard (issue 19).
            progress = ProgressTracker()
            aggregator = SystemAggregator(
                TrackedBoard(board_system, config.station.serial, progress, self.clock.monotonic),
                [TrackedBoard(s, s.serial, progress, self.clock.monotonic) for s in satellites],
                trusted_keys=config.firmware.trusted_keys,
                target=config.firmware.target,
                work_dir=self.state_dir / "aggregator",
                station_id=config.station.id,
                clock=self.clock,
            )
            stack.push_async_callback(aggregator.aclose)

            energy = EnergyManager(station.ports, config.energy, self.clock)
            await energy.start()
            stack.push_async_callback(energy.stop)
            if config.energy.mains_meter_device:
                await self._start_mains_meter(stack, energy)

            def on_energy(snapshot: EnergySnapshot) -> None:
                view.set_allocation(energy.allocation())

            stack.callback(energy.add_listener(on_energy))

            # OCPP BootNotification reports the running slot's version, not the configured one.
            await self._start_ocpp(stack, station, aggregator, energy, view, info.firmware_version)
            # MQTT and the dashboard drive the ports under one availability precedence.
            local_ports = guard_local_commands(
                station.ports,
                None if self.ocpp is None else self.ocpp.availability.effective,
                overrides=config.station.local_enable_overrides_csms,
            )
            if config.mqtt.host:
                from main_node.mqtt_api import MqttApi

                mqtt = MqttApi.from_config(
                    config.mqtt,
                    config.station.id,
                    local_ports,
                    energy,
                    min_current_a=config.energy.min_current_a,
                    site_limit_a=config.energy.site_limit_a,
                )
                await mqtt.start()
                stack.push_async_callback(mqtt.stop)

            if config.dashboard.enabled:
                diag_dir = self.state_dir / "diagnostics"

                async def collect() -> str:
                    diag_dir.mkdir(parents=True, exist_ok=True)
                    stamp = int(self.clock.time())
                    out = diag_dir / f"{config.station.id}-{stamp}.tar.gz"
                    await aggregator.collect_diagnostics(out, None, None)
                    return str(out)

                async def rollout(location: str) -> None:
                    # An operator's rollout from the dashboard or `chargeport rollout`: the
                    # same path as OCPP UpdateFirmware, its statuses shown, not sent to a CSMS.
                    async def shown(status: str) -> None:
                        view.set_status(firmware=status)

                    await aggregator.update_firmware(location, self.clock.time(), 1, 0.0, shown)

                self.dashboard = Dashboard(
                    view,
                    local_ports,
                    host=config.dashboard.host,
                    port=config.dashboard.port,
                    operator_password=config.dashboard.operator_password,
                    collect_diagnostics=collect,
                    update_firmware=rollout,
                    operator_password_hash=config.dashboard.operator_password_hash,
                    tls_cert_file=config.dashboard.tls_cert_file,
                    tls_key_file=config.dashboard.tls_key_file,
                    site=energy,
                    progress=progress,
                )
                await self.dashboard.start()
                stack.push_async_callback(self.dashboard.stop)
            stack.push_async_callback(self._tasks.cancel_all)
            if sim is not None and config.port.scenario:
                # The simulated EV arrives once everything that listens to the port is
                # listening: a swipe before OCPP subscribed would go unanswered.
                text = await asyncio.to_thread(Path(config.port.scenario).read_text)
                steps = parse_scenario(text)
                self._tasks.spawn(self._scenario(steps, sim.ev), "local-scenario")
            yield

    async def _scenario(self, steps: list[Step], ev: SimulatedEv) -> None:
        """Play the local EV's scenario once the CSMS can answer its driver (bounded wait)."""
        # A swipe before the first BootNotification is accepted is decided offline, where an
        # unknown tag is refused (OCPP 1.6 3.5, AllowOfflineTxForUnknownId).
        if self.ocpp is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SCENARIO_WAIT_S):
                    await self.ocpp.connected.wait()
        await run_scenario(steps, ev, self.clock)

    async def _start_ocpp(
        self,
        stack: contextlib.AsyncExitStack,
        station: Station,
        aggregator: SystemAggregator,
        energy: EnergyManager,
        view: StationView,
        firmware_version: str,
    ) -> None:
        config = self.config
        if not config.ocpp.csms_url:
            log.warning("ocpp.csms_url is empty: running without a central system")
            return
        from main_node.ocpp.client import OcppSession, SessionOptions
        from main_node.ocpp.db import open_db

        conn = open_db(self.state_dir / "ocpp.sqlite")
        stack.callback(conn.close)

        system = _ShownSystem(aggregator, view)
        if config.ocpp.version == "2.0.1":  # issue 17: the 2.0.1 edge, same ports and stores
            from main_node.ocpp201.wiring import session_from_config

            session201 = session_from_config(
                config,
                station.ports,
                conn,
                system=system,
                limit_sink=energy.set_profile_limit,
                clock=self.clock,
                on_connection=view.set_ocpp_connected,
                firmware_version=firmware_version,
            )
            self.ocpp = session201

            async def firmware_status201(status: str) -> None:
                view.set_status(firmware=status)  # a rollout resumed at start, as below
                await session201.connected.wait()
                await session201.async_firmware_status(status)

            self._tasks.spawn_supervised(session201.run, "ocpp", OCPP_POLICY)
            self._tasks.spawn_supervised(
                functools.partial(aggregator.resume_pending_firmware, firmware_status201),
                "firmware-resume",
            )
            return

        async def firmware_status(status: str) -> None:
            # The result of a rollout resumed after a restart: statuses posted before the
            # session is connected would be dropped, and the CSMS must see this one.
            view.set_status(firmware=status)
            await session.connected.wait()
            await session.async_firmware_status(ocpp16_firmware_status(status))

        session = OcppSession(
            SessionOptions(
                url=config.ocpp.csms_url,
                station_id=config.station.id,
                vendor=config.ocpp.vendor,
                model=config.ocpp.model,
                serial=config.station.serial,
                firmware_version=firmware_version,
                basic_auth_password=config.ocpp.basic_auth_password,
                ca_file=config.ocpp.ca_file,
                backoff_max_s=config.ocpp.reconnect_max_backoff_s,
                heartbeat_interval_s=config.ocpp.heartbeat_interval_s,
                meter_value_sample_interval_s=config.ocpp.meter_value_sample_interval_s,
                boot_window_s=config.station.boot_window_s,
            ),
            station.ports,
            conn,
            system=system,
            limit_sink=energy.set_profile_limit,
            clock=self.clock,
            on_connection=view.set_ocpp_connected,
            on_storage_fault=view.set_storage_fault,  # the station status shows it (issue 12)
        )
        self.ocpp = session
        self._tasks.spawn_supervised(session.run, "ocpp", OCPP_POLICY)
        self._tasks.spawn_supervised(
            functools.partial(aggregator.resume_pending_firmware, firmware_status),
            "firmware-resume",
        )

    async def run(self, on_ready: Callable[[MainApp], None] | None = None) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop.set)
        previous_hook = set_failure_hook(self._task_failed)
        try:
            async with self._services():
                self._tell_systemd_ready()
                if on_ready is not None:
                    on_ready(self)
                await self.stop.wait()
                self.notifier.notify("STOPPING=1", f"STATUS=stopping ({self.failure or 'asked'})")
        finally:
            set_failure_hook(previous_hook)
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
        return self.exit_code

    def _tell_systemd_ready(self) -> None:
        """READY=1 with a status line; keep-alives from this loop when a watchdog is set."""
        period = watchdog_period(os.environ, os.getpid())
        if period is not None:
            self._tasks.spawn(self.notifier.keepalive(period), "systemd-watchdog")
        self.notifier.notify("READY=1", f"STATUS=station {self.config.station.id} running")


def run_main(config: MainConfig, *, speed: float = 1.0) -> int:
    return asyncio.run(MainApp(config, speed=speed).run())
