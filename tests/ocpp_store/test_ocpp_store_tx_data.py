"""StopTransaction transactionData readings on disk (OCPP 1.6 section 6.49, key 9.1.27)."""

from __future__ import annotations

from pathlib import Path

from main_node.ocpp.db import open_db
from main_node.ocpp.tx_data import MAX_READINGS, TxDataStore


def _entry(n: int) -> dict[str, object]:
    return {"timestamp": f"t{n}", "sampled_value": [{"value": str(n)}]}


def test_readings_survive_reopen_and_take_empties_ocpp16_6_49(tmp_path: Path) -> None:
    """Readings kept for a transaction outlive a restart; `take` hands them over once."""
    store = TxDataStore(open_db(tmp_path / "s.db"))
    store.add("a", _entry(1))
    store.add("b", _entry(9))
    store.add("a", _entry(2))
    reopened = TxDataStore(open_db(tmp_path / "s.db"))
    assert reopened.take("a") == [
        {"timestamp": "t1", "sampledValue": [{"value": "1"}]},
        {"timestamp": "t2", "sampledValue": [{"value": "2"}]},
    ]
    assert reopened.take("a") == []
    assert reopened.count("b") == 1


def test_readings_are_bounded_keeping_transaction_begin_ocpp16_9_1_27(tmp_path: Path) -> None:
    """Past the bound the oldest periodic reading goes; the first (Begin) stays."""
    assert MAX_READINGS >= 1440  # a day of readings at the default 60 s
    store = TxDataStore(open_db(tmp_path / "s.db"), max_readings=10)
    for n in range(15):
        store.add("a", _entry(n))
    taken = store.take("a")
    assert len(taken) == 10
    assert [e["timestamp"] for e in taken[:2]] == ["t0", "t6"]
    assert taken[-1]["timestamp"] == "t14"
