"""StopTransaction.req transactionData (OCPP 1.6 section 6.49; StopTxnSampledData 9.1.27,
StopTxnAlignedData 9.1.25): Transaction.Begin, periodic samples, Transaction.End."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ocpp_station_fixture import make_ports, running_station, until

from simulation.csms import CentralSystem


def _readings(entries: list[dict[str, Any]]) -> list[tuple[str, dict[str, float]]]:
    """(context, measurand -> value) per MeterValue element."""
    out = []
    for entry in entries:
        values = entry["sampled_value"]
        contexts = {v["context"] for v in values}
        assert len(contexts) == 1, entry
        out.append((contexts.pop(), {v["measurand"]: float(v["value"]) for v in values}))
    return out


async def test_stop_transaction_carries_begin_samples_and_end_ocpp16_9_1_27(
    tmp_path: Path,
) -> None:
    """Begin at meterStart, Sample.Periodic every MeterValueSampleInterval, End at meterStop,
    each with exactly the StopTxnSampledData measurands."""
    ports = make_ports()
    port = ports[2]
    async with (
        CentralSystem() as csms,
        running_station(tmp_path / "db.sqlite", csms.url, ports),
    ):
        await csms.wait_for(lambda: len(csms.statuses) >= 5)
        wanted = "Energy.Active.Import.Register,Power.Active.Import"
        assert await csms.change_configuration("StopTxnSampledData", wanted) == "Accepted"
        assert await csms.change_configuration("MeterValueSampleInterval", "1") == "Accepted"
        port.meter(1000.0, 0.0)
        await port.authorize("TAG-OK")
        port.plug_in()
        port.ev_ready()
        tx = await csms.wait_for(lambda: next(iter(csms.transactions.values()), None))
        energy = 1000.0
        while len(tx.meter_values) < 3:
            energy += 10.0
            port.meter(energy, 7000.0)
            await asyncio.sleep(0.01)
        port.unplug()
        await csms.wait_for(lambda: tx.meter_stop is not None)
        readings = _readings(tx.transaction_data)
        contexts = [c for c, _ in readings]
        assert contexts[0] == "Transaction.Begin" and contexts[-1] == "Transaction.End"
        assert set(contexts[1:-1]) == {"Sample.Periodic"} and len(contexts) >= 4
        assert all(set(values) == set(wanted.split(",")) for _, values in readings)
        registers = [v["Energy.Active.Import.Register"] for _, v in readings]
        assert registers[0] == tx.meter_start == 1000
        assert registers[-1] == tx.meter_stop == round(energy)
        assert registers == sorted(registers)


async def test_no_stop_txn_measurands_means_no_transaction_data_ocpp16_9_1_27(
    tmp_path: Path,
) -> None:
    """StopTxnSampledData empty (the default): StopTransaction.req has no transactionData."""
    ports = make_ports()
    async with (
        CentralSystem() as csms,
        running_station(tmp_path / "db.sqlite", csms.url, ports) as station,
    ):
        await csms.wait_for(lambda: len(csms.statuses) >= 5)
        await ports[1].authorize("TAG-OK")
        ports[1].plug_in()
        ports[1].meter(50.0)
        ports[1].unplug()
        await csms.wait_for(lambda: csms.actions("StopTransaction"))
        assert "transaction_data" not in csms.actions("StopTransaction")[0]
        await until(lambda: station.session.journal.pending_count() == 0)
