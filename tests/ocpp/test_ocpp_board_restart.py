"""A satellite that restarts while the main is down too: its transaction is closed exactly once.

The main remembers the boot id behind each connector. Re-linked after its own restart to a
board with a new boot id, it knows the board's transactions are gone (StopTransaction, reason
PowerLoss, OCPP 1.6 section 6.49); with the same boot id the board's ring replays their real end.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ocpp_station_fixture import make_ports, running_station, until

from chargeport.port import LinkChanged
from simulation.csms import CentralSystem


@pytest.mark.parametrize(
    ("boot_after", "stops"), [("boot-2", ["PowerLoss"]), ("boot-1", [])], ids=["new", "same"]
)
async def test_board_restarted_while_main_down_closes_its_transaction_once_ocpp16_6_49(
    tmp_path: Path, boot_after: str, stops: list[str]
) -> None:
    db = tmp_path / "db.sqlite"
    csms = CentralSystem()
    await csms.start()
    try:
        ports = make_ports(2)
        async with running_station(db, csms.url, ports) as station:
            await csms.wait_for(lambda: len(csms.statuses) >= 3)
            ports[2].emit(LinkChanged(connected=True, boot_id="boot-1"))
            await ports[2].authorize("TAG-OK")
            ports[2].plug_in()
            ports[2].meter(250.0)
            await csms.wait_for(lambda: len(csms.actions("StartTransaction")) == 1)
            await until(lambda: station.session.journal.pending_count() == 0)
        # The main was down; the board comes back (a fresh port: no transaction running).
        restarted = make_ports(2)
        async with running_station(db, csms.url, restarted) as station:
            await until(lambda: 2 in station.session.trackers)  # subscribed to the port
            restarted[2].emit(LinkChanged(connected=True, boot_id=boot_after))
            restarted[2].emit(LinkChanged(connected=True, boot_id=boot_after))  # no repeat
            await until(lambda: station.session.journal.pending_count() == 0)
            if stops:
                await csms.wait_for(lambda: len(csms.actions("StopTransaction")) == len(stops))
        assert [s["reason"] for s in csms.actions("StopTransaction")] == stops
        assert len(csms.actions("StartTransaction")) == 1
    finally:
        await csms.stop()
