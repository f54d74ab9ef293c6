"""EvseRuntime + LocalPort on a SimBoard with a ManualClock (IEC 61851-1 Annex A sequences)."""

from __future__ import annotations

import pytest
from evse_rig import Rig, make_rig

from chargeport.port import (
    ChargePort,
    CommandRefused,
    CpState,
    CpStateChanged,
    ErrorCode,
    InvalidArgument,
    LimitsChanged,
    MeterValue,
    PortDisabledChanged,
    PortErrorEvent,
    SessionEvent,
    SessionState,
    StopReason,
)
from chargeport.port import SessionEventType as T
from evse.pwm import duty_from_amps


async def test_local_port_is_a_charge_port(rig: Rig) -> None:
    assert isinstance(rig.rt.port, ChargePort)
    assert rig.rt.port.info.connector_id == 1 and rig.rt.port.info.max_current_a == 32.0


async def test_full_session_exact_events_iec61851_a3(rig: Rig) -> None:
    """plug -> swipe -> authorize -> charge -> EV pause -> resume -> unplug."""
    ev = rig.sim.ev
    ev.plug_in()
    await rig.run(0.2)
    ev.swipe("04A1B2C3")
    await rig.run(0.1)
    auth = [b for b in rig.bodies(SessionEvent) if b.type is T.AUTH_REQUIRED and b.transaction]
    assert auth and auth[-1].transaction.id_tag == "04A1B2C3"  # type: ignore[union-attr]
    await rig.rt.port.authorize("04A1B2C3")
    await rig.run(0.1)
    assert rig.sim.duty == pytest.approx(duty_from_amps(32.0))
    assert rig.sim.locked
    ev.draw(16.0, 3)
    await rig.run(2.0)
    assert rig.sim.contactor_closed
    status = await rig.rt.port.status()
    assert status.session_state is SessionState.CHARGING and status.transaction_id
    ev.pause()
    await rig.run(0.5)
    assert not rig.sim.contactor_closed
    ev.draw(16.0, 3)
    await rig.run(1.5)
    ev.pause()
    await rig.run(0.2)
    ev.unplug()
    await rig.run(0.2)
    assert rig.session_types() == [
        T.SESSION_STARTED,
        T.AUTH_REQUIRED,
        T.AUTH_REQUIRED,  # carries the presented tag
        T.AUTHORIZED,
        T.TRANSACTION_STARTED,
        T.CHARGING_STARTED,
        T.CHARGING_PAUSED_EV,
        T.CHARGING_RESUMED,
        T.CHARGING_PAUSED_EV,
        T.TRANSACTION_FINISHED,
        T.SESSION_FINISHED,
    ]
    finished = next(b for b in rig.bodies(SessionEvent) if b.type is T.TRANSACTION_FINISHED)
    assert finished.transaction is not None
    assert finished.transaction.stop_reason is StopReason.EV_DISCONNECTED
    assert finished.transaction.meter_wh > 0.0  # ~11 kW for a few seconds
    cp = [b.state for b in rig.bodies(CpStateChanged)]  # type: ignore[attr-defined]
    assert cp == [CpState.B, CpState.C, CpState.B, CpState.C, CpState.B, CpState.A]
    seqs = [e.seq for e in rig.events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    meters = [b for b in rig.bodies(MeterValue)]
    assert any(m.power_w > 10_000 for m in meters)  # type: ignore[attr-defined]
    assert all(m.temperature_c > 20 for m in meters)  # type: ignore[attr-defined]
    assert not rig.sim.locked


async def test_several_subscribers_get_every_event(rig: Rig) -> None:
    sub = rig.rt.port.events()
    rig.sim.ev.plug_in()
    await rig.run(0.2)
    await rig.rt.stop()
    got = [e async for e in sub]
    mine = [e for e in rig.events if e.seq >= got[0].seq]
    assert got == mine and got


async def test_set_limit_changes_duty_and_pauses_below_6a_annex_a(rig: Rig) -> None:
    ev = rig.sim.ev
    ev.plug_in()
    await rig.run(0.2)
    await rig.rt.port.authorize("T")
    ev.draw(32.0, 3)
    await rig.run(0.5)
    await rig.rt.port.set_limit(10.0, 3)
    await rig.settle()
    assert rig.sim.duty == pytest.approx(duty_from_amps(10.0))
    assert rig.bodies(LimitsChanged)[-1] == LimitsChanged(10.0, 3)
    await rig.rt.port.set_limit(4.0, 3)
    await rig.run(0.2)
    assert rig.sim.duty == 100.0 and not rig.sim.contactor_closed
    assert rig.session_types()[-1] is T.CHARGING_PAUSED_EVSE
    await rig.rt.port.set_limit(16.0, 3, valid_for_s=1.0)
    await rig.run(0.3)
    assert rig.session_types()[-1] is T.CHARGING_RESUMED and rig.sim.contactor_closed
    await rig.run(1.0)  # the limit expires: fallback_current_a (0 A) -> pause
    assert rig.session_types()[-1] is T.CHARGING_PAUSED_EVSE


@pytest.mark.parametrize(
    ("amps", "phases", "valid"), [(-1.0, 3, 0.0), (16.0, 2, 0.0), (16.0, 3, -1.0)]
)
async def test_set_limit_invalid_argument(rig: Rig, amps: float, phases: int, valid: float) -> None:
    with pytest.raises(InvalidArgument):
        await rig.rt.port.set_limit(amps, phases, valid)


async def test_commands_refused(rig: Rig) -> None:
    with pytest.raises(CommandRefused):
        await rig.rt.port.stop_transaction(StopReason.REMOTE)
    with pytest.raises(CommandRefused):
        await rig.rt.port.pause()
    await rig.rt.port.disable()
    with pytest.raises(CommandRefused):
        await rig.rt.port.authorize("T")
    with pytest.raises(InvalidArgument):
        await rig.rt.port.authorize("")


async def test_start_disabled_holds_state_f_until_enabled() -> None:
    r = await make_rig(start_enabled=False)
    async with r.rt:
        r.sim.ev.plug_in()
        await r.run(0.2)
        assert r.sim.duty == 0.0 and r.rt.cp.state is CpState.F
        status = await r.rt.port.status()
        assert not status.enabled and status.session_state is SessionState.DISABLED
        sub = r.rt.port.events()
        await r.rt.port.enable()
        await r.run(0.2)
        await r.rt.stop()
        bodies = [e.body async for e in sub]
    assert PortDisabledChanged(True) in bodies
    types = [b.type for b in bodies if isinstance(b, SessionEvent)]
    assert types == [T.ENABLED, T.SESSION_STARTED, T.AUTH_REQUIRED]
    r.sim.close()


async def test_plugin_timeout_after_remote_start() -> None:
    from chargeport.config import PortConfig

    r = await make_rig(PortConfig(sample_rate_hz=2000, plugin_timeout_s=1.0))
    async with r.rt:
        sub = r.rt.port.events()
        await r.rt.port.authorize("REMOTE1")
        await r.run(1.2)
        await r.rt.stop()
        types = [e.body.type async for e in sub if isinstance(e.body, SessionEvent)]
    assert types == [T.AUTHORIZED, T.PLUGIN_TIMEOUT]
    r.sim.close()


async def test_reserve_and_cancel(rig: Rig) -> None:
    await rig.rt.port.reserve(5, "TAGR", rig.clock.time() + 60)
    assert (await rig.rt.port.status()).reservation_id == 5
    with pytest.raises(CommandRefused):
        await rig.rt.port.authorize("OTHER")
    await rig.rt.port.cancel_reservation(5)
    await rig.settle()
    assert rig.session_types() == [T.RESERVATION_START, T.RESERVATION_END]


async def _charging(rig: Rig, amps: float = 16.0) -> None:
    rig.sim.ev.plug_in()
    await rig.run(0.2)
    await rig.rt.port.authorize("T")
    rig.sim.ev.draw(amps, 3)
    await rig.run(0.5)
    assert rig.sim.contactor_closed


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("rcd_trip", ErrorCode.GROUND_FAILURE),
        ("diode_fault", ErrorCode.EV_COMMUNICATION_ERROR),
        ("cp_short", ErrorCode.EV_COMMUNICATION_ERROR),
        ("over_temperature", ErrorCode.HIGH_TEMPERATURE),
    ],
)
async def test_fault_opens_contactor_and_reports(rig: Rig, fault: str, code: ErrorCode) -> None:
    await _charging(rig)
    rig.sim.inject(fault)
    await rig.run(0.3)
    errors = rig.bodies(PortErrorEvent)
    assert PortErrorEvent(code, errors[0].message, True) == errors[0]  # type: ignore[attr-defined]
    assert not rig.sim.contactor_closed and rig.sim.currents() == (0.0, 0.0, 0.0)
    assert T.CHARGING_PAUSED_EVSE in rig.session_types()
    status = await rig.rt.port.status()
    assert status.errors and status.errors[0].code is code
    rig.sim.inject(fault, False)
    rig.sim.ev.unplug()
    await rig.run(0.5)
    assert errors[0] != rig.bodies(PortErrorEvent)[-1]
    assert rig.bodies(PortErrorEvent)[-1] == PortErrorEvent(code, errors[0].message, False)  # type: ignore[attr-defined]
    assert (await rig.rt.port.status()).errors == ()


async def test_welded_contactor_detected_on_opening(rig: Rig) -> None:
    await _charging(rig)
    rig.sim.inject("welded_contactor")
    await rig.rt.port.stop_transaction(StopReason.REMOTE)
    await rig.run(0.5)
    (err,) = rig.bodies(PortErrorEvent)
    assert err.code is ErrorCode.POWER_SWITCH_FAILURE and "welded" in err.message  # type: ignore[attr-defined]
    assert rig.sim.contactor_closed  # really welded: the sim keeps it closed
    assert rig.rt.contactor.wanted is False


async def test_stuck_open_contactor(rig: Rig) -> None:
    rig.sim.inject("stuck_open_contactor")
    rig.sim.ev.plug_in()
    await rig.run(0.2)
    await rig.rt.port.authorize("T")
    rig.sim.ev.draw(16.0, 3)
    await rig.run(0.6)
    (err,) = rig.bodies(PortErrorEvent)
    assert err.code is ErrorCode.POWER_SWITCH_FAILURE  # type: ignore[attr-defined]
    assert not rig.sim.contactor_commanded


async def test_over_current_stops_the_session_annex_a(rig: Rig) -> None:
    """No reduction keeps 6 A for an EV drawing 20 A on 10 A: the session stops (Annex A)."""
    rig.sim.ev.plug_in()
    await rig.run(0.2)
    await rig.rt.port.set_limit(10.0, 3)
    await rig.rt.port.authorize("T")
    rig.sim.ev.draw(20.0, 3, regulated=False)  # ignores the 10 A offer
    await rig.run(4.0)
    (err,) = rig.bodies(PortErrorEvent)
    assert err.code is ErrorCode.OVER_CURRENT_FAILURE  # type: ignore[attr-defined]
    assert not rig.sim.contactor_closed
    assert T.TRANSACTION_FINISHED in rig.session_types()


async def test_thermal_derating_halves_offer(rig: Rig) -> None:
    rig.sim.ambient_c = 66.0
    rig.sim.set_temperature(66.0)  # connector at 66 degC: half current
    rig.sim.ev.plug_in()
    await rig.run(0.2)
    await rig.rt.port.authorize("T")
    await rig.run(0.2)
    assert rig.bodies(LimitsChanged)[-1] == LimitsChanged(16.0, 3)
    assert rig.sim.duty == pytest.approx(duty_from_amps(16.0))
