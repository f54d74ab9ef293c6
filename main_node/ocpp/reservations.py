"""Reservations (OCPP 1.6 §3.11, §5.13 ReserveNow, §5.3 CancelReservation), persisted.

Decisions are pure functions of the connector statuses, the reservations held and `now`;
`ReservationStore` persists what they accept. Connector statuses are ChargePointStatus
strings (§7.7) for connectors 0..N; "Reserved" is read as free, because who holds a
reservation comes from the reservation list itself (a replaced reservation must not block its
own replacement, §5.13).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from main_node.ocpp.db import StoreError, ensure_schema, parse_datetime, transaction

__all__ = [
    "Reservation",
    "ReservationStore",
    "ReserveStatus",
    "decide_cancel",
    "decide_reserve_now",
    "decide_start",
]

ReserveStatus = Literal["Accepted", "Faulted", "Occupied", "Rejected", "Unavailable"]
_BUSY = frozenset({"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing"})


@dataclass(frozen=True)
class Reservation:
    """One accepted reservation; `expiry` in unix seconds."""

    reservation_id: int
    connector_id: int
    id_tag: str
    parent_id_tag: str | None
    expiry: float

    def matches(self, id_tag: str, parent_id_tag: str | None) -> bool:
        """§5.13: the idTag or its parent matches the reservation's idTag or parent idTag."""
        ours = {t.casefold() for t in (self.id_tag, self.parent_id_tag) if t}
        theirs = {t.casefold() for t in (id_tag, parent_id_tag) if t}
        return bool(ours & theirs)


def _live(reservations: Sequence[Reservation], now: float) -> list[Reservation]:
    return [r for r in reservations if r.expiry > now]


def _free(
    statuses: Mapping[int, str], reservations: Sequence[Reservation], exclude: int | None = None
) -> list[int]:
    """Connectors with no session, fault or reservation of their own."""
    held = {r.connector_id for r in reservations}
    return [
        c
        for c, s in statuses.items()
        if c != 0 and c != exclude and s in ("Available", "Reserved") and c not in held
    ]


def decide_reserve_now(
    connector_id: int,
    expiry: float,
    reservation_id: int,
    statuses: Mapping[int, str],
    reservations: Sequence[Reservation],
    now: float,
    *,
    enabled: bool = True,
    connector_zero_supported: bool = False,
) -> ReserveStatus:
    """ReserveNow.conf status (§5.13); a matching reservationId is a replacement."""
    if not enabled or expiry <= now:
        return "Rejected"
    if connector_id != 0 and connector_id not in statuses:
        return "Rejected"
    if connector_id == 0 and not connector_zero_supported:
        return "Rejected"  # §5.13: connector 0 only with ReserveConnectorZeroSupported
    station = statuses.get(0, "Available")
    if station == "Faulted":
        return "Faulted"
    if station == "Unavailable":
        return "Unavailable"
    others = [r for r in _live(reservations, now) if r.reservation_id != reservation_id]
    anywhere = sum(1 for r in others if r.connector_id == 0)
    if connector_id == 0:
        if len(_free(statuses, others)) > anywhere:
            return "Accepted"
        connectors = [s for c, s in statuses.items() if c != 0]
        if connectors and all(s == "Faulted" for s in connectors):
            return "Faulted"
        if connectors and all(s in ("Faulted", "Unavailable") for s in connectors):
            return "Unavailable"
        return "Occupied"
    status = statuses[connector_id]
    if status == "Faulted":
        return "Faulted"
    if status == "Unavailable":
        return "Unavailable"
    if status in _BUSY or any(r.connector_id == connector_id for r in others):
        return "Occupied"
    # Reserving this connector must leave one free connector per connector-0 reservation.
    if anywhere and len(_free(statuses, others, exclude=connector_id)) < anywhere:
        return "Occupied"
    return "Accepted"


def decide_cancel(
    reservation_id: int, reservations: Sequence[Reservation], now: float
) -> Literal["Accepted", "Rejected"]:
    """CancelReservation.conf status (§5.3): Accepted only for a live reservation."""
    if any(r.reservation_id == reservation_id for r in _live(reservations, now)):
        return "Accepted"
    return "Rejected"


def decide_start(
    connector_id: int,
    id_tag: str,
    parent_id_tag: str | None,
    statuses: Mapping[int, str],
    reservations: Sequence[Reservation],
    now: float,
) -> tuple[bool, Reservation | None]:
    """May `id_tag` charge on the connector, and which reservation does that use up (§5.13)."""
    live = _live(reservations, now)
    own = next((r for r in live if r.connector_id == connector_id), None)
    if own is not None:
        return (True, own) if own.matches(id_tag, parent_id_tag) else (False, None)
    anywhere = [r for r in live if r.connector_id == 0]
    mine = next((r for r in anywhere if r.matches(id_tag, parent_id_tag)), None)
    if mine is not None:
        return True, mine
    # §5.13 connector 0: keep one connector free for each reservation held for the station.
    if len(_free(statuses, live, exclude=connector_id)) < len(anywhere):
        return False, None
    return True, None


class ReservationStore:
    """Persisted reservations; the decisions above applied to what is stored."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        ensure_schema(conn)
        self._conn = conn

    def all(self) -> list[Reservation]:
        """Every stored reservation, expired or not, by id."""
        rows = self._conn.execute(
            "SELECT reservation_id, connector_id, id_tag, parent_id_tag, expiry"
            " FROM reservations ORDER BY reservation_id"
        ).fetchall()
        return [Reservation(*row) for row in rows]

    def active(self, now: float) -> list[Reservation]:
        """Reservations not yet expired."""
        return _live(self.all(), now)

    def for_connector(self, connector_id: int, now: float) -> Reservation | None:
        """The live reservation held on `connector_id` (0 = the station), if any."""
        return next((r for r in self.active(now) if r.connector_id == connector_id), None)

    def reserve_now(
        self,
        connector_id: int,
        expiry: float | str,
        id_tag: str,
        reservation_id: int,
        parent_id_tag: str | None,
        statuses: Mapping[int, str],
        now: float,
        *,
        enabled: bool = True,
        connector_zero_supported: bool = False,
    ) -> ReserveStatus:
        """ReserveNow (§5.13): decide, and persist when Accepted (replacing the same id)."""
        try:
            expiry_s = parse_datetime(expiry) if isinstance(expiry, str) else float(expiry)
        except ValueError:
            return "Rejected"
        status = decide_reserve_now(
            connector_id,
            expiry_s,
            reservation_id,
            statuses,
            self.all(),
            now,
            enabled=enabled,
            connector_zero_supported=connector_zero_supported,
        )
        if status == "Accepted":
            with transaction(self._conn):
                self._conn.execute(
                    "INSERT OR REPLACE INTO reservations VALUES (?,?,?,?,?)",
                    (reservation_id, connector_id, id_tag, parent_id_tag, expiry_s),
                )
        return status

    def cancel(self, reservation_id: int, now: float) -> Literal["Accepted", "Rejected"]:
        """CancelReservation (§5.3)."""
        status = decide_cancel(reservation_id, self.all(), now)
        if status == "Accepted":
            self.remove(reservation_id)
        return status

    def start(
        self,
        connector_id: int,
        id_tag: str,
        parent_id_tag: str | None,
        statuses: Mapping[int, str],
        now: float,
    ) -> tuple[bool, Reservation | None]:
        """A transaction wants to start: allowed?, and the reservation it consumed (removed).

        The consumed reservation's id goes into StartTransaction.req reservationId (§6.45).
        """
        allowed, used = decide_start(connector_id, id_tag, parent_id_tag, statuses, self.all(), now)
        if used is not None:
            self.remove(used.reservation_id)
        return allowed, used

    def expire(self, now: float) -> list[Reservation]:
        """Remove and return reservations whose expiry has passed (connector frees up)."""
        gone = [r for r in self.all() if r.expiry <= now]
        for reservation in gone:
            self.remove(reservation.reservation_id)
        return gone

    def next_expiry(self) -> float | None:
        """When the earliest reservation expires, to schedule `expire`."""
        row = self._conn.execute("SELECT MIN(expiry) FROM reservations").fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def remove(self, reservation_id: int) -> None:
        """Delete one reservation (consumed, cancelled, or its connector became unusable)."""
        with transaction(self._conn):
            cursor = self._conn.execute(
                "DELETE FROM reservations WHERE reservation_id = ?", (reservation_id,)
            )
        if cursor.rowcount == 0:
            raise StoreError(f"no reservation {reservation_id}")

    def reserved_connectors(self, now: float) -> Collection[int]:
        """Connectors (not 0) held by a live reservation, for their Reserved status."""
        return {r.connector_id for r in self.active(now) if r.connector_id != 0}
