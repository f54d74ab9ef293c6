"""OCPP 2.0.1: a main restart mid-transaction (E, journal) and IdTokens presented at a gun (C01,
C12 local list, offline rules), against a real 2.0.1 CSMS."""

from __future__ import annotations

from pathlib import Path

from ocpp.v201 import call
from ocpp201_kit import make_ports, running_station, until

from chargeport.fake_port import FakePort
from chargeport.port import (
    LinkChanged,
    PortInfo,
    SessionEvent,
    SessionEventType,
    StopReason,
    TransactionData,
)
from simulation.csms201 import CentralSystem201


def _present(port: FakePort, tag: str) -> None:
    """An RFID card at the gun's reader: the port asks for authorization with the tag."""
    port.emit(SessionEvent(SessionEventType.AUTH_REQUIRED, "s", TransactionData("", tag, 0.0)))


async def test_main_restart_ends_the_local_transaction_and_continues_the_satellite_one(
    tmp_path: Path,
) -> None:
    """The local board restarts with the main: its transaction ended (PowerLoss). A satellite
    kept charging: its transaction goes on under the same id, seqNo continuing."""
    db = tmp_path / "db.sqlite"
    ports = make_ports()
    async with CentralSystem201() as csms:
        async with running_station(db, csms.url, ports) as station:
            await csms.wait_for(lambda: len(csms.statuses) >= 4)
            for evse in (1, 2):
                ports[evse].meter(500.0)
                ports[evse].plug_in()
                ports[evse].ev_ready()
                await csms.request_start("TAG-OK", evse_id=evse)
            await csms.wait_for(lambda: csms.transaction_on(1) and csms.transaction_on(2))
            ports[1].meter(700.0)
            # (delivery is at least once: a kill between send and mark would repeat the entry)
            await until(lambda: station.session.journal.pending_count() == 0)
        # the main (and with it the local board) restarts; the satellite's port lives on
        restarted = make_ports()
        restarted[2] = ports[2]
        async with running_station(db, csms.url, restarted):
            local = csms.transaction_on(1)
            assert local is not None
            await csms.wait_for(lambda: local.ended)
            assert local.stopped_reason == "PowerLoss"
            sat = csms.transaction_on(2)
            assert sat is not None and not sat.ended
            ports[2].unplug()
            await csms.wait_for(lambda: sat.ended)
            assert [e["seq_no"] for e in sat.events] == list(range(len(sat.events)))
            assert len(csms.actions("BootNotification")) == 2


async def test_presented_token_authorized_by_the_csms_starts_a_transaction_c01(
    tmp_path: Path,
) -> None:
    ports = make_ports()
    async with (
        CentralSystem201(accepted_tags=["CARD-1"]) as csms,
        running_station(tmp_path / "db.sqlite", csms.url, ports),
    ):
        await csms.wait_for(lambda: len(csms.statuses) >= 4)
        ports[3].plug_in()
        ports[3].ev_ready()
        _present(ports[3], "CARD-X")  # unknown to the CSMS: Invalid, the gun stays locked
        await csms.wait_for(lambda: csms.actions("Authorize"))
        _present(ports[3], "CARD-1")
        tx = await csms.wait_for(lambda: csms.transaction_on(3))
        assert tx.id_token == "CARD-1"
        assert tx.events[0]["id_token"] == {"id_token": "CARD-1", "type": "ISO14443"}
        assert [a["id_token"]["id_token"] for a in csms.actions("Authorize")] == [
            "CARD-X",
            "CARD-1",
        ]
        assert [c for c in ports[3].calls if c[0] == "authorize"] == [
            ("authorize", ("CARD-1", None))
        ]


async def test_local_list_token_charges_while_offline_c12_d01(tmp_path: Path) -> None:
    ports = {1: FakePort(PortInfo(1, "SER-1", "1.0.0", 32.0, 3))}
    csms = CentralSystem201()
    await csms.start()
    try:
        async with running_station(tmp_path / "db.sqlite", csms.url, ports) as station:
            await csms.wait_for(lambda: len(csms.statuses) >= 1)
            result = await csms.send(
                call.SendLocalList(
                    version_number=1,
                    update_type="Full",
                    local_authorization_list=[
                        {
                            "id_token": {"id_token": "LIST-1", "type": "ISO14443"},
                            "id_token_info": {"status": "Accepted"},
                        },
                        {
                            "id_token": {"id_token": "LIST-2", "type": "ISO14443"},
                            "id_token_info": {"status": "Blocked"},
                        },
                    ],
                )
            )
            assert result.status == "Accepted"
            await csms.stop()
            await until(lambda: not station.session.online)
            ports[1].plug_in()
            ports[1].ev_ready()
            _present(ports[1], "LIST-2")  # Blocked on the list: refused even offline
            _present(ports[1], "NOBODY")  # unknown, OfflineTxForUnknownIdEnabled false
            _present(ports[1], "LIST-1")
            await until(lambda: station.session.transaction_id(1) is not None)
            assert [c[1][0] for c in ports[1].calls if c[0] == "authorize"] == ["LIST-1"]
    finally:
        await csms.stop()


async def test_token_refused_in_the_transaction_event_stops_charging_e05(
    tmp_path: Path,
) -> None:
    """E05 / StopTxOnInvalidId: a remote start is not authorized first (AuthorizeRemoteStart
    false); the CSMS's idTokenInfo on the TransactionEvent refuses the token: the gun stops."""
    ports = make_ports(2)
    async with (
        CentralSystem201(accepted_tags=["SOMEONE-ELSE"]) as csms,
        running_station(tmp_path / "db.sqlite", csms.url, ports),
    ):
        await csms.wait_for(lambda: len(csms.statuses) >= 2)
        ports[2].plug_in()
        ports[2].ev_ready()
        await csms.request_start("STOLEN", evse_id=2)
        tx = await csms.wait_for(lambda: csms.transaction_on(2))
        await csms.wait_for(lambda: tx.ended)
        assert tx.stopped_reason == "DeAuthorized"
        assert ("stop_transaction", (StopReason.DE_AUTHORIZED,)) in ports[2].calls


async def test_a_reserved_evse_takes_only_its_token_h01_h03(tmp_path: Path) -> None:
    ports = make_ports(2)
    async with (
        CentralSystem201(accepted_tags=["MINE", "OTHER"]) as csms,
        running_station(tmp_path / "db.sqlite", csms.url, ports),
    ):
        await csms.wait_for(lambda: len(csms.statuses) >= 2)
        result = await csms.send(
            call.ReserveNow(
                id=77,
                expiry_date_time="2099-01-01T00:00:00Z",
                id_token={"id_token": "MINE", "type": "ISO14443"},
                evse_id=2,
            )
        )
        assert result.status == "Accepted"
        await csms.wait_for(lambda: csms.last_status(2) == "Reserved")
        refused = await csms.request_start("OTHER", evse_id=2)
        assert refused.status == "Rejected"
        ports[2].plug_in()
        ports[2].ev_ready()
        _present(ports[2], "OTHER")
        _present(ports[2], "MINE")
        tx = await csms.wait_for(lambda: csms.transaction_on(2))
        assert tx.id_token == "MINE"
        assert tx.events[0]["reservation_id"] == 77
        assert [c[1] for c in ports[2].calls if c[0] == "authorize"] == [("MINE", 77)]


async def test_a_reservation_for_no_evse_keeps_one_free_for_its_token_h01(
    tmp_path: Path,
) -> None:
    ports = make_ports(2)
    async with (
        CentralSystem201(accepted_tags=["MINE", "OTHER", "THIRD"]) as csms,
        running_station(tmp_path / "db.sqlite", csms.url, ports),
    ):
        await csms.wait_for(lambda: len(csms.statuses) >= 2)
        result = await csms.send(
            call.ReserveNow(
                id=5,
                expiry_date_time="2099-01-01T00:00:00Z",
                id_token={"id_token": "MINE", "type": "ISO14443"},
            )
        )
        assert result.status == "Accepted"
        assert (await csms.request_start("OTHER", evse_id=1)).status == "Accepted"
        ports[1].plug_in()
        ports[1].ev_ready()
        await csms.wait_for(lambda: csms.transaction_on(1))
        # EVSE 2 is now the last free one: kept for the reservation
        assert (await csms.request_start("THIRD", evse_id=2)).status == "Rejected"
        assert (await csms.request_start("MINE", evse_id=2)).status == "Accepted"
        ports[2].plug_in()
        ports[2].ev_ready()
        tx = await csms.wait_for(lambda: csms.transaction_on(2))
        assert tx.events[0]["reservation_id"] == 5


async def test_a_satellite_that_restarted_ends_only_its_own_transaction(tmp_path: Path) -> None:
    """A new boot id behind EVSE 2 (the satellite restarted): its transaction ended there
    (PowerLoss, at its last reading); EVSE 3 charges on. The same boot id again is a resume."""
    ports = make_ports(3)
    async with (
        CentralSystem201() as csms,
        running_station(tmp_path / "db.sqlite", csms.url, ports),
    ):
        await csms.wait_for(lambda: len(csms.statuses) >= 3)
        for evse in (2, 3):
            ports[evse].emit(LinkChanged(True, boot_id=f"boot-{evse}-a"))
            ports[evse].plug_in()
            ports[evse].ev_ready()
            await csms.request_start("TAG-OK", evse_id=evse)
        await csms.wait_for(lambda: csms.transaction_on(2) and csms.transaction_on(3))
        ports[2].meter(900.0)
        ports[3].emit(LinkChanged(False))
        ports[3].emit(LinkChanged(True, boot_id="boot-3-a"))  # a blip: resumed, same boot
        await csms.wait_for(
            lambda: (3, "Unavailable") in csms.statuses and csms.last_status(3) == "Occupied"
        )
        ports[2].emit(LinkChanged(False))
        ports[2].emit(LinkChanged(True, boot_id="boot-2-b"))
        lost = csms.transaction_on(2)
        assert lost is not None
        await csms.wait_for(lambda: lost.ended)
        assert lost.stopped_reason == "PowerLoss"
        assert lost.energy_wh("Ended") == 900.0
        running = csms.transaction_on(3)
        assert running is not None and not running.ended
