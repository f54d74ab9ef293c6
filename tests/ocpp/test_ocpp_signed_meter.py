"""A board's OCMF records to the CSMS (issue 16): SampledValue format SignedData (OCPP 1.6 7.45
ValueFormat) with context Transaction.Begin / Transaction.End (7.31 ReadingContext), measurand
Energy.Active.Import.Register in Wh, in a journaled MeterValues and in StopTransaction's
transactionData (6.49); behind the vendor key SampledDataSignReadings (1.6 has none)."""

from __future__ import annotations

from pathlib import Path

from ocpp_station_fixture import make_ports, running_station, until

from chargeport.fake_port import FakePort
from chargeport.port import SessionEvent, SessionEventType, StopReason, TransactionData
from simulation.csms import CentralSystem

BEGIN = 'OCMF|{"RD":[{"TX":"B"}]}|{"SD":"00"}'
END = 'OCMF|{"RD":[{"TX":"E"}]}|{"SD":"01"}'


def _run_signed_transaction(port: FakePort, tx_id: str) -> None:
    """The port's events of one transaction whose board signs its begin and end."""
    begin = TransactionData(tx_id, "TAG-OK", 1000.0, signed_meter=BEGIN)
    end = TransactionData(tx_id, "TAG-OK", 1012.0, stop_reason=StopReason.LOCAL, signed_meter=END)
    for kind, tx in (
        (SessionEventType.SESSION_STARTED, None),
        (SessionEventType.TRANSACTION_STARTED, begin),
        (SessionEventType.TRANSACTION_FINISHED, end),
        (SessionEventType.SESSION_FINISHED, None),
    ):
        port.emit(SessionEvent(kind, f"s-{tx_id}", tx))


async def test_signed_begin_and_end_go_as_signed_data_ocpp16_7_45(tmp_path: Path) -> None:
    ports = make_ports()
    async with (
        CentralSystem() as csms,
        running_station(tmp_path / "db.sqlite", csms.url, ports) as station,
    ):
        await csms.wait_for(lambda: len(csms.statuses) >= 5)
        _run_signed_transaction(ports[3], "t1")
        tx = await csms.wait_for(
            lambda: next((t for t in csms.transactions.values() if t.meter_stop), None)
        )
        assert tx.signed == [("Transaction.Begin", BEGIN), ("Transaction.End", END)]
        signed = [
            sv
            for mv in tx.transaction_data
            for sv in mv["sampled_value"]
            if sv.get("format") == "SignedData"
        ]
        assert signed == [
            {
                "value": record,
                "context": context,
                "format": "SignedData",
                "measurand": "Energy.Active.Import.Register",
                "location": "Outlet",
                "unit": "Wh",
            }
            for context, record in tx.signed
        ]
        # Both also in MeterValues of the transaction, before its StopTransaction.
        assert [a for a, _ in csms.messages if a in ("MeterValues", "StopTransaction")] == [
            "MeterValues",
            "MeterValues",
            "StopTransaction",
        ]
        assert csms.last_signed == {3: END}
        await until(lambda: station.session.journal.pending_count() == 0)


async def test_sampled_data_sign_readings_false_sends_no_signed_data(tmp_path: Path) -> None:
    ports = make_ports()
    async with (
        CentralSystem() as csms,
        running_station(tmp_path / "db.sqlite", csms.url, ports),
    ):
        await csms.wait_for(lambda: len(csms.statuses) >= 5)
        assert await csms.change_configuration("SampledDataSignReadings", "false") == "Accepted"
        _run_signed_transaction(ports[2], "t2")
        tx = await csms.wait_for(
            lambda: next((t for t in csms.transactions.values() if t.meter_stop), None)
        )
        assert tx.signed == [] and "transaction_data" not in csms.actions("StopTransaction")[0]
        assert tx.meter_start == 1000 and tx.meter_stop == 1012  # the unsigned values stay
        assert csms.last_signed == {}
