"""Reservations: OCPP 1.6 §5.13 ReserveNow, §5.3 CancelReservation, persisted with expiry."""

from __future__ import annotations

from pathlib import Path

import pytest

from main_node.ocpp.db import format_datetime, open_db
from main_node.ocpp.reservations import (
    Reservation,
    ReservationStore,
    decide_cancel,
    decide_reserve_now,
    decide_start,
)

T0 = 1_700_000_000.0
LATER = T0 + 600
FREE = {0: "Available", 1: "Available", 2: "Available", 3: "Available"}


def _with(**changes: str) -> dict[int, str]:
    return {**FREE, **{int(k[1:]): v for k, v in changes.items()}}


R1 = Reservation(1, 1, "TAG", None, LATER)
R0 = Reservation(5, 0, "TAG0", None, LATER)


@pytest.mark.parametrize(
    ("connector", "expiry", "rid", "statuses", "held", "zero", "status"),
    [
        (1, LATER, 9, FREE, [], False, "Accepted"),
        (1, T0, 9, FREE, [], False, "Rejected"),  # already expired
        (4, LATER, 9, FREE, [], False, "Rejected"),  # no such connector
        (1, LATER, 9, _with(c1="Charging"), [], False, "Occupied"),
        (1, LATER, 9, _with(c1="Preparing"), [], False, "Occupied"),
        (1, LATER, 9, _with(c1="Faulted"), [], False, "Faulted"),
        (1, LATER, 9, _with(c1="Unavailable"), [], False, "Unavailable"),
        (1, LATER, 9, _with(c0="Unavailable"), [], False, "Unavailable"),  # the charge point
        (1, LATER, 9, _with(c0="Faulted"), [], False, "Faulted"),
        # Reserved for another (or the same) idTag: Occupied; the same reservationId replaces.
        (1, LATER, 9, _with(c1="Reserved"), [R1], False, "Occupied"),
        (1, LATER, 1, _with(c1="Reserved"), [R1], False, "Accepted"),
        (1, LATER, 9, _with(c1="Reserved"), [Reservation(1, 1, "T", None, T0)], False, "Accepted"),
        # Connector 0 only with ReserveConnectorZeroSupported.
        (0, LATER, 9, FREE, [], False, "Rejected"),
        (0, LATER, 9, FREE, [], True, "Accepted"),
        (0, LATER, 9, _with(c1="Charging", c2="Charging", c3="Charging"), [], True, "Occupied"),
        (0, LATER, 9, _with(c1="Faulted", c2="Faulted", c3="Faulted"), [], True, "Faulted"),
        (0, LATER, 9, _with(c1="Faulted", c2="Unavailable", c3="Faulted"), [], True, "Unavailable"),
        # Each connector-0 reservation keeps one connector free.
        (1, LATER, 9, _with(c2="Charging", c3="Charging"), [R0], True, "Occupied"),
        (1, LATER, 9, _with(c3="Charging"), [R0], True, "Accepted"),
        (0, LATER, 9, _with(c2="Charging", c3="Charging"), [R0], True, "Occupied"),
    ],
)
def test_reserve_now_5_13(
    connector: int,
    expiry: float,
    rid: int,
    statuses: dict[int, str],
    held: list[Reservation],
    zero: bool,
    status: str,
) -> None:
    """§5.13 ReserveNow.conf statuses."""
    got = decide_reserve_now(
        connector, expiry, rid, statuses, held, T0, connector_zero_supported=zero
    )
    assert got == status


def test_reservations_disabled_are_rejected_5_13() -> None:
    """§5.13: a charge point configured not to accept reservations answers Rejected."""
    assert decide_reserve_now(1, LATER, 1, FREE, [], T0, enabled=False) == "Rejected"


@pytest.mark.parametrize(
    ("rid", "held", "status"),
    [
        (1, [R1], "Accepted"),
        (2, [R1], "Rejected"),
        (1, [Reservation(1, 1, "T", None, T0)], "Rejected"),
    ],
)
def test_cancel_reservation_5_3(rid: int, held: list[Reservation], status: str) -> None:
    """§5.3 CancelReservation: Accepted for a live reservation, else Rejected."""
    assert decide_cancel(rid, held, T0) == status


@pytest.mark.parametrize(
    ("connector", "tag", "parent", "statuses", "held", "allowed", "used"),
    [
        (1, "TAG", None, FREE, [R1], True, 1),
        (1, "tag", None, FREE, [R1], True, 1),  # CiString
        (1, "OTHER", None, FREE, [R1], False, None),
        (1, "OTHER", "P", FREE, [Reservation(1, 1, "TAG", "P", LATER)], True, 1),  # parent
        (2, "OTHER", None, FREE, [R1], True, None),
        (2, "TAG0", None, FREE, [R0], True, 5),
        (2, "OTHER", None, _with(c1="Charging", c3="Charging"), [R0], False, None),
        (2, "OTHER", None, _with(c1="Charging"), [R0], True, None),
    ],
)
def test_start_on_reserved_connector_5_13(
    connector: int,
    tag: str,
    parent: str | None,
    statuses: dict[int, str],
    held: list[Reservation],
    allowed: bool,
    used: int | None,
) -> None:
    """§5.13: a reserved connector charges only for the reservation's idTag or parent idTag."""
    ok, reservation = decide_start(connector, tag, parent, statuses, held, T0)
    assert (ok, None if reservation is None else reservation.reservation_id) == (allowed, used)


def test_store_persists_expires_and_consumes(tmp_path: Path) -> None:
    """Reservations survive a restart, expire at expiryDate and are used up by a start."""
    path = tmp_path / "s.db"
    store = ReservationStore(open_db(path))
    assert store.reserve_now(1, format_datetime(LATER), "TAG", 1, None, FREE, T0) == "Accepted"
    assert store.reserve_now(2, LATER + 60, "X", 2, None, FREE, T0) == "Accepted"
    assert store.reserve_now(2, "not a date", "X", 3, None, FREE, T0) == "Rejected"
    store = ReservationStore(open_db(path))
    assert store.for_connector(1, T0) == Reservation(1, 1, "TAG", None, LATER)
    assert store.reserved_connectors(T0) == {1, 2}
    assert store.next_expiry() == LATER
    assert store.start(1, "TAG", None, FREE, T0) == (True, Reservation(1, 1, "TAG", None, LATER))
    assert store.for_connector(1, T0) is None
    assert [r.reservation_id for r in store.expire(LATER + 60)] == [2]
    assert store.all() == []


def test_store_replace_and_cancel_5_13(tmp_path: Path) -> None:
    """§5.13 same reservationId replaces; §5.3 cancel removes."""
    store = ReservationStore(open_db(tmp_path / "s.db"))
    store.reserve_now(1, LATER, "A", 7, None, FREE, T0)
    assert store.reserve_now(3, LATER, "B", 7, None, _with(c1="Reserved"), T0) == "Accepted"
    assert [(r.connector_id, r.id_tag) for r in store.all()] == [(3, "B")]
    assert store.cancel(7, T0) == "Accepted"
    assert store.cancel(7, T0) == "Rejected"
