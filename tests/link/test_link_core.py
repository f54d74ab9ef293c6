"""Pure pieces of the link: the event ring, proto conversion, the PKI files (no sockets)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from cryptography import x509

from chargeport.convert import (
    COMMANDS,
    Authorize,
    CancelReservation,
    Command,
    Disable,
    Enable,
    ForceUnlock,
    GetStatus,
    Pause,
    Reserve,
    Resume,
    SetLimit,
    StopTransaction,
    WithdrawAuthorization,
    command_from_proto,
    command_to_proto,
    error_for_code,
    error_for_rpc,
    event_from_proto,
    event_to_proto,
    status_from_proto,
    status_to_proto,
)
from chargeport.pki import init_pki, satellite_pair
from chargeport.port import (
    CommandRefused,
    CpState,
    CpStateChanged,
    ErrorCode,
    InvalidArgument,
    LimitsChanged,
    LinkChanged,
    MeterValue,
    PortDisabledChanged,
    PortErrorEvent,
    PortEvent,
    PortNotFound,
    PortStatus,
    PortUnavailable,
    SessionEvent,
    SessionEventType,
    SessionState,
    StopReason,
    TransactionData,
)
from chargeport.v1 import link_pb2 as pb
from satellite.ring import EventRing, ReplayGap

# ------------------------------------------------------------------ ring


def test_ring_replays_everything_after_a_seq() -> None:
    ring: EventRing[str] = EventRing(4)
    assert [ring.append(x) for x in "abc"] == [1, 2, 3]
    assert ring.after(0) == [(1, "a"), (2, "b"), (3, "c")]
    assert ring.after(2) == [(3, "c")]
    assert ring.after(3) == []


def test_ring_reports_a_gap_once_events_were_dropped() -> None:
    ring: EventRing[str] = EventRing(2)
    for x in "abcd":
        ring.append(x)
    assert ring.first_seq == 3 and ring.last_seq == 4
    assert ring.after(2) == [(3, "c"), (4, "d")]
    with pytest.raises(ReplayGap):
        ring.after(1)


# ------------------------------------------------------------------ conversion

TX = TransactionData("tx-1", "TAG", 12.5, reservation_id=7, stop_reason=StopReason.REMOTE)
BODIES = [
    SessionEvent(SessionEventType.SESSION_STARTED, "s-1"),
    SessionEvent(SessionEventType.TRANSACTION_FINISHED, "s-1", TX),
    SessionEvent(SessionEventType.TRANSACTION_STARTED, "s-1", TransactionData("t", "A", 0.0)),
    CpStateChanged(CpState.C),
    MeterValue(1.5, 7000.0, (230.0, 231.0, 229.0), (10.0, 10.1, 9.9), 50.0, 35.0, 0.99),
    LimitsChanged(16.0, 1),
    PortErrorEvent(ErrorCode.GROUND_FAILURE, "RCD tripped", True),
    PortDisabledChanged(False),
]


@pytest.mark.parametrize("body", BODIES, ids=lambda b: type(b).__name__)
def test_event_round_trip(body: object) -> None:
    ev = PortEvent(seq=3, timestamp=1.25, body=body)  # type: ignore[arg-type]
    assert event_from_proto(event_to_proto(ev)) == ev


def test_link_changed_never_travels() -> None:
    with pytest.raises(ValueError):
        event_to_proto(PortEvent(1, 0.0, LinkChanged(True)))


@pytest.mark.parametrize(
    "wire",
    [pb.Event(seq=1), pb.Event(seq=1, session=pb.SessionEvent(type="Bogus"))],
    ids=["no-body", "unknown-session-event"],
)
def test_malformed_event_is_invalid_argument(wire: pb.Event) -> None:
    with pytest.raises(InvalidArgument):
        event_from_proto(wire)


def test_status_round_trip() -> None:
    s = PortStatus(
        cp_state=CpState.B,
        enabled=True,
        session_state=SessionState.WAITING_FOR_AUTH,
        session_id="s",
        transaction_id="t",
        meter=MeterValue(1.0, 2.0),
        limits=LimitsChanged(10.0, 3),
        errors=(PortErrorEvent(ErrorCode.HIGH_TEMPERATURE, "hot", True),),
        reservation_id=0,
    )
    assert status_from_proto(status_to_proto(s)) == s
    bare = PortStatus(CpState.A, False, SessionState.DISABLED)
    assert status_from_proto(status_to_proto(bare)) == bare


COMMAND_CASES: list[Command] = [
    Enable(),
    Disable(),
    Authorize("TAG", None),
    Authorize("TAG", 4),
    WithdrawAuthorization(),
    Pause(),
    Resume(),
    StopTransaction(StopReason.EMERGENCY_STOP),
    SetLimit(16.0, 1, 30.0),
    ForceUnlock(),
    Reserve(3, "TAG", 1e9),
    CancelReservation(3),
    GetStatus(),
]


def test_every_command_has_a_case() -> None:
    assert {c.name for c in COMMAND_CASES} == set(COMMANDS)


@pytest.mark.parametrize("cmd", COMMAND_CASES, ids=repr)
def test_command_round_trip(cmd: Command) -> None:
    req = command_to_proto(cmd, session_id="s", connector=1, correlation_id=9)
    assert (req.session_id, req.connector, req.correlation_id) == ("s", 1, 9)
    assert command_from_proto(req) == cmd


@pytest.mark.parametrize(
    "req",
    [
        pb.CommandRequest(),
        pb.CommandRequest(stop_transaction=pb.StopTransaction(reason="Tired")),
        pb.CommandRequest(authorize=pb.Authorize(id_tag="")),
    ],
    ids=["empty", "bad-stop-reason", "empty-id-tag"],
)
def test_malformed_command_is_invalid_argument(req: pb.CommandRequest) -> None:
    with pytest.raises(InvalidArgument):
        command_from_proto(req)


@pytest.mark.parametrize(
    ("code", "cls"),
    [(9, CommandRefused), (3, InvalidArgument), (5, PortNotFound), (14, PortUnavailable)],
)
def test_grpc_codes_map_to_port_errors(code: int, cls: type) -> None:
    assert type(error_for_code(code, "m")) is cls


@pytest.mark.parametrize("code", [2, 9, 13, 14])
def test_a_failed_command_always_carries_a_reason(code: int) -> None:
    """Issue 11: `set_limit(...) failed:` with nothing after it never happens again."""
    assert str(error_for_code(code, "")).endswith("without a reason")


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (grpc.StatusCode.UNAVAILABLE, PortUnavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, PortUnavailable),
        (grpc.StatusCode.CANCELLED, PortUnavailable),
        (grpc.StatusCode.FAILED_PRECONDITION, CommandRefused),
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgument),
    ],
)
def test_rpc_errors_map_at_one_seam_with_the_peer_and_the_reason(
    code: grpc.StatusCode, cls: type
) -> None:
    exc = grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="")
    err = error_for_rpc("satellite SAT-1: set_limit", exc)
    assert type(err) is cls
    assert str(err) == f"satellite SAT-1: set_limit: {code.name}: no details"


# ------------------------------------------------------------------ pki


def test_pki_init_names_the_serial_and_keeps_existing_files(tmp_path: Path) -> None:
    written = init_pki(tmp_path, "st", ["SAT-7"])
    assert (tmp_path / "ca.pem") in written and (tmp_path / "main.pem") in written
    cert = x509.load_pem_x509_certificate(satellite_pair(tmp_path, "SAT-7").cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["SAT-7"]
    assert (satellite_pair(tmp_path, "SAT-7").key.stat().st_mode & 0o777) == 0o600
    again = init_pki(tmp_path, "st", ["SAT-7", "SAT-8"])  # adds one, keeps the CA
    pair = satellite_pair(tmp_path, "SAT-8")
    assert again == [pair.cert, pair.key]


def test_pki_cli_creates_the_files(tmp_path: Path) -> None:
    from chargeport_cli.cli import main

    assert (
        main(["pki", "init", "--dir", str(tmp_path), "--station", "st", "--satellite", "S1"]) == 0
    )
    assert satellite_pair(tmp_path, "S1").cert.exists()
    assert (
        main(["pki", "init", "--dir", str(tmp_path), "--station", "st", "--satellite", "a_b"]) == 2
    )
