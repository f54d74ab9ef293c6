"""OCMF-signed readings across boards, end to end (issue 16): a main and a satellite as real
processes, both with `port.meter_signing = true`, the test's own OCPP 1.6 central system.

Every record the station sends is checked with the independent `pyocmf`: it must verify with the
key of the board whose gun it belongs to (never another board's), carry TX=B / an end code in the
Transaction.Begin / .End SampledValue (format SignedData, OCPP 1.6 7.45), and its RV must be the
meterStart / meterStop of that transaction. A record checked against the other board's key fails.
"""

from __future__ import annotations

import decimal
import warnings
from pathlib import Path

import pytest
from pyocmf import OCMF, SpecWarning
from stationkit import running_station

from evse.meter_key import KEY_FILE, load_signer
from evse.ocmf import public_key_hex
from simulation.csms import Transaction

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

TAG = "TAG-OK"


def _short_charge(path: Path) -> Path:
    path.write_text(f"plugin\nauth {TAG}\nwait_pwm\ndraw_power_regulated 16,3\nsleep 3\nunplug\n")
    return path


def _ocmf(text: str) -> OCMF:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpecWarning)  # the sim's clock is not synchronized
        return OCMF.from_string(text)


def _kwh(wh: int) -> decimal.Decimal:
    return decimal.Decimal(wh) / 1000


async def test_each_gun_sends_its_own_boards_signed_begin_and_end(tmp_path: Path) -> None:
    scenarios = {c: _short_charge(tmp_path / f"gun{c}.txt") for c in (1, 2)}
    async with running_station(
        tmp_path / "station",
        satellites=1,
        scenarios=scenarios,
        grace_period_s=10.0,
        link={"keepalive_s": 0.5},
        port={"meter_signing": True},
    ) as rig:

        def both_stopped() -> list[Transaction] | None:
            done = [t for t in rig.csms.transactions.values() if t.meter_stop is not None]
            ok = len(done) == 2 and all(len(t.signed) == 2 for t in done)
            return done if ok else None

        done: list[Transaction] = await rig.wait_csms(both_stopped, within_s=60)
        serial = rig.serials[0]
        keys = {
            1: public_key_hex(load_signer(rig.layout.state_dir / "main")),
            2: public_key_hex(load_signer(rig.layout.state_dir / serial.lower())),
        }
        assert (rig.layout.state_dir / serial.lower() / KEY_FILE).exists()
        assert keys[1] != keys[2]
        # The satellite's key reached the main in the Hello answer.
        assert keys[2] in rig.log_of("main")
        assert rig.csms.last_signed.keys() == {1, 2}
        # The dashboard's state shows each gun's last signed record (the End one).
        state = await rig.wait_state(
            lambda s: all(
                g["signed_meter"] == rig.csms.last_signed[g["connector"]] for g in s["guns"]
            )
        )
        assert len(state["guns"]) == 2
        for tx in done:
            cid, other = tx.connector_id, 3 - tx.connector_id
            assert [c for c, _ in tx.signed] == ["Transaction.Begin", "Transaction.End"]
            begin, end = (_ocmf(text) for _, text in tx.signed)
            assert begin.verify_signature(keys[cid]) and end.verify_signature(keys[cid])
            assert not begin.verify_signature(keys[other])  # never another board's key
            assert begin.payload.RD[0].TX == "B" and end.payload.RD[0].TX in {"E", "L", "R"}
            assert tx.meter_stop is not None and tx.meter_stop > tx.meter_start
            # The signed registers are the transaction's own start and stop (1 Wh resolution).
            rv_begin, rv_end = begin.payload.RD[0].RV, end.payload.RD[0].RV
            assert rv_begin is not None and rv_end is not None
            assert abs(rv_begin - _kwh(tx.meter_start)) <= decimal.Decimal("0.001")
            assert abs(rv_end - _kwh(tx.meter_stop)) <= decimal.Decimal("0.001")
            # Both in StopTransaction's transactionData and in journaled MeterValues.
            stop_signed = [
                sv
                for mv in tx.transaction_data
                for sv in mv["sampled_value"]
                if sv.get("format") == "SignedData"
            ]
            assert [sv["context"] for sv in stop_signed] == ["Transaction.Begin", "Transaction.End"]
            assert all(
                sv["measurand"] == "Energy.Active.Import.Register" and sv["unit"] == "Wh"
                for sv in stop_signed
            )
            mv_signed = [
                sv
                for mv in tx.meter_values
                for sv in mv["sampled_value"]
                if sv.get("format") == "SignedData"
            ]
            assert len(mv_signed) == 2
            assert rig.csms.last_signed[cid] == tx.signed[-1][1]
