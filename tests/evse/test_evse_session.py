"""Session machine (EVerest session events; OCPP 1.6 transaction rules), table-driven."""

from __future__ import annotations

import itertools

import pytest

from chargeport.port import SessionEventType as T
from chargeport.port import SessionState, StopReason
from evse.errors import IllegalTransition, Refused
from evse.session import (
    TRANSITIONS,
    Authorize,
    Block,
    CancelReservation,
    Deauthorize,
    Disable,
    Drive,
    Emit,
    Enable,
    EvReadyChanged,
    Plugged,
    Reserve,
    SessionInput,
    SessionMachine,
    St,
    Stop,
    TagPresented,
    Tick,
    Unplugged,
)


def machine(**kw: object) -> SessionMachine:
    counter = itertools.count(1)
    return SessionMachine(id_factory=lambda: f"id{next(counter)}", **kw)  # type: ignore[arg-type]


def run(m: SessionMachine, inputs: list[tuple[float, SessionInput]]) -> list[T]:
    out: list[T] = []
    for now, event in inputs:
        out += [e.type for e in m.handle(event, now, meter_wh=now * 10) if isinstance(e, Emit)]
    return out


PLUG, READY, PAUSE_EV = Plugged(), EvReadyChanged(True), EvReadyChanged(False)
UNPLUG, AUTH = Unplugged(), Authorize("TAG1")

CASES: list[tuple[str, dict[str, object], list[SessionInput], list[T], St]] = [
    (
        "plug_then_auth_ocpp16_3_2",
        {},
        [PLUG, TagPresented("TAG1"), AUTH, READY, PAUSE_EV, READY, UNPLUG],
        [
            T.SESSION_STARTED,
            T.AUTH_REQUIRED,
            T.AUTH_REQUIRED,
            T.AUTHORIZED,
            T.TRANSACTION_STARTED,
            T.CHARGING_STARTED,
            T.CHARGING_PAUSED_EV,
            T.CHARGING_RESUMED,
            T.STOPPING_CHARGING,
            T.TRANSACTION_FINISHED,
            T.SESSION_FINISHED,
        ],
        St.IDLE,
    ),
    (
        "auth_then_plug_remote_start_ocpp16_5_11",
        {},
        [AUTH, PLUG, READY],
        [T.AUTHORIZED, T.SESSION_STARTED, T.TRANSACTION_STARTED, T.CHARGING_STARTED],
        St.CHARGING,
    ),
    (
        "plugin_timeout_ocpp16_connection_timeout",
        {"plugin_timeout_s": 60.0},
        [AUTH, Tick()],  # Tick at now=1 (index-based time below)
        [T.AUTHORIZED],
        St.AUTHORIZED,
    ),
    (
        "free_vend_starts_at_plugin",
        {"free_vend": True},
        [PLUG, READY],
        [T.SESSION_STARTED, T.TRANSACTION_STARTED, T.CHARGING_STARTED],
        St.CHARGING,
    ),
    (
        "stop_transaction_then_unplug_ocpp16_5_16",
        {},
        [PLUG, AUTH, READY, Stop(StopReason.REMOTE), PAUSE_EV, UNPLUG],
        [
            T.SESSION_STARTED,
            T.AUTH_REQUIRED,
            T.AUTHORIZED,
            T.TRANSACTION_STARTED,
            T.CHARGING_STARTED,
            T.STOPPING_CHARGING,
            T.TRANSACTION_FINISHED,
            T.SESSION_FINISHED,
        ],
        St.IDLE,
    ),
    (
        "evse_pause_below_6a_iec61851_a8",
        {},
        [PLUG, AUTH, READY, Block("limit", True), Block("limit", False)],
        [
            T.SESSION_STARTED,
            T.AUTH_REQUIRED,
            T.AUTHORIZED,
            T.TRANSACTION_STARTED,
            T.CHARGING_STARTED,
            T.CHARGING_PAUSED_EVSE,
            T.CHARGING_RESUMED,
        ],
        St.CHARGING,
    ),
    (
        "deauthorize_stops_transaction",
        {},
        [PLUG, AUTH, Deauthorize()],
        [
            T.SESSION_STARTED,
            T.AUTH_REQUIRED,
            T.AUTHORIZED,
            T.TRANSACTION_STARTED,
            T.TRANSACTION_FINISHED,
        ],
        St.FINISHING,
    ),
    (
        "deauthorize_before_plugin",
        {},
        [AUTH, Deauthorize()],
        [T.AUTHORIZED, T.DEAUTHORIZED],
        St.IDLE,
    ),
    (
        "disable_ends_session",
        {},
        [PLUG, AUTH, READY, Disable(), Enable()],
        [
            T.SESSION_STARTED,
            T.AUTH_REQUIRED,
            T.AUTHORIZED,
            T.TRANSACTION_STARTED,
            T.CHARGING_STARTED,
            T.STOPPING_CHARGING,
            T.TRANSACTION_FINISHED,
            T.SESSION_FINISHED,
            T.DISABLED,
            T.ENABLED,
        ],
        St.IDLE,
    ),
    (
        "reservation_used_by_its_tag_ocpp16_5_13",
        {},
        [Reserve(7, "TAG1", 1e9), PLUG, AUTH],
        [
            T.RESERVATION_START,
            T.SESSION_STARTED,
            T.AUTH_REQUIRED,
            T.RESERVATION_END,
            T.AUTHORIZED,
            T.TRANSACTION_STARTED,
        ],
        St.PREPARING,
    ),
    (
        "reservation_cancelled_ocpp16_5_2",
        {},
        [Reserve(7, "TAG1", 1e9), CancelReservation(7)],
        [T.RESERVATION_START, T.RESERVATION_END],
        St.IDLE,
    ),
    (
        "new_transaction_in_same_session",
        {},
        [PLUG, AUTH, Stop(StopReason.LOCAL), Authorize("TAG2")],
        [
            T.SESSION_STARTED,
            T.AUTH_REQUIRED,
            T.AUTHORIZED,
            T.TRANSACTION_STARTED,
            T.TRANSACTION_FINISHED,
            T.AUTHORIZED,
            T.TRANSACTION_STARTED,
        ],
        St.PREPARING,
    ),
    (
        "ev_ready_while_evse_paused_then_released",
        {},
        [PLUG, AUTH, Block("pause", True), READY, Block("pause", False)],
        [
            T.SESSION_STARTED,
            T.AUTH_REQUIRED,
            T.AUTHORIZED,
            T.TRANSACTION_STARTED,
            T.CHARGING_PAUSED_EVSE,
            T.CHARGING_STARTED,
        ],
        St.CHARGING,
    ),
]


@pytest.mark.parametrize(
    ("name", "kw", "inputs", "expected", "final"), CASES, ids=[c[0] for c in CASES]
)
def test_session_sequences(
    name: str, kw: dict[str, object], inputs: list[SessionInput], expected: list[T], final: St
) -> None:
    m = machine(**kw)
    assert run(m, list(enumerate(inputs, start=1))) == expected  # type: ignore[arg-type]
    assert m.state is final


def test_plugin_timeout_fires_after_timeout() -> None:
    m = machine(plugin_timeout_s=60.0)
    assert run(m, [(0.0, AUTH), (59.0, Tick()), (60.0, Tick())]) == [T.AUTHORIZED, T.PLUGIN_TIMEOUT]
    assert m.state is St.IDLE


def test_reservation_expires_ocpp16_5_13() -> None:
    m = machine()
    assert run(m, [(0.0, Reserve(1, "T", 100.0)), (99.0, Tick()), (100.0, Tick())]) == [
        T.RESERVATION_START,
        T.RESERVATION_END,
    ]
    assert m.state is St.IDLE


def test_transaction_data_carries_meter_and_reason() -> None:
    m = machine()
    m.handle(PLUG, 0.0, meter_wh=100.0)
    started = [e for e in m.handle(AUTH, 1.0, meter_wh=100.0) if isinstance(e, Emit)][-1]
    assert started.transaction is not None and started.transaction.meter_wh == 100.0
    assert started.transaction.id_tag == "TAG1" and started.session_id == "id1"
    done = [e for e in m.handle(UNPLUG, 2.0, meter_wh=250.0) if isinstance(e, Emit)]
    finished = next(e for e in done if e.type is T.TRANSACTION_FINISHED)
    assert finished.transaction is not None
    assert finished.transaction.meter_wh == 250.0
    assert finished.transaction.stop_reason is StopReason.EV_DISCONNECTED
    assert finished.transaction.transaction_id == started.transaction.transaction_id


def test_presented_tag_travels_in_auth_required() -> None:
    m = machine()
    m.handle(PLUG, 0.0)
    (e,) = m.handle(TagPresented("04AB"), 1.0)
    assert isinstance(e, Emit) and e.type is T.AUTH_REQUIRED
    assert e.transaction is not None and e.transaction.id_tag == "04AB"


@pytest.mark.parametrize(
    ("prefix", "command"),
    [
        ([], Stop(StopReason.REMOTE)),  # no transaction to stop
        ([], Deauthorize()),
        ([PLUG, AUTH], Reserve(1, "X", 1e9)),  # OCPP 1.6 5.13: occupied
        ([Reserve(1, "A", 1e9)], Authorize("B")),  # reserved for another tag
        ([Reserve(1, "A", 1e9)], CancelReservation(2)),
        ([Disable()], AUTH),
        ([PLUG, AUTH], AUTH),  # already in a transaction
    ],
)
def test_commands_refused(prefix: list[SessionInput], command: SessionInput) -> None:
    m = machine()
    run(m, list(enumerate(prefix)))  # type: ignore[arg-type]
    with pytest.raises(Refused):
        m.handle(command, 10.0)


def test_illegal_hardware_input_raises() -> None:
    # Plugged while a session is already running is a bug in whoever feeds the machine.
    m = machine()
    m.handle(PLUG, 0.0)
    with pytest.raises(IllegalTransition):
        m.handle(PLUG, 1.0)


def test_drive_outputs_follow_state_iec61851_a3() -> None:
    m = machine()
    drives = [e for e in m.handle(PLUG, 0) + m.handle(AUTH, 1) if isinstance(e, Drive)]
    assert drives[-1] == Drive(pwm=True, contactor=False, lock=True, available=True)
    (d,) = [e for e in m.handle(READY, 2) if isinstance(e, Drive)]
    assert d.contactor
    (d,) = [e for e in m.handle(Block("fault", True), 3) if isinstance(e, Drive)]
    assert d == Drive(pwm=False, contactor=False, lock=True, available=True)
    assert m.reported_state is SessionState.PAUSED_EVSE


def test_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(St)
    for cells in TRANSITIONS.values():
        assert Tick in cells and Disable in cells
