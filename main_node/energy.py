"""Energy manager: share the site's current among the station's ports.

Theory of operation. Pure cores turn inputs into numbers: `main_node.energy_alloc` (available
current, fair share, push order) and `main_node.energy_policy` (stale mains fallback, which guns
run: rotation, hysteresis, priority). The async `EnergyManager` folds port events into per-port
facts, recomputes on every relevant change (event-driven, no polling in the path) and pushes
`set_limit`; a refresh tick re-sends limits (they expire on the ports) and lets rotation turn.

- Available current = site limit less the building's other load (a live mains reading) or the
  fallback limit (a stale one), capped by the OCPP ChargePointMaxProfile, minus current still
  reserved for satellites whose link dropped (they keep their last limit until it expires).
- Idle ports (no authorized session) get 0, not a standby offer: a standby reserve would waste
  site capacity, and the path from `Authorized` to `set_limit` takes milliseconds while an EV
  needs seconds to close its contactor.
- A mains reading that goes stale is logged once (WARNING) and shown in the snapshot
  (`mains_status`); its return is logged once (INFO).
- PV surplus mode (`pv_surplus`): the budget is the ports' own draw plus the export at the
  grid connection (`set_grid_power`, signed), turned into amps for the phase count the
  `PhaseChooser` picks (with `phase_switching`, else the ports' own); a stale or missing grid
  reading is no surplus (the same fail-safe, logged and shown the same way).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace

from chargeport.clock import Clock
from chargeport.config import EnergyConfig
from chargeport.port import (
    ChargePort,
    LimitsChanged,
    LinkChanged,
    MeterValue,
    PortDisabledChanged,
    PortError,
    PortEvent,
    PortEventBody,
    SessionEvent,
    SessionEventType,
    SessionState,
)
from chargeport.tasks import OwnedTasks
from main_node.energy_alloc import PortDemand, allocate, available_current, order_pushes
from main_node.energy_policy import (
    NOMINAL_V,
    Candidate,
    MainsStatus,
    PhaseChooser,
    RotationConfig,
    Scheduler,
    mains_status,
    pv_surplus_w,
)
from main_node.energy_state import DEMAND, DEMAND_STATES, EnergySnapshot, PortFacts, check_amps

__all__ = [
    "VALID_FOR_PERIODS",
    "EnergyManager",
    "EnergySnapshot",
    "MainsStatus",
    "PortDemand",
    "allocate",
    "available_current",
    "order_pushes",
]

log = logging.getLogger(__name__)

VALID_FOR_PERIODS = 3  # a pushed limit outlives this many refreshes, then expires on the port

# ------------------------------------------------------------------ async manager


class EnergyManager:
    """Pushes each port its share of the site's current; loop-only, start()/stop() owned."""

    def __init__(self, ports: Mapping[int, ChargePort], config: EnergyConfig, clock: Clock) -> None:
        self._ports = dict(ports)
        self._config = config
        self._clock = clock
        self.valid_for_s = VALID_FOR_PERIODS * config.refresh_s
        self._facts = {cid: PortFacts(order=cid) for cid in self._ports}
        self._next_order = max(self._ports, default=0) + 1
        self._mains: tuple[float, float, float] | None = None
        self._mains_at: float | None = None  # monotonic time of the last mains reading
        self._grid_w: float | None = None  # PV mode: signed grid power, < 0 = export
        self._grid_at: float | None = None
        self._chooser = PhaseChooser(config.min_current_a, min_hold_s=config.phase_switch_min_s)
        self._pv_phases: int | None = None
        self._mains_logged = MainsStatus.NONE  # the status last said in the log
        self._mains_changed = asyncio.Event()
        self._station_limit: float | None = None
        self._scheduler = Scheduler(
            RotationConfig(
                min_current_a=config.min_current_a,
                hysteresis_a=config.hysteresis_a,
                min_on_s=config.min_on_s,
                min_pause_s=config.min_pause_s,
                rotation_s=config.rotation_s,
            )
        )
        ranked = list(config.priority)
        self._priority = {cid: len(ranked) - i for i, cid in enumerate(ranked)}
        self._allocation: dict[int, float] = dict.fromkeys(self._ports, 0.0)
        self._snapshot = self._compute()[1]
        self._listeners: list[Callable[[EnergySnapshot], None]] = []
        self._wake = asyncio.Event()
        self._refresh_due = False
        self._tasks = OwnedTasks(log)

    # -------------------------------------------------------------- inputs (loop thread)

    def set_profile_limit(self, connector_id: int, amps: float | None) -> None:
        """OCPP charging profile limit in A per phase; connector 0 = whole station; None clears."""
        check_amps(amps)
        if connector_id == 0:
            self._station_limit = amps
        elif connector_id in self._facts:
            self._facts[connector_id].profile_limit_a = amps
        else:
            raise ValueError(f"no connector {connector_id}")
        self._wake.set()

    def set_connector_limit(
        self, connector_id: int, amps: float | None, phases: int | None = None
    ) -> None:
        """Operator limit for one connector (MQTT / dashboard); None clears it."""
        check_amps(amps)
        facts = self._facts.get(connector_id)
        if facts is None:
            raise ValueError(f"no connector {connector_id}")
        facts.local_limit_a = amps
        facts.local_phases = phases if amps is not None else None
        self._wake.set()

    def set_mains_reading(self, currents_a: tuple[float, float, float]) -> None:
        """The building's live L1..L3 currents at the grid connection (our ports included)."""
        values = tuple(float(c) for c in currents_a)
        if len(values) != 3 or not all(math.isfinite(c) and c >= 0 for c in values):
            raise ValueError(f"expected three finite currents >= 0, got {currents_a!r}")
        self._mains = (values[0], values[1], values[2])
        self._mains_at = self._clock.monotonic()
        self._mains_changed.set()
        self._wake.set()

    def set_grid_power(self, watts: float) -> None:
        """PV mode: the site's power at the grid connection, > 0 import, < 0 export."""
        if not math.isfinite(watts):
            raise ValueError(f"expected a finite power in W, got {watts!r}")
        self._grid_w = float(watts)
        self._grid_at = self._clock.monotonic()
        self._mains_changed.set()
        self._wake.set()

    # -------------------------------------------------------------- outputs

    def allocation(self) -> dict[int, float]:
        """The latest computed amps per connector."""
        return dict(self._allocation)

    def snapshot(self) -> EnergySnapshot:
        """The latest inputs and allocation, for display."""
        return self._snapshot

    def add_listener(self, listener: Callable[[EnergySnapshot], None]) -> Callable[[], None]:
        """Call `listener` on the loop whenever the snapshot changes; returns a remover."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # -------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Subscribe to every port and start pushing limits."""
        if self._tasks:
            return
        for cid, port in self._ports.items():
            # Subscribe now, so every event after start() returns is seen.
            self._tasks.spawn(self._async_follow(cid, port, port.events()), f"energy-port-{cid}")
        self._tasks.spawn(self._async_pusher(), "energy-pusher")
        self._tasks.spawn(self._async_refresh(), "energy-refresh")
        self._tasks.spawn(self._async_mains_watch(), "energy-mains-watch")
        self._wake.set()

    async def stop(self) -> None:
        """Cancel and reap every task this manager started."""
        await self._tasks.cancel_all()

    # -------------------------------------------------------------- folding events

    def _apply(self, cid: int, body: PortEventBody) -> bool:
        """Fold one port event; True when the allocation may change."""
        facts = self._facts[cid]
        if isinstance(body, SessionEvent):
            if body.type is SessionEventType.SESSION_STARTED:
                facts.order = self._next_order
                self._next_order += 1
            demand = DEMAND.get(body.type)
            if demand is None or demand == facts.active:
                return False
            facts.active = demand
            return True
        if isinstance(body, MeterValue):
            facts.current_a = body.current_a
            facts.power_w = body.power_w
            # Own draw only matters against a mains reading, or as part of a PV budget.
            return self._mains is not None or self._config.pv_surplus
        if isinstance(body, LimitsChanged):
            # The port's effective limit drifted from ours (expiry fallback, satellite
            # restart): re-send once per refresh period, so an echo can never loop.
            now = self._clock.monotonic()
            drifted = facts.last_sent is not None and body.max_current_a != facts.last_sent
            if drifted and now - facts.drift_resent_at >= self._config.refresh_s:
                facts.drift_resent_at = now
                facts.last_sent = None
                return True
            return False
        if isinstance(body, PortDisabledChanged):
            facts.enabled = body.enabled
            return True
        if isinstance(body, LinkChanged):
            if facts.link_up and not body.connected:
                # The satellite keeps its last limit until valid_for runs out: keep it reserved.
                facts.reserve_a = facts.last_sent or 0.0
                facts.reserve_until = self._clock.monotonic() + self.valid_for_s
            facts.link_up = body.connected
            facts.last_sent = None  # unknown after a link change: resend on reconnect
            return True
        return False

    def _apply_status(self, cid: int, state: SessionState, enabled: bool) -> None:
        facts = self._facts[cid]
        facts.enabled = enabled
        active = state in DEMAND_STATES
        if active and not facts.active:
            facts.order = self._next_order
            self._next_order += 1
        facts.active = active

    async def _async_follow(
        self, cid: int, port: ChargePort, events: AsyncIterator[PortEvent]
    ) -> None:
        """Fold one port's events for ever; resubscribe after a refresh period on errors."""
        while True:
            try:
                await self._async_resync(cid, port)
                async for event in events:
                    await self._async_event(cid, port, event)
            except PortError as exc:
                log.warning("energy: connector %d events failed: %s", cid, exc)
            await self._clock.sleep(self._config.refresh_s)
            events = port.events()

    async def _async_event(self, cid: int, port: ChargePort, event: PortEvent) -> None:
        if self._apply(cid, event.body):
            self._wake.set()
        if isinstance(event.body, LinkChanged) and event.body.connected:
            await self._async_resync(cid, port)  # the satellite may have restarted meanwhile

    async def _async_resync(self, cid: int, port: ChargePort) -> None:
        try:
            status = await port.status()
        except PortError as exc:
            log.info("energy: connector %d status unavailable: %s", cid, exc)
            return
        self._apply_status(cid, status.session_state, status.enabled)
        self._wake.set()

    # -------------------------------------------------------------- deciding and pushing

    def _ceiling(self, cid: int, facts: PortFacts) -> float:
        ceiling = self._ports[cid].info.max_current_a
        for limit in (facts.profile_limit_a, facts.local_limit_a):
            if limit is not None:
                ceiling = min(ceiling, limit)
        return ceiling

    def _phases(self, cid: int) -> int:
        phases = self._ports[cid].info.phases
        local = self._facts[cid].local_phases
        if local is not None:
            phases = min(phases, local)
        return min(phases, self._pv_phases) if self._pv_phases is not None else phases

    def _reading_at(self) -> float | None:
        """When the reading the budget rests on arrived (grid power in PV mode, else mains)."""
        return self._grid_at if self._config.pv_surplus else self._mains_at

    def _mains_status(self, now: float) -> MainsStatus:
        cfg = self._config
        # PV mode has no surplus without a reading: a missing one is as stale as an old one.
        required = cfg.mains_required or cfg.pv_surplus
        return mains_status(self._reading_at(), now, cfg.mains_max_age_s, required)

    def _pv_budget(self, status: MainsStatus, now: float) -> float:
        """PV mode: amps per phase the surplus pays for, at the phase count chosen for it."""
        surplus = 0.0
        if status is MainsStatus.LIVE and self._grid_w is not None:
            own_w = sum(f.power_w for f in self._facts.values())
            surplus = pv_surplus_w(self._grid_w, own_w, self._config.pv_margin_w)
        if self._config.phase_switching:
            if status is MainsStatus.LIVE:  # an unknown surplus is no reason to switch
                self._pv_phases = self._chooser.choose(surplus, now)
            phases = self._pv_phases = self._chooser.phases
        else:
            phases = max((p.info.phases for p in self._ports.values()), default=3)
        return surplus / (NOMINAL_V * phases)

    def _compute(self) -> tuple[dict[int, float], EnergySnapshot]:
        cfg = self._config
        now = self._clock.monotonic()
        own = [0.0, 0.0, 0.0]
        for facts in self._facts.values():
            for phase, amps in enumerate(facts.current_a[:3]):
                own[phase] += amps
        status = self._mains_status(now)
        if cfg.pv_surplus:
            available = available_current(cfg.site_limit_a, None, own, self._station_limit)
            available = min(available, self._pv_budget(status, now))
        elif status is MainsStatus.STALE:
            # The building's load is unknown: share only what the fuse allows regardless.
            site = min(cfg.site_limit_a, cfg.mains_fallback_a)
            available = available_current(site, None, own, self._station_limit)
        else:
            mains = self._mains if status is MainsStatus.LIVE else None
            available = available_current(cfg.site_limit_a, mains, own, self._station_limit)
        reserved = {
            cid: f.reserve_a
            for cid, f in self._facts.items()
            if not f.link_up and f.reserve_until > now and f.reserve_a > 0
        }
        demands = [
            PortDemand(
                connector_id=cid,
                active=f.active and f.enabled and f.link_up,
                max_current_a=self._ceiling(cid, f),
                phases=self._phases(cid),
                order=f.order,
            )
            for cid, f in self._facts.items()
        ]
        budget = available - sum(reserved.values())
        running = self._scheduler.decide(
            now,
            budget,
            [
                Candidate(d.connector_id, self._priority.get(d.connector_id, 0), d.order)
                for d in demands
                if d.active and d.max_current_a >= cfg.min_current_a and d.max_current_a > 0
            ],
        )
        allocation = allocate(
            budget,
            [replace(d, active=d.active and d.connector_id in running) for d in demands],
            cfg.min_current_a,
        )
        active = tuple(d.connector_id for d in demands if d.active)
        snapshot = EnergySnapshot(
            site_limit_a=self._config.site_limit_a,
            available_a=available,
            mains_a=self._mains,
            station_limit_a=self._station_limit,
            allocation=dict(sorted(allocation.items())),
            active=active,
            paused=tuple(cid for cid in active if allocation[cid] == 0.0),
            reserved=reserved,
            mains_status=status,
            pv_phases=self._pv_phases,
        )
        return allocation, snapshot

    async def _async_refresh(self) -> None:
        while True:
            await self._clock.sleep(self._config.refresh_s)
            self._refresh_due = True
            self._wake.set()

    async def _async_mains_watch(self) -> None:
        """Recompute when the latest mains reading turns stale (no refresh-period delay)."""
        while True:
            if self._reading_at() is None:
                await self._mains_changed.wait()
            self._mains_changed.clear()
            last = self._reading_at()
            assert last is not None
            delay = last + self._config.mains_max_age_s - self._clock.monotonic()
            if delay > 0:
                await self._clock.sleep(delay)
                continue  # a newer reading may have moved the deadline
            self._wake.set()
            await self._mains_changed.wait()

    def _log_mains(self, before: MainsStatus, after: MainsStatus) -> None:
        cfg = self._config
        if after is MainsStatus.STALE and cfg.pv_surplus:
            log.warning(
                "energy: no grid power reading for %g s: no PV surplus until readings return",
                cfg.mains_max_age_s,
            )
        elif after is MainsStatus.STALE:
            log.warning(
                "energy: no mains reading for %g s: ports share the fallback limit of %g A "
                "until readings return",
                cfg.mains_max_age_s,
                min(cfg.site_limit_a, cfg.mains_fallback_a),
            )
        elif before is MainsStatus.STALE:
            log.info(
                "energy: mains readings are back: the site limit less the building load applies"
            )

    async def _async_pusher(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            refresh, self._refresh_due = self._refresh_due, False
            allocation, snapshot = self._compute()
            if snapshot.mains_status is not self._mains_logged:
                self._log_mains(self._mains_logged, snapshot.mains_status)
                self._mains_logged = snapshot.mains_status
            self._allocation = allocation
            if snapshot != self._snapshot:
                self._snapshot = snapshot
                for listener in list(self._listeners):
                    try:
                        listener(snapshot)
                    except Exception:
                        log.exception("energy: listener failed")
            await self._async_push(allocation, refresh)

    async def _async_push(self, allocation: dict[int, float], refresh: bool) -> None:
        desired = {
            cid: amps
            for cid, amps in allocation.items()
            if self._facts[cid].link_up and (refresh or self._facts[cid].last_sent != amps)
        }
        previous = {cid: self._facts[cid].last_sent for cid in desired}
        for batch in order_pushes(previous, desired):
            if batch:
                await asyncio.gather(*(self._async_send(cid, desired[cid]) for cid in batch))

    async def _async_send(self, cid: int, amps: float) -> None:
        facts = self._facts[cid]
        try:
            async with asyncio.timeout(self._config.refresh_s):
                await self._ports[cid].set_limit(amps, self._phases(cid), self.valid_for_s)
        except (PortError, TimeoutError) as exc:
            # Retried by the next refresh (or the next change); never fatal. Logged when the
            # reason changes, not at every refresh.
            why = str(exc) or f"no answer in {self._config.refresh_s:g} s"
            if why != facts.push_error:
                log.warning("energy: set_limit(%s A) on connector %d failed: %s", amps, cid, why)
            facts.push_error = why
            facts.last_sent = None
            return
        except Exception:  # a port bug must not stop limits reaching the other ports
            log.exception("energy: set_limit on connector %d raised", cid)
            facts.last_sent = None
            return
        if facts.push_error:
            log.info("energy: limits reach connector %d again", cid)
            facts.push_error = ""
        facts.last_sent = amps
