"""The satellite's transaction journal (issue 16): begin and end of each transaction on disk,
surviving a restart of the process, bounded, and harmless when its file is broken."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from chargeport.port import SessionEventType, StopReason, TransactionData
from satellite.tx_journal import JOURNAL_FILE, TxJournal

BEGIN = TransactionData("t1", "TAG", 100.0, signed_meter="OCMF|{begin}|{}")
END = TransactionData(
    "t1", "TAG", 142.5, stop_reason=StopReason.LOCAL, signed_meter="OCMF|{end}|{}"
)


def test_begin_and_end_survive_a_restart(tmp_path: Path) -> None:
    j = TxJournal.in_state_dir(tmp_path)
    j.started("s1", BEGIN, 1000.0)
    again = TxJournal.in_state_dir(tmp_path)  # a new process reads the same file
    cut = again.interrupted()
    assert cut is not None and (cut.begin, cut.started_at, cut.session_id) == (BEGIN, 1000.0, "s1")
    again.finished_tx(END, 1060.0)
    third = TxJournal.in_state_dir(tmp_path)
    assert third.interrupted() is None
    assert [(e.begin, e.end, e.ended_at) for e in third.finished] == [(BEGIN, END, 1060.0)]


def test_replay_gives_the_session_events_with_their_real_times(tmp_path: Path) -> None:
    """What a main that never saw the start gets: the real start time and register (4.10)."""
    j = TxJournal.in_state_dir(tmp_path)
    j.started("s1", BEGIN, 1000.0)
    j.finished_tx(END, 1060.0)
    begin2 = TransactionData("t2", "TAG", 142.5)
    j.started("s2", begin2, 2000.0)
    out = [(ts, ev.type, ev.transaction) for ts, ev in j.replay()]
    assert out == [
        (1000.0, SessionEventType.TRANSACTION_STARTED, BEGIN),
        (1060.0, SessionEventType.TRANSACTION_FINISHED, END),
        (2000.0, SessionEventType.TRANSACTION_STARTED, begin2),
    ]


@pytest.mark.parametrize(
    ("readings", "saved"),
    [
        ([100.4], 100.0),  # moved less than 1 Wh: not written (the begin's register stays)
        ([100.4, 101.2], 101.2),  # moved 1 Wh: written
        ([101.0, 101.5, 102.1], 102.1),
    ],
)
def test_the_register_is_kept_once_it_moved_a_watt_hour(
    tmp_path: Path, readings: list[float], saved: float
) -> None:
    j = TxJournal.in_state_dir(tmp_path)
    j.started("s1", BEGIN, 1000.0)
    for wh in readings:
        j.meter(wh)
    assert TxJournal.in_state_dir(tmp_path).last_wh == saved


def test_only_the_last_records_are_kept_and_an_end_is_journaled_once(tmp_path: Path) -> None:
    j = TxJournal.in_state_dir(tmp_path, keep=3)
    for i in range(5):
        tx = TransactionData(f"t{i}", "TAG", float(i))
        j.started("s", tx, float(i))
        j.finished_tx(tx, float(i) + 0.5)
        j.finished_tx(tx, float(i) + 0.5)  # replayed: no second record
    assert [e.begin.transaction_id for e in j.finished] == ["t2", "t3", "t4"]


def test_an_unreadable_journal_starts_empty_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / JOURNAL_FILE
    path.parent.mkdir(parents=True)
    path.write_text('{"open": {"begin": 5}}')
    with caplog.at_level(logging.WARNING):
        j = TxJournal(path)
    assert j.interrupted() is None and j.finished == []
    assert "unreadable" in caplog.text
    j.started("s1", BEGIN, 1.0)  # and it works again
    assert json.loads(path.read_text())["open"]["begin"]["transaction_id"] == "t1"


def test_a_journal_that_cannot_be_written_never_stops_the_caller(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "link"
    blocker.write_text("a file where the journal's directory should be")
    j = TxJournal.in_state_dir(tmp_path)
    with caplog.at_level(logging.WARNING):
        j.started("s1", BEGIN, 1.0)
        j.finished_tx(END, 2.0)
    assert caplog.text.count("not saved") == 1  # said once
    assert j.finished[0].end == END  # still in memory for the replay
