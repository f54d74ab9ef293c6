"""SecurityEventNotification (OCA "Improved security for OCPP 1.6-J", edition 3, Appendix 1):
every `chargeport.security` event of the main goes to the CSMS, in order, also when it was
logged on a worker thread or while the station was offline or restarted."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ocpp.v16 import call
from ocpp_station_fixture import running_station, until

from chargeport.security_log import FIRMWARE_DOWNGRADE_REFUSED, security_event
from simulation.csms import CentralSystem
from system_aggregator.fake import FakeStationSystem

PASSWORD = "0123456789abcdef-pw"


async def test_events_of_any_module_and_thread_are_forwarded_in_order(tmp_path: Path) -> None:
    """An event the aggregator logs (here: a refused downgrade), also from a worker thread,
    becomes a SecurityEventNotification with its kind and detail."""
    async with (
        CentralSystem() as csms,
        running_station(tmp_path / "db.sqlite", csms.url) as station,
    ):
        await until(lambda: station.session.online)
        security_event(FIRMWARE_DOWNGRADE_REFUSED, "station: 0.9.0 is older than 1.0.0")
        await asyncio.to_thread(security_event, "InvalidMessages", "from a worker thread")
        await csms.wait_for(lambda: "InvalidMessages" in csms.security_events())
        sent = csms.actions("SecurityEventNotification")
        kinds = [p["type"] for p in sent]
        assert kinds.index(FIRMWARE_DOWNGRADE_REFUSED) < kinds.index("InvalidMessages")
        downgrade = sent[kinds.index(FIRMWARE_DOWNGRADE_REFUSED)]
        assert downgrade["tech_info"] == "station: 0.9.0 is older than 1.0.0"


async def test_events_survive_a_restart_of_the_main_while_offline(tmp_path: Path) -> None:
    """Refused (wrong password), the main stops; the next run on the same state dir delivers
    the refusal it journaled."""
    db = tmp_path / "db.sqlite"
    async with CentralSystem(password="the-right-password-42") as csms:
        async with running_station(db, csms.url, basic_auth_password=PASSWORD) as station:
            journal = station.session.security.events
            await until(
                lambda: any(k == "FailedToAuthenticateAtCentralSystem" for k, _, _ in journal.all())
            )
        csms.password = PASSWORD
        async with running_station(db, csms.url, basic_auth_password=PASSWORD) as station:
            await csms.wait_for(lambda: len(csms.security_events()) >= 3)
            assert csms.security_events() == [  # both runs' events, in the order they happened
                "StartupOfTheDevice",
                "FailedToAuthenticateAtCentralSystem",
                "StartupOfTheDevice",
            ]


async def test_an_accepted_reset_is_reported_as_reset_or_reboot(tmp_path: Path) -> None:
    async with (
        CentralSystem() as csms,
        running_station(tmp_path / "db.sqlite", csms.url, system=FakeStationSystem()) as station,
    ):
        await until(lambda: station.session.online)
        assert (await csms.send(call.Reset(type="Soft"))).status == "Accepted"
        await csms.wait_for(lambda: "ResetOrReboot" in csms.security_events())
