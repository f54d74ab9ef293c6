"""Transaction journal: OCPP 1.6 §4.10 ordering, retries, crash survival."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from main_node.ocpp.db import StoreError, open_db
from main_node.ocpp.journal import TransactionJournal


def _drain(journal: TransactionJournal, now: float = 0.0) -> list[tuple[str, dict[str, Any]]]:
    """Deliver everything due, answering StartTransaction with transactionId 100 + entry id."""
    out = []
    while (entry := journal.next_due(now)) is not None:
        out.append((entry.action, entry.payload))
        response = {"transactionId": 100 + entry.id} if entry.action == "StartTransaction" else {}
        journal.mark_delivered(entry.id, response)
    return out


def _enqueue_transaction(journal: TransactionJournal, connector: int, tx: str) -> None:
    journal.enqueue("StartTransaction", {"connectorId": connector, "meterStart": 0}, connector, tx)
    journal.enqueue("MeterValues", {"connectorId": connector, "meterValue": []}, connector, tx)
    journal.enqueue("StopTransaction", {"meterStop": 10}, connector, tx)


def test_fifo_across_connectors_4_10(tmp_path: Path) -> None:
    """§4.10: transaction messages are delivered in the order they were generated."""
    journal = TransactionJournal(open_db(tmp_path / "s.db"))
    journal.enqueue("StartTransaction", {"connectorId": 1}, 1, "a")
    journal.enqueue("StartTransaction", {"connectorId": 2}, 2, "b")
    journal.enqueue("StopTransaction", {"meterStop": 5}, 1, "a")
    journal.enqueue("MeterValues", {"connectorId": 2}, 2, "b")
    delivered = _drain(journal)
    assert [a for a, _ in delivered] == [
        "StartTransaction",
        "StartTransaction",
        "StopTransaction",
        "MeterValues",
    ]
    # Stop of "a" got a's id (Start was entry 1), MeterValues of "b" got b's (entry 2).
    assert delivered[2][1]["transactionId"] == 101
    assert delivered[3][1]["transactionId"] == 102
    assert journal.pending_count() == 0
    assert journal.transaction_id("a") == 101
    assert journal.local_tx(102) == "b"


def test_crash_reopen_returns_everything_once_in_order_4_10(tmp_path: Path) -> None:
    """§4.10: a restart loses nothing: reopened, every undelivered message comes once, in order."""
    path = tmp_path / "s.db"
    conn = open_db(path)
    journal = TransactionJournal(conn)
    for i in range(5):
        _enqueue_transaction(journal, 1 + i % 3, f"tx{i}")
    first = journal.next_due(0.0)
    assert first is not None
    journal.mark_delivered(first.id, {"transactionId": 7})
    taken = journal.next_due(0.0)  # sent but never confirmed: the crash hits here
    assert taken is not None
    conn.close()

    journal = TransactionJournal(open_db(path))
    assert journal.pending_count() == 14
    delivered = _drain(journal)
    assert len(delivered) == 14
    assert delivered[0] == (taken.action, taken.payload)
    assert [a for a, _ in delivered[:2]] == ["MeterValues", "StopTransaction"]
    assert all(p.get("transactionId") == 7 for _, p in delivered[:2])
    assert [a for a, _ in delivered[2:5]] == ["StartTransaction", "MeterValues", "StopTransaction"]
    assert _drain(journal) == []


_CHILD = """
import os, signal, sys
from main_node.ocpp.db import open_db
from main_node.ocpp.journal import TransactionJournal
journal = TransactionJournal(open_db(sys.argv[1]))
for i in range(int(sys.argv[2])):
    journal.enqueue("MeterValues", {"connectorId": 1, "seq": i}, 1, None)
print("enqueued", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_kill_9_after_enqueue_loses_nothing_4_10(tmp_path: Path) -> None:
    """§4.10: enqueue returns only once the message is on disk; SIGKILL right after keeps all."""
    path = tmp_path / "s.db"
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), "40"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=60,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert child.stdout.strip() == "enqueued"
    journal = TransactionJournal(open_db(path))
    assert [p["seq"] for _, p in _drain(journal)] == list(range(40))


@pytest.mark.parametrize(
    ("max_attempts", "interval", "fail_times", "expect_next_try"),
    [
        (3, 10.0, [0.0], 10.0),  # first retry after interval * 1
        (3, 10.0, [0.0, 10.0], 30.0),  # second after interval * 2 more
        (5, 4.0, [0.0, 4.0, 12.0], 24.0),  # third after interval * 3 more
    ],
)
def test_retry_interval_times_attempts_4_10(
    tmp_path: Path,
    max_attempts: int,
    interval: float,
    fail_times: list[float],
    expect_next_try: float,
) -> None:
    """§4.10: wait TransactionMessageRetryInterval * attempts before trying again."""
    journal = TransactionJournal(open_db(tmp_path / "s.db"))
    entry_id = journal.enqueue("StartTransaction", {"connectorId": 1}, 1, "a")
    journal.enqueue("MeterValues", {"connectorId": 1}, 1, None)
    for now in fail_times:
        entry = journal.next_due(now)
        assert entry is not None and entry.id == entry_id
        assert journal.mark_failed_attempt(entry_id, now, max_attempts, interval)
    # The head waits, and strict order makes everything behind it wait too.
    assert journal.next_due(expect_next_try - 0.001) is None
    entry = journal.next_due(expect_next_try)
    assert entry is not None and entry.id == entry_id and entry.attempts == len(fail_times)


def test_attempts_exhausted_sets_aside_and_moves_on_4_10(tmp_path: Path) -> None:
    """§4.10: after TransactionMessageAttempts the message is dropped and the next one goes."""
    journal = TransactionJournal(open_db(tmp_path / "s.db"))
    first = journal.enqueue("MeterValues", {"connectorId": 1, "n": 1}, 1, None)
    journal.enqueue("MeterValues", {"connectorId": 1, "n": 2}, 1, None)
    assert journal.mark_failed_attempt(first, 0.0, 2, 1.0) is True
    assert journal.mark_failed_attempt(first, 1.0, 2, 1.0) is False
    assert [e.id for e in journal.failed_entries()] == [first]
    assert [p["n"] for _, p in _drain(journal, 1.0)] == [2]
    assert journal.purge_failed() == 1


def test_dropped_start_takes_its_transaction_along_4_10(tmp_path: Path) -> None:
    """A StartTransaction given up on leaves its Stop without a transactionId: set aside too."""
    journal = TransactionJournal(open_db(tmp_path / "s.db"))
    start = journal.enqueue("StartTransaction", {"connectorId": 1}, 1, "a")
    journal.enqueue("StartTransaction", {"connectorId": 2}, 2, "b")
    journal.enqueue("StopTransaction", {"meterStop": 1}, 1, "a")
    journal.enqueue("StopTransaction", {"meterStop": 2}, 2, "b")
    assert journal.mark_failed_attempt(start, 0.0, 1, 5.0) is False
    assert [p.get("meterStop") for _, p in _drain(journal)] == [None, 2]
    assert len(journal.failed_entries()) == 2


def test_unbound_transaction_blocks_until_bound_4_10(tmp_path: Path) -> None:
    """A Stop whose transactionId is unknown cannot be sent, nor skipped (order)."""
    journal = TransactionJournal(open_db(tmp_path / "s.db"))
    journal.enqueue("StopTransaction", {"meterStop": 1}, 1, "offline-1")
    journal.enqueue("MeterValues", {"connectorId": 2}, 2, None)
    assert journal.next_due(0.0) is None
    journal.bind_transaction("offline-1", 55)
    entry = journal.next_due(0.0)
    assert entry is not None and entry.payload["transactionId"] == 55


@pytest.mark.parametrize(
    ("call", "args"),
    [
        ("mark_delivered", (999, {})),
        ("mark_failed_attempt", (999, 0.0, 3, 1.0)),
    ],
)
def test_unknown_entry_is_an_error(tmp_path: Path, call: str, args: tuple[Any, ...]) -> None:
    """Marking an entry that is not pending is a caller bug, reported as StoreError."""
    journal = TransactionJournal(open_db(tmp_path / "s.db"))
    with pytest.raises(StoreError):
        getattr(journal, call)(*args)


def test_only_transaction_messages_are_journaled(tmp_path: Path) -> None:
    """§4.10 covers StartTransaction, StopTransaction and transaction MeterValues only."""
    journal = TransactionJournal(open_db(tmp_path / "s.db"))
    with pytest.raises(StoreError):
        journal.enqueue("Heartbeat", {}, 0, None)


def test_snake_case_payload_is_stored_in_wire_form(tmp_path: Path) -> None:
    """Payloads built with the ocpp package's snake_case names go out camelCase."""
    journal = TransactionJournal(open_db(tmp_path / "s.db"))
    journal.enqueue(
        "StartTransaction", {"connector_id": 1, "id_tag": "T", "meter_start": 0}, 1, "a"
    )
    entry = journal.next_due(0.0)
    assert entry is not None
    assert entry.payload == {"connectorId": 1, "idTag": "T", "meterStart": 0}


# ------------------------------------------------------------------ property

_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("start"), st.integers(1, 4)),
        st.tuples(st.just("meter"), st.integers(1, 4)),
        st.tuples(st.just("stop"), st.integers(0, 10)),
        st.tuples(st.just("deliver"), st.just(0)),
        st.tuples(st.just("fail"), st.just(0)),
        st.tuples(st.just("advance"), st.integers(1, 30)),
        st.tuples(st.just("reopen"), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_OPS)
def test_random_interleavings_keep_order_4_10(ops: list[tuple[str, int]]) -> None:
    """§4.10 property: whatever the interleaving, delivery follows enqueue order exactly once."""
    attempts_max, interval = 3, 10.0
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "s.db")
        conn = open_db(path)
        journal = TransactionJournal(conn)
        model: list[dict[str, Any]] = []  # pending entries, oldest first
        started: list[str] = []
        bound: dict[str, int] = {}
        delivered: list[int] = []
        now = 0.0
        for op, arg in ops:
            if op == "start":
                tx = f"tx{len(started)}"
                started.append(tx)
                eid = journal.enqueue("StartTransaction", {"connectorId": arg}, arg, tx)
                model.append(
                    {"id": eid, "action": "StartTransaction", "tx": tx, "next": 0.0, "n": 0}
                )
            elif op == "meter":
                eid = journal.enqueue("MeterValues", {"connectorId": arg}, arg, None)
                model.append({"id": eid, "action": "MeterValues", "tx": None, "next": 0.0, "n": 0})
            elif op == "stop" and started:
                tx = started[arg % len(started)]
                eid = journal.enqueue("StopTransaction", {"meterStop": 1}, 1, tx)
                model.append(
                    {"id": eid, "action": "StopTransaction", "tx": tx, "next": 0.0, "n": 0}
                )
            elif op == "advance":
                now += arg
            elif op == "reopen":
                conn.close()
                conn = open_db(path)
                journal = TransactionJournal(conn)
            elif op in ("deliver", "fail"):
                entry = journal.next_due(now)
                head = model[0] if model else None
                if head is None or head["next"] > now:
                    assert entry is None
                    continue
                assert entry is not None and entry.id == head["id"]
                if head["action"] == "StopTransaction":
                    assert entry.payload["transactionId"] == bound[head["tx"]]
                if op == "deliver":
                    journal.mark_delivered(entry.id, {"transactionId": 1000 + entry.id})
                    if head["action"] == "StartTransaction":
                        bound[head["tx"]] = 1000 + entry.id
                    delivered.append(model.pop(0)["id"])
                else:
                    head["n"] += 1
                    kept = journal.mark_failed_attempt(entry.id, now, attempts_max, interval)
                    assert kept == (head["n"] < attempts_max)
                    if kept:
                        head["next"] = now + interval * head["n"]
                    else:
                        model.pop(0)
                        if head["action"] == "StartTransaction":
                            model = [m for m in model if m["tx"] != head["tx"]]
            assert journal.pending_count() == len(model)
        assert delivered == sorted(delivered)
        assert len(set(delivered)) == len(delivered)
        # Everything still pending comes out in order once time has passed every retry.
        rest = []
        while (entry := journal.next_due(now + 10_000)) is not None:
            rest.append(entry.id)
            journal.mark_delivered(entry.id, {"transactionId": 1000 + entry.id})
        assert rest == [m["id"] for m in model]
        conn.close()
