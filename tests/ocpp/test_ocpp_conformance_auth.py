"""Authorization conformance: ConnectionTimeOut on every connector (OCPP 1.6 key 9.1.6) and the
parentIdTag of a reservation (sections 5.13 / 6.34 ReserveNow, 3.5 Authorize)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ocpp_station_fixture import running_station, until

from chargeport.fake_port import FakePort
from chargeport.port import SessionEvent, SessionEventType, TransactionData
from main_node.ocpp.connection_timeout import PendingAuthorizations
from simulation.csms import CentralSystem

FAR = "2099-01-01T00:00:00Z"
WITHDRAW = ("withdraw_authorization", ())


# ---------------------------------------------------------------- the pure core

CASES = [
    # (name, authorized at, timeout, now, due)
    ("before the timeout nothing ends", 100.0, 20.0, 119.0, []),
    ("at ConnectionTimeOut the authorization ends", 100.0, 20.0, 120.0, [3]),
    ("a shorter key applies to a waiting authorization", 100.0, 5.0, 105.0, [3]),
    ("0 switches the timeout off", 100.0, 0.0, 10_000.0, []),
]


@pytest.mark.parametrize(
    ("name", "since", "timeout", "now", "due"), CASES, ids=[c[0] for c in CASES]
)
def test_connection_timeout_core_ocpp16_9_1_6(
    name: str, since: float, timeout: float, now: float, due: list[int]
) -> None:
    """Key 9.1.6: the deadline is the authorization's start plus the key's current value."""
    pending = PendingAuthorizations()
    pending.authorized(3, since)
    assert pending.due(now, timeout) == due
    assert pending.waiting() == ([] if due else [3])


def test_connection_timeout_core_forgets_a_used_authorization_ocpp16_9_1_6() -> None:
    pending = PendingAuthorizations()
    pending.authorized(2, 0.0)
    pending.authorized(4, 5.0)
    assert pending.next_deadline(20.0) == 20.0
    pending.ended(2)
    assert pending.next_deadline(20.0) == 25.0
    assert pending.due(25.0, 20.0) == [4]
    assert pending.next_deadline(20.0) is None


# ---------------------------------------------------------------- ConnectionTimeOut, live


@pytest.mark.parametrize("connector", [1, 4], ids=["local", "satellite"])
async def test_remote_start_without_ev_ends_after_connection_timeout_ocpp16_9_1_6(
    tmp_path: Path, connector: int
) -> None:
    """RemoteStartTransaction with no EV: after ConnectionTimeOut the station withdraws the
    authorization, on the main's connector and on a satellite's alike; an EV arriving later
    starts nothing."""
    async with CentralSystem() as csms:
        async with running_station(tmp_path / "db.sqlite", csms.url) as station:
            await csms.wait_for(lambda: len(csms.statuses) >= 5)
            assert await csms.change_configuration("ConnectionTimeOut", "20") == "Accepted"
            assert await csms.remote_start("TAG-OK", connector_id=connector) == "Accepted"
            port = station.ports[connector]
            await until(lambda: WITHDRAW in port.calls)
            port.plug_in()
            await until(lambda: station.session.status_of(connector).status == "Preparing")
            assert connector not in station.session.active_tx
            assert not csms.actions("StartTransaction")


async def test_connection_timeout_change_applies_at_once_ocpp16_9_1_6(tmp_path: Path) -> None:
    """An authorization waiting under ConnectionTimeOut=3600 ends soon after the key is set to 1
    (scaled: 72 s against the 10 s this test waits)."""
    async with CentralSystem() as csms:
        async with running_station(tmp_path / "db.sqlite", csms.url) as station:
            await csms.wait_for(lambda: len(csms.statuses) >= 5)
            assert await csms.change_configuration("ConnectionTimeOut", "3600") == "Accepted"
            assert await csms.remote_start("TAG-OK", connector_id=3) == "Accepted"
            await until(lambda: station.session.pending_auth.waiting() == [3])
            assert await csms.change_configuration("ConnectionTimeOut", "1") == "Accepted"
            await until(lambda: WITHDRAW in station.ports[3].calls)


async def test_ev_within_connection_timeout_starts_the_transaction_ocpp16_9_1_6(
    tmp_path: Path,
) -> None:
    """An EV that arrives in time uses the authorization; the timeout withdraws nothing."""
    async with CentralSystem() as csms:
        async with running_station(tmp_path / "db.sqlite", csms.url) as station:
            await csms.wait_for(lambda: len(csms.statuses) >= 5)
            assert await csms.change_configuration("ConnectionTimeOut", "5") == "Accepted"
            assert await csms.remote_start("TAG-OK", connector_id=2) == "Accepted"
            port = station.ports[2]
            await until(lambda: ("authorize", ("TAG-OK", None)) in port.calls)
            port.plug_in()
            await csms.wait_for(lambda: csms.actions("StartTransaction"))
            await until(lambda: not station.session.pending_auth.waiting())
            assert WITHDRAW not in port.calls


# ---------------------------------------------------------------- parentIdTag (5.13)


def _present(port: FakePort, tag: str) -> None:
    """An RFID swipe: AuthRequired carrying the presented id tag."""
    sid = port.plug_in()
    port.emit(SessionEvent(SessionEventType.AUTH_REQUIRED, sid, TransactionData("", tag, 0.0)))


async def _reserve_for_parent(csms: CentralSystem, connector: int, rid: int) -> None:
    from ocpp.v16 import call

    result = await csms.send(
        call.ReserveNow(
            connector_id=connector,
            expiry_date=FAR,
            id_tag="PARENT-CARD",
            reservation_id=rid,
            parent_id_tag="FLEET-1",
        )
    )
    assert result.status == "Accepted"
    await csms.wait_for(lambda: csms.last_status(connector) == "Reserved")


@pytest.mark.parametrize("connector", [1, 3], ids=["local", "satellite"])
async def test_child_tag_redeems_a_parent_reservation_via_authorize_ocpp16_5_13(
    tmp_path: Path, connector: int
) -> None:
    """A connector reserved with parentIdTag FLEET-1 takes a child tag the station does not
    know yet: it sends Authorize.req, learns the parent FLEET-1 and starts on the reservation
    (StartTransaction.reservationId)."""
    csms = CentralSystem(accepted_tags=["CHILD-7"], parents={"CHILD-7": "FLEET-1"})
    async with csms:
        async with running_station(tmp_path / "db.sqlite", csms.url) as station:
            await csms.wait_for(lambda: len(csms.statuses) >= 5)
            await _reserve_for_parent(csms, connector, 61)
            _present(station.ports[connector], "CHILD-7")
            await csms.wait_for(lambda: csms.actions("StartTransaction"))
            assert [a["id_tag"] for a in csms.actions("Authorize")] == ["CHILD-7"]
            start = csms.actions("StartTransaction")[0]
            assert (start["connector_id"], start["id_tag"], start["reservation_id"]) == (
                connector,
                "CHILD-7",
                61,
            )
            await until(lambda: not station.session.reservations.all())


async def test_child_tag_parent_from_the_local_list_ocpp16_5_13(tmp_path: Path) -> None:
    """The parent may come from the local authorization list (section 3.5): then even a
    RemoteStartTransaction for the child tag is accepted on the reserved satellite connector."""
    async with CentralSystem(accepted_tags=["CHILD-8"]) as csms:
        async with running_station(tmp_path / "db.sqlite", csms.url) as station:
            await csms.wait_for(lambda: len(csms.statuses) >= 5)
            entry = {
                "id_tag": "CHILD-8",
                "id_tag_info": {"status": "Accepted", "parent_id_tag": "FLEET-1"},
            }
            assert await csms.send_local_list(1, [entry]) == "Accepted"
            await _reserve_for_parent(csms, 4, 62)
            assert await csms.remote_start("CHILD-8", connector_id=4) == "Accepted"
            await until(lambda: ("authorize", ("CHILD-8", 62)) in station.ports[4].calls)
            station.ports[4].plug_in()
            await csms.wait_for(lambda: csms.actions("StartTransaction"))
            assert csms.actions("StartTransaction")[0]["reservation_id"] == 62


async def test_tag_of_another_parent_is_refused_on_the_reservation_ocpp16_5_13(
    tmp_path: Path,
) -> None:
    """A tag whose parent is not the reservation's does not start on it; the reservation
    stays."""
    csms = CentralSystem(accepted_tags=["CHILD-9"], parents={"CHILD-9": "FLEET-2"})
    async with csms:
        async with running_station(tmp_path / "db.sqlite", csms.url) as station:
            await csms.wait_for(lambda: len(csms.statuses) >= 5)
            await _reserve_for_parent(csms, 3, 63)
            # Its parent is learnt by Authorize.req, and the reservation's wins: a remote
            # start for it is refused outright, a swipe authorizes nothing.
            _present(station.ports[3], "CHILD-9")
            await csms.wait_for(lambda: csms.actions("Authorize"))
            await until(lambda: station.session.local_parent_id_tag("CHILD-9") == "FLEET-2")
            assert await csms.remote_start("CHILD-9", connector_id=3) == "Rejected"
            assert not [c for c in station.ports[3].calls if c[0] == "authorize"]
            assert [r.reservation_id for r in station.session.reservations.all()] == [63]
