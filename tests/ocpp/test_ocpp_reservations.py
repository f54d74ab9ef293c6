"""Reservations persisted in SQLite (OCPP 1.6 section 5.13): they survive a main restart,
expire into ReservationEnd / Available, and only their id tag may use the connector."""

from __future__ import annotations

import time
from pathlib import Path

from ocpp.v16 import call
from ocpp_station_fixture import make_ports, running_station, until

from main_node.ocpp.db import format_datetime
from simulation.csms import CentralSystem

FAR = "2099-01-01T00:00:00Z"
FAR_S = 4070908800.0


async def test_reservation_survives_a_main_restart_and_is_redeemed_ocpp16_5_13(
    tmp_path: Path,
) -> None:
    """The restarted main places the stored reservation on the port again; the reserved tag
    redeems it (StartTransaction.reservationId) and it is gone afterwards."""
    db = tmp_path / "db.sqlite"
    async with CentralSystem() as csms:
        async with running_station(db, csms.url) as station:
            await csms.wait_for(lambda: len(csms.statuses) >= 5)
            assert await csms.reserve_now(4, "TAG-OK", 42, FAR) == "Accepted"
            await csms.wait_for(lambda: csms.last_status(4) == "Reserved")
            assert [r.reservation_id for r in station.session.reservations.all()] == [42]
        csms.statuses.clear()
        fresh = make_ports()
        async with running_station(db, csms.url, fresh) as station:
            await csms.wait_for(lambda: csms.last_status(4) == "Reserved")
            assert ("reserve", (42, "TAG-OK", FAR_S)) in fresh[4].calls
            assert await csms.reserve_now(4, "OTHER", 43, FAR) == "Occupied"
            assert await csms.remote_start("OTHER", connector_id=4) == "Rejected"
            assert await csms.remote_start("TAG-OK", connector_id=4) == "Accepted"
            await until(lambda: ("authorize", ("TAG-OK", 42)) in fresh[4].calls)
            fresh[4].plug_in()
            await csms.wait_for(lambda: csms.actions("StartTransaction"))
            assert csms.actions("StartTransaction")[0]["reservation_id"] == 42
            await until(lambda: not station.session.reservations.all())


async def test_cancel_reservation_after_restart_ocpp16_5_3(tmp_path: Path) -> None:
    """CancelReservation finds a reservation made before the restart; unknown ids are Rejected."""
    db = tmp_path / "db.sqlite"
    async with CentralSystem() as csms:
        async with running_station(db, csms.url):
            await csms.wait_for(lambda: len(csms.statuses) >= 5)
            assert await csms.reserve_now(2, "TAG-OK", 7, FAR) == "Accepted"
        csms.statuses.clear()  # what follows must come from the restarted station
        fresh = make_ports()
        async with running_station(db, csms.url, fresh) as station:
            await csms.wait_for(lambda: csms.connects == 2)  # not the closing first connection
            await csms.wait_for(lambda: ("reserve", (7, "TAG-OK", FAR_S)) in fresh[2].calls)
            await csms.wait_for(lambda: csms.last_status(2) == "Reserved")
            assert (await csms.send(call.CancelReservation(reservation_id=7))).status == "Accepted"
            await csms.wait_for(lambda: csms.last_status(2) == "Available")
            assert ("cancel_reservation", (7,)) in fresh[2].calls
            assert station.session.reservations.all() == []
            result = await csms.send(call.CancelReservation(reservation_id=7))
            assert result.status == "Rejected"


async def test_reservation_expiry_ends_it_and_the_connector_is_available_ocpp16_5_13(
    tmp_path: Path,
) -> None:
    """At expiryDate the reservation ends (the port's ReservationEnd) and the connector goes
    back to Available; another id tag may then reserve it."""
    ports = make_ports()
    async with (
        CentralSystem() as csms,
        running_station(tmp_path / "db.sqlite", csms.url, ports) as station,
    ):
        await csms.wait_for(lambda: len(csms.statuses) >= 5)
        soon = format_datetime(time.time() + 0.3)
        assert await csms.reserve_now(3, "TAG-OK", 5, soon) == "Accepted"
        await csms.wait_for(lambda: csms.last_status(3) == "Reserved")
        await csms.wait_for(lambda: csms.last_status(3) == "Available")
        assert ("cancel_reservation", (5,)) in ports[3].calls
        assert station.session.reservations.all() == []
        assert await csms.reserve_now(3, "OTHER", 6, FAR) == "Accepted"


async def test_reserve_now_replaces_same_id_and_refuses_past_expiry_ocpp16_5_13(
    tmp_path: Path,
) -> None:
    """A known reservationId is replaced (here moved to another connector); an expiry in the
    past is Rejected."""
    ports = make_ports()
    async with (
        CentralSystem() as csms,
        running_station(tmp_path / "db.sqlite", csms.url, ports) as station,
    ):
        await csms.wait_for(lambda: len(csms.statuses) >= 5)
        assert await csms.reserve_now(2, "TAG-OK", 9, FAR) == "Accepted"
        assert await csms.reserve_now(3, "TAG-OK", 9, FAR) == "Accepted"
        await csms.wait_for(
            lambda: csms.last_status(2) == "Available" and csms.last_status(3) == "Reserved"
        )
        assert [(r.reservation_id, r.connector_id) for r in station.session.reservations.all()] == [
            (9, 3)
        ]
        assert await csms.reserve_now(3, "TAG-OK", 9, FAR) == "Accepted"  # same place again
        await until(lambda: ("reserve", (9, "TAG-OK", FAR_S)) in ports[3].calls[-1:])
        assert len(station.session.reservations.all()) == 1
        assert await csms.reserve_now(4, "TAG-OK", 10, "2001-01-01T00:00:00Z") == "Rejected"
