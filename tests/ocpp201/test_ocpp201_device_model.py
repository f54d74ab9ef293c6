"""OCPP 2.0.1 device model over real websockets: GetVariables (B06), SetVariables (B05, persisted
across a restart), GetBaseReport -> NotifyReport (B07)."""

from __future__ import annotations

from pathlib import Path

from ocpp.v201 import call
from ocpp201_kit import running_station, until

from simulation.csms201 import CentralSystem201


async def test_get_variables_known_unknown_and_attribute_b06(tmp_path: Path) -> None:
    async with CentralSystem201() as csms, running_station(tmp_path / "db.sqlite", csms.url):
        await csms.wait_for(lambda: len(csms.statuses) >= 4)
        results = await csms.get_variables(
            ("OCPPCommCtrlr", "HeartbeatInterval"),
            ("TxCtrlr", "TxStartPoint"),
            ("NoSuchCtrlr", "Enabled"),
            ("AuthCtrlr", "NoSuchVariable"),
        )
        assert [r["attribute_status"] for r in results] == [
            "Accepted",
            "Accepted",
            "UnknownComponent",
            "UnknownVariable",
        ]
        assert results[0]["attribute_value"] == "300"
        assert results[1]["attribute_value"] == "PowerPathClosed"
        target = await csms.send(
            call.GetVariables(
                get_variable_data=[
                    {
                        "component": {"name": "EVSE", "evse": {"id": 2}},
                        "variable": {"name": "AvailabilityState"},
                    },
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                        "attribute_type": "Target",
                    },
                ]
            )
        )
        evse2, target_attr = target.get_variable_result
        assert (evse2["attribute_status"], evse2["attribute_value"]) == ("Accepted", "Available")
        assert target_attr["attribute_status"] == "NotSupportedAttributeType"


async def test_set_variables_validated_and_persisted_b05(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    async with CentralSystem201() as csms:
        async with running_station(db, csms.url) as station:
            await csms.wait_for(lambda: len(csms.statuses) >= 4)
            assert await csms.set_variable("OCPPCommCtrlr", "HeartbeatInterval", "1") == "Accepted"
            # the new interval applies at once: heartbeats follow (time_scale 0.02)
            await csms.wait_for(lambda: len(csms.actions("Heartbeat")) >= 2)
            assert await csms.set_variable("TxCtrlr", "TxStartPoint", "EVConnected") == "Accepted"
            assert await csms.set_variable("TxCtrlr", "TxStartPoint", "Moon") == "Rejected"
            assert await csms.set_variable("OCPPCommCtrlr", "HeartbeatInterval", "x") == "Rejected"
            assert await csms.set_variable("SecurityCtrlr", "SecurityProfile", "3") == "Rejected"
            assert await csms.set_variable("Nope", "Enabled", "true") == "UnknownComponent"
            assert station.session.points().start == frozenset({"EVConnected"})
        async with running_station(db, csms.url) as station:
            await until(lambda: station.session.connected.is_set())
            results = await csms.get_variables(("TxCtrlr", "TxStartPoint"))
            assert results[0]["attribute_value"] == "EVConnected"


async def test_base_report_arrives_as_numbered_notify_reports_b07(tmp_path: Path) -> None:
    async with CentralSystem201() as csms, running_station(tmp_path / "db.sqlite", csms.url):
        await csms.wait_for(lambda: len(csms.statuses) >= 4)
        result = await csms.send(call.GetBaseReport(request_id=7, report_base="FullInventory"))
        assert result.status == "Accepted"
        reports = await csms.wait_for(
            lambda: (r := csms.actions("NotifyReport")) and not r[-1]["tbc"] and r
        )
        assert [r["seq_no"] for r in reports] == list(range(len(reports)))
        assert all(r["request_id"] == 7 for r in reports)
        items = [d for r in reports for d in r["report_data"]]
        names = {(d["component"]["name"], d["variable"]["name"]) for d in items}
        for component in (
            "OCPPCommCtrlr",
            "TxCtrlr",
            "SampledDataCtrlr",
            "AlignedDataCtrlr",
            "AuthCtrlr",
            "LocalAuthListCtrlr",
            "SmartChargingCtrlr",
            "SecurityCtrlr",
        ):
            assert any(c == component for c, _ in names), component
        evses = {
            (d["component"]["evse"]["id"], d["component"]["evse"].get("connector_id"))
            for d in items
            if d["variable"]["name"] == "AvailabilityState" and "evse" in d["component"]
        }
        assert evses == {(e, None) for e in (1, 2, 3, 4)} | {(e, 1) for e in (1, 2, 3, 4)}
