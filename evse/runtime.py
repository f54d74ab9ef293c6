"""The async EVSE runtime: binds the pure machines, metering and a hal `Board`; owns its tasks.

Data flows one way: a hal input (pilot level, mirror contact, RCD, temperature, sample block,
id tag) or a command is fed to a machine under one lock, the machine returns effects, and
`_perform` carries them out (pilot duty, contactor, lock, published events) before the next
input is looked at. The pilot is read event-driven (`levels()`); the slow sensors are read on a
housekeeping tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import hal.base
from chargeport.clock import Clock, RealClock
from chargeport.config import PortConfig
from chargeport.port import (
    CpState,
    CpStateChanged,
    ErrorCode,
    LimitsChanged,
    MeterValue,
    PortDisabledChanged,
    PortErrorEvent,
    PortEvent,
    PortEventBody,
    SessionEvent,
    SessionEventType,
    StopReason,
    TransactionData,
)
from chargeport.tasks import OwnedTasks
from evse import cp as cpm
from evse import session as ss
from evse.errors import Refused
from evse.local_port import EventBus, LocalPort
from evse.metering import Metering
from evse.ocmf import SignedRecord
from evse.phase_switch import HoldEnergy, PhaseEffect, PhaseSwitchMachine
from evse.protection import (
    ContactorMachine,
    ContactorState,
    Fault,
    OverCurrentMachine,
    RcdMachine,
    ReduceOffer,
    SwitchContactor,
    ThermalMachine,
    ThermalStep,
)
from evse.pwm import DUTY_OFF, DUTY_UNAVAILABLE, MIN_CURRENT_A, duty_from_amps
from evse.signing import BoardSigning

__all__ = ["EvseRuntime", "RegisterFile", "RuntimeTiming"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuntimeTiming:
    """Timing constants; tests shrink them."""

    debounce_s: float = 0.05  # pilot level must be stable this long
    housekeeping_s: float = 0.1  # RCD, mirror contact, temperature, diode, timers
    contactor_settle_s: float = 0.2  # contactor operating time before the mirror must agree
    over_current_allowed_s: float = 5.0  # IEC 61851-1 Annex A: EV must follow the PWM in 5 s
    phase_switch_wait_s: float = 10.0  # off time around a 1 <-> 3 phase switch


class EvseRuntime:
    """One port's EVSE runtime on one board."""

    def __init__(
        self,
        board: hal.base.Board,
        config: PortConfig,
        *,
        connector_id: int,
        serial: str,
        firmware_version: str,
        clock: Clock | None = None,
        id_factory: Callable[[], str] | None = None,
        start_enabled: bool = True,
        timing: RuntimeTiming | None = None,
        signing: BoardSigning | None = None,
        register_file: Path | None = None,
    ) -> None:
        self.board = board
        self.signing = signing  # OCMF records of this board's register (port.meter_signing)
        self.config = config
        self.clock: Clock = clock or RealClock()
        self.timing = timing or RuntimeTiming()
        self.cp = cpm.CpMachine(self.timing.debounce_s)
        self.session = ss.SessionMachine(
            id_factory=id_factory or (lambda: str(uuid.uuid4())),
            free_vend=config.free_vend,
            plugin_timeout_s=config.plugin_timeout_s,
            enabled=start_enabled,
        )
        self.contactor = ContactorMachine(self.timing.contactor_settle_s)
        self.over_current = OverCurrentMachine(self.timing.over_current_allowed_s, MIN_CURRENT_A)
        self.thermal = ThermalMachine()
        self.phase_switch = (
            PhaseSwitchMachine(config.phases, self.timing.phase_switch_wait_s)
            if board.phase_switch is not None and config.phases == 3
            else None
        )
        self.rcd = RcdMachine()
        self.metering = Metering(config.sample_rate_hz, config.meter_interval_s)
        self.bus = EventBus(self.clock)
        self.lock = asyncio.Lock()
        self.errors: dict[str, PortErrorEvent] = {}
        self.meter: MeterValue | None = None
        self.temperature_c = 0.0
        self.limit_a: float | None = None  # None: no set_limit yet (config maximum)
        self.limit_phases = config.phases
        self.limit_until: float | None = None
        self.limits = LimitsChanged(config.max_current_a, config.phases)
        self._duty: float | None = None
        self._locked: bool | None = None
        # The register of a sampled (DSP) meter lives in this process: `register_file` keeps it
        # across restarts, so a restarted board reads on where it stopped, like a real meter.
        sampled = board.power_meter is None  # a hardware meter keeps its own register
        self._register = RegisterFile(register_file) if register_file and sampled else None
        self._register_base_wh = self._register.load() if self._register is not None else 0.0
        self._energy_wh = self._register_base_wh
        if self._register_base_wh:
            self.meter = MeterValue(energy_wh=self._register_base_wh, power_w=0.0)
        self._diode_bad = False
        self._tasks = OwnedTasks(log)  # the loops and the debounce timer
        self._debounce: asyncio.Task[None] | None = None
        self._started = False
        self._port = LocalPort(self, connector_id, serial, firmware_version)

    @property
    def port(self) -> LocalPort:
        return self._port

    async def __aenter__(self) -> EvseRuntime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Drive the outputs to the session's state and start the loops."""
        if self._started:
            return
        self._started = True
        async with self.lock:
            await self.board.contactor.switch(False)
            if self.phase_switch is not None and self.board.phase_switch is not None:
                await self.board.phase_switch.set_phases(self.phase_switch.phases)
            await self._recompute_offer()
            await self._apply_outputs()
        self._tasks.spawn(self._cp_loop(), "evse-cp")
        self._tasks.spawn(self._housekeeping_loop(), "evse-housekeeping")
        if self.board.power_meter is not None:
            self._tasks.spawn(self._power_meter_loop(self.board.power_meter), "evse-power-meter")
        else:
            self._tasks.spawn(self._sampler_loop(), "evse-sampler")
        if self.board.id_reader is not None:
            self._tasks.spawn(self._tag_loop(self.board.id_reader), "evse-tags")

    async def stop(self) -> None:
        """Cancel every task, open the contactor, mark the port unavailable, end streams."""
        await self._tasks.cancel_all()
        if self._register is not None:
            self._register.save(self._energy_wh, durable=True)
        if self._started:
            self._started = False
            with contextlib.suppress(hal.base.HalError):
                await self.board.contactor.switch(False)
                await self.board.cp.set_duty(DUTY_UNAVAILABLE)
        self.bus.close()

    # ------------------------------------------------------------------ loops

    async def _cp_loop(self) -> None:
        async for level in self.board.cp.levels():
            async with self.lock:
                await self._on_cp(self.cp.observe(level, self.clock.monotonic()))
            self._arm_debounce()

    def _arm_debounce(self) -> None:
        if self._debounce is not None:
            self._debounce.cancel()
            self._debounce = None
        deadline = self.cp.deadline
        if deadline is not None:
            self._debounce = self._tasks.spawn(self._debounce_at(deadline), "evse-cp-debounce")

    async def _debounce_at(self, deadline: float) -> None:
        await self.clock.sleep(deadline - self.clock.monotonic())
        async with self.lock:
            await self._on_cp(self.cp.tick(self.clock.monotonic()))

    async def _sampler_loop(self) -> None:
        async for block in self.board.sampler.blocks():
            values = self.metering.feed(block)
            self._energy_wh = self._register_base_wh + self.metering.energy_wh
            if self._register is not None:
                self._register.advance(self._energy_wh)
            for value in values:
                async with self.lock:
                    await self._on_meter(
                        dataclasses.replace(
                            value,
                            energy_wh=self._register_base_wh + value.energy_wh,
                            temperature_c=self.temperature_c,
                        )
                    )

    async def _power_meter_loop(self, meter: hal.base.PowerMeter) -> None:
        while True:
            try:
                r = await meter.read()
            except hal.base.HalError as exc:
                async with self.lock:
                    await self._set_fault(
                        "meter", Fault(ErrorCode.POWER_METER_FAILURE, True, str(exc))
                    )
            else:
                self._energy_wh = r.energy_wh
                value = MeterValue(
                    energy_wh=r.energy_wh,
                    power_w=r.power_w,
                    voltage_v=r.voltage_v,
                    current_a=r.current_a,
                    frequency_hz=r.frequency_hz,
                    temperature_c=self.temperature_c,
                )
                async with self.lock:
                    await self._set_fault("meter", Fault(ErrorCode.POWER_METER_FAILURE, False))
                    await self._on_meter(value)
            await self.clock.sleep(self.config.meter_interval_s)

    async def _tag_loop(self, reader: hal.base.IdReader) -> None:
        async for tag in reader.tags():
            async with self.lock:
                await self.dispatch(ss.TagPresented(tag))

    async def _housekeeping_loop(self) -> None:
        while True:
            async with self.lock:
                await self._housekeeping()
            await self.clock.sleep(self.timing.housekeeping_s)

    async def _housekeeping(self) -> None:
        now = self.clock.monotonic()
        for f in self.rcd.measure(await self.board.rcd.tripped()):
            await self._set_fault("rcd", f)
        for e in self.contactor.feedback(await self.board.contactor.feedback(), now):
            await self._contactor_effect(e)
        if self.phase_switch is not None:
            opened = self.contactor.state is ContactorState.OPEN
            await self._phase_effects(self.phase_switch.tick(now, opened))
        self.temperature_c = await self.board.temperature.read_c()
        for t in self.thermal.measure(self.temperature_c):
            if isinstance(t, Fault):
                await self._set_fault("thermal", t)
            else:
                await self._recompute_offer()
        await self._check_diode()
        if self.limit_until is not None and self.clock.monotonic() >= self.limit_until:
            # The limit was not refreshed in time: fall back (fail-safe energy management).
            self.limit_a, self.limit_until = self.config.fallback_current_a, None
            await self._recompute_offer()
        await self.dispatch(ss.Tick())
        await self._on_cp(self.cp.tick(now))

    async def _check_diode(self) -> None:
        # IEC 61851-1 A.2.3: the diode is checked while the pilot oscillates with an EV present.
        plugged = self.cp.state in (CpState.B, CpState.C, CpState.D)
        if not plugged:
            bad = False
        elif self._duty is not None and 0.0 < self._duty < DUTY_OFF:
            bad = not await self.board.cp.diode_ok()
        else:
            return  # no PWM, no check: a fault found earlier stays until the EV leaves
        if bad != self._diode_bad:
            self._diode_bad = bad
            msg = "EV diode missing (IEC 61851-1 A.2)"
            await self._set_fault("diode", Fault(ErrorCode.EV_COMMUNICATION_ERROR, bad, msg))

    # ------------------------------------------------------------------ reactions

    async def _on_cp(self, effects: list[cpm.CpEffect]) -> None:
        for e in effects:
            if isinstance(e, cpm.CpStateEntered):
                self.bus.publish(CpStateChanged(e.state))
            elif isinstance(e, cpm.EvPlugged):
                await self.dispatch(ss.Plugged())
            elif isinstance(e, cpm.EvUnplugged):
                await self.dispatch(ss.Unplugged())
                await self._after_unplug()
            elif isinstance(e, cpm.EvReady):
                await self.dispatch(ss.EvReadyChanged(e.ready))
            elif isinstance(e, cpm.CpShort):
                msg = "control pilot shorted (state E)"
                await self._set_fault(
                    "cp_short", Fault(ErrorCode.EV_COMMUNICATION_ERROR, e.active, msg)
                )

    async def _after_unplug(self) -> None:
        """Faults tied to the EV or the session clear when it leaves."""
        for f in self.over_current.reset():
            await self._over_current_effect(f)
        for e in self.contactor.clear_stuck():
            await self._contactor_effect(e)
        if self._diode_bad:
            self._diode_bad = False
            await self._set_fault("diode", Fault(ErrorCode.EV_COMMUNICATION_ERROR, False))
        if self.rcd.tripped:
            await self.board.rcd.reset()  # IEC 61851-1 8.5: reset only with no EV connected
            for f in self.rcd.measure(await self.board.rcd.tripped()):
                await self._set_fault("rcd", f)

    async def _on_meter(self, value: MeterValue) -> None:
        self.meter = value
        self.bus.publish(value)
        if value.current_a:
            now = self.clock.monotonic()
            granted = self._granted if self.offered_a > 0 else 0.0
            for f in self.over_current.measure(max(value.current_a), granted, now):
                await self._over_current_effect(f)

    async def _over_current_effect(self, e: Fault | ReduceOffer) -> None:
        """IEC 61851-1 Annex A: reduce the pilot offer, or stop the session on a trip."""
        if isinstance(e, ReduceOffer):
            if e.compensation_a:
                log.warning(
                    "connector %d: EV draws %.1f A above its offer for %g s: offer reduced",
                    self._port.info.connector_id,
                    e.compensation_a,
                    self.timing.over_current_allowed_s,
                )
            await self._recompute_offer()
            return
        await self._set_fault("over_current", e)
        if e.active and self.session.transaction is not None:
            await self.dispatch(ss.Stop(StopReason.OTHER))

    async def _contactor_effect(self, e: SwitchContactor | Fault) -> None:
        if isinstance(e, SwitchContactor):
            await self.board.contactor.switch(e.closed)
            return
        await self._set_fault("contactor", e)
        # A weld is latched: no new transaction on this gun until an operator check passes.
        if (ss.INOPERATIVE in self.session.blocks) != self.contactor.welded:
            await self.dispatch(ss.Block(ss.INOPERATIVE, self.contactor.welded))

    async def _set_fault(self, source: str, fault: Fault) -> None:
        """Record a fault from `source`; active faults open the contactor and block energy."""
        was = self.errors.get(source)
        cid = self._port.info.connector_id
        if fault.active:
            if was is not None:
                return
            log.warning("connector %d: %s fault: %s", cid, fault.code.value, fault.message)
            event = PortErrorEvent(fault.code, fault.message, True)
            self.errors[source] = event
            self.bus.publish(event)
            # Open first, then tell the session: a fault never waits for sequencing.
            for e in self.contactor.request(False, self.clock.monotonic()):
                await self._contactor_effect(e)
            await self.dispatch(ss.Block("fault", True))
            return
        if was is None:
            return
        log.info("connector %d: %s fault cleared", cid, was.code.value)
        del self.errors[source]
        if all(e.code is not was.code for e in self.errors.values()):
            self.bus.publish(PortErrorEvent(was.code, was.message, False))
        if not self.errors:
            await self.dispatch(ss.Block("fault", False))

    # ------------------------------------------------------------------ session and outputs

    async def dispatch(self, event: ss.SessionInput) -> None:
        """Feed the session machine (caller holds `lock`) and perform its effects."""
        effects = self.session.handle(event, self.clock.time(), self._energy_wh)
        for e in effects:
            if isinstance(e, ss.Emit):
                body = SessionEvent(e.type, e.session_id, e.transaction)
                if self.signing is not None:  # signed before anyone hears of the begin/end
                    rec = await self.signing.on_session_event(body, self.clock.time())
                    if rec is not None and body.transaction is not None:
                        # The record rides on the event: whoever bills it gets it with it.
                        tx = dataclasses.replace(body.transaction, signed_meter=rec.text)
                        body = dataclasses.replace(body, transaction=tx)
                self.bus.publish(body)
            else:
                await self._apply_outputs()

    @property
    def offered_a(self) -> float:
        """The current offered through the pilot now (0 when the PWM is off)."""
        return self._offer if self._duty is not None and 0 < self._duty < DUTY_OFF else 0.0

    _offer = 0.0  # on the pilot: the granted current less any over-current compensation
    _granted = 0.0  # min(limit, config maximum, thermal derating)

    async def _recompute_offer(self) -> None:
        """Offer min(limit, config maximum, thermal derating); below 6 A pause instead."""
        cfg_max = self.config.max_current_a
        limit = cfg_max if self.limit_a is None else self.limit_a
        derated = (
            cfg_max * self.thermal.step.value if self.thermal.step is not ThermalStep.TRIP else 0.0
        )
        granted = min(limit, cfg_max, derated)
        self._granted = granted
        offer = max(granted - self.over_current.compensation_a, 0.0)
        self._offer = offer
        limits = LimitsChanged(max_current_a=granted, phases=self.limit_phases)
        if limits != self.limits:
            self.limits = limits
            self.bus.publish(limits)
        await self.dispatch(ss.Block("limit", offer < MIN_CURRENT_A))
        await self._apply_outputs()
        if self.phase_switch is not None and self.limit_phases != self.phase_switch.target:
            opened = self.contactor.state is ContactorState.OPEN
            now = self.clock.monotonic()
            await self._phase_effects(self.phase_switch.request(self.limit_phases, now, opened))

    async def _phase_effects(self, effects: list[PhaseEffect]) -> None:
        """Pause around a phase switch; switch the relay only with the contactor open."""
        for e in effects:
            if isinstance(e, HoldEnergy):
                await self.dispatch(ss.Block("phase_switch", e.on))
            elif self.board.phase_switch is not None:
                log.info(
                    "connector %d: switching to %d phase(s)", self._port.info.connector_id, e.phases
                )
                await self.board.phase_switch.set_phases(e.phases)

    async def _apply_outputs(self) -> None:
        """Pilot first, then contactor, then lock (IEC 61851-1 A.3: PWM off before opening)."""
        drive = self.session.drive
        if not drive.available:
            duty = DUTY_UNAVAILABLE
        elif drive.pwm and self._offer >= MIN_CURRENT_A:
            duty = duty_from_amps(self._offer)
        else:
            duty = DUTY_OFF
        if duty != self._duty:
            self._duty = duty
            await self.board.cp.set_duty(duty)
        closed = drive.contactor and not self.errors
        for e in self.contactor.request(closed, self.clock.monotonic()):
            await self._contactor_effect(e)
        if drive.lock != self._locked:
            self._locked = drive.lock
            await self.board.lock.lock(drive.lock)

    async def close_interrupted(
        self, begin: TransactionData, last_wh: float | None = None
    ) -> TransactionData:
        """The end of a transaction the previous process left open: this board's register now
        (never below the last one journaled, nor the begin), reason PowerLoss (OCPP 1.6 6.49),
        signed (OCMF TX=P) when the board signs."""
        async with self.lock:
            wh = max(self._energy_wh, begin.meter_wh, last_wh or 0.0)
            if wh > self._energy_wh and self._register is not None:
                # The journal kept a later reading of this same register than the register
                # file's last step: read on from it, so the next begin is never below this end.
                self._register_base_wh += wh - self._energy_wh
                self._energy_wh = wh
                self._register.save(wh, durable=True)
            end = dataclasses.replace(
                begin, meter_wh=wh, stop_reason=StopReason.POWER_LOSS, signed_meter=""
            )
            if self.signing is not None:
                event = SessionEvent(SessionEventType.TRANSACTION_FINISHED, "", end)
                rec = await self.signing.on_session_event(event, self.clock.time())
                if rec is not None:
                    end = dataclasses.replace(end, signed_meter=rec.text)
            return end

    async def sign_reading(self) -> SignedRecord | None:
        """An on-demand OCMF record of the register (TX=C in a transaction, else fiscal)."""
        if self.signing is None:
            raise Refused("meter signing is off (port.meter_signing = false)")
        async with self.lock:
            tx = self.session.transaction
            return await self.signing.on_demand(self.clock.time(), self._energy_wh, tx)

    async def run_locked(self, fn: Callable[[], Awaitable[None]]) -> None:
        """Run `fn` under the runtime lock (commands from `LocalPort`)."""
        async with self.lock:
            await fn()

    def publish(self, body: PortEventBody) -> PortEvent:
        return self.bus.publish(body)

    async def set_limit(self, amps: float, phases: int, valid_for_s: float) -> None:
        """The station's limit (checked by LocalPort), until `valid_for_s` passes (0 = kept)."""
        self.limit_a, self.limit_phases = amps, phases
        self.limit_until = self.clock.monotonic() + valid_for_s if valid_for_s > 0 else None
        await self._recompute_offer()

    async def set_enabled(self, enabled: bool) -> None:
        """Enable or disable the port (caller holds `lock`)."""
        before = self.session.state is not ss.St.DISABLED
        if enabled and self.contactor.welded:
            await self._check_welded()
        await self.dispatch(ss.Enable() if enabled else ss.Disable())
        if before != enabled:
            self.bus.publish(PortDisabledChanged(enabled))

    async def _check_welded(self) -> None:
        """An operator's enable: clear a latched weld only if the mirror reads open now."""
        cleared = self.contactor.clear_welded(await self.board.contactor.feedback())
        if not cleared:
            log.warning(
                "connector %d: contactor still welded (mirror closed): stays faulted",
                self._port.info.connector_id,
            )
        for e in cleared:
            await self._contactor_effect(e)


class RegisterFile:
    """The board's energy register on disk (JSON), written each time it grows by `step_wh`.

    A write is a tiny file replaced atomically: a process killed at any moment leaves the last
    complete register (the page cache outlives the process), less than `step_wh` behind; 1 Wh
    is the resolution of OCPP 1.6's meterStart / meterStop, and spares the flash a write per
    metering block. `durable=True` (at stop) also fsyncs it. A missing or unreadable file is a
    register of 0, said once in the log.
    """

    def __init__(self, path: Path, step_wh: float = 1.0) -> None:
        self.path = path
        self.step_wh = step_wh
        self._tmp = path.with_name(path.name + ".tmp")
        self._saved: float | None = None
        self._failing = False  # said once in the log until a save works again

    def advance(self, energy_wh: float) -> None:
        """The register now reads `energy_wh`: save it once it moved `step_wh` on."""
        if self._saved is None or abs(energy_wh - self._saved) >= self.step_wh:
            self.save(energy_wh)

    def load(self) -> float:
        try:
            value = float(json.loads(self.path.read_text())["energy_wh"])
        except FileNotFoundError:
            return 0.0
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("meter register %s unreadable (%s): starting from 0", self.path, exc)
            return 0.0
        return value if value >= 0 else 0.0

    def save(self, energy_wh: float, *, durable: bool = False) -> None:
        try:
            with self._tmp.open("w") as out:
                out.write(json.dumps({"energy_wh": energy_wh}))
                if durable:
                    out.flush()
                    os.fsync(out.fileno())
            os.replace(self._tmp, self.path)
        except OSError as exc:  # a full disk must not stop the charging
            if not self._failing:
                log.warning("meter register not saved: %s", exc)
            self._failing = True
        else:
            self._failing = False
            self._saved = energy_wh
