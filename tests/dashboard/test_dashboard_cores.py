"""The dashboard's pure parts: the chart ring, the station records, progress rows, sessions."""

from __future__ import annotations

import pytest

from chargeport.port import (
    ErrorCode,
    LinkChanged,
    PortDisabledChanged,
    PortErrorEvent,
    PortEvent,
    PortEventBody,
    SessionEvent,
    SessionEventType,
    StopReason,
    TransactionData,
)
from main_node.dashboard_auth import SessionStore
from main_node.history import GunRing, HistoryRing, SiteRing
from main_node.progress import DIAGNOSTICS, FIRMWARE, ProgressTracker
from main_node.records import StationRecords

# ------------------------------------------------------------------ history ring


def test_ring_keeps_the_newest_capacity_samples_oldest_first() -> None:
    ring = GunRing(3)
    for t in range(1, 6):
        ring.append(float(t), 100.0 * t, (t, t + 0.5, 0.0), 1000.0 + t)
    series = ring.series()
    assert series["t"] == [3.0, 4.0, 5.0]
    assert series["power_w"] == [300.0, 400.0, 500.0]
    assert series["current_a"] == [[3.0, 4.0, 5.0], [3.5, 4.5, 5.5], [0.0, 0.0, 0.0]]
    assert series["energy_wh"] == [1003.0, 1004.0, 1005.0]
    assert len(ring) == 3


@pytest.mark.parametrize(
    ("times", "kept"),
    [
        ([1.0, 2.0, 2.0], [1.0, 2.0]),  # the same instant twice: one sample
        ([1.0, 3.0, 2.0], [1.0, 3.0]),  # the clock stepped back: dropped, never reordered
        ([5.0], [5.0]),
    ],
)
def test_ring_only_moves_forward_in_time(times: list[float], kept: list[float]) -> None:
    ring = GunRing(10)
    for t in times:
        ring.append(t, 0.0, (), 0.0)
    assert ring.series()["t"] == kept


def test_ring_series_since_and_latest() -> None:
    history = HistoryRing([1, 2], capacity=10)
    for t in (10.0, 11.0, 12.0):
        history.record(1, t, 7000.0, (10.0, 10.0, 10.0), 5.0)
    history.record(9, 12.0, 1.0, (), 1.0)  # an unknown connector is ignored
    assert history.series(since=10.5)["1"]["t"] == [11.0, 12.0]
    assert history.series()["2"]["t"] == []
    assert history.latest() == {"1": [12.0, 7000.0, 10.0, 10.0, 10.0, 5.0]}


def test_one_hour_for_four_guns_is_preallocated_and_small() -> None:
    history = HistoryRing([1, 2, 3, 4], capacity=3600)
    size = history.nbytes
    for t in range(7200):  # two hours: the ring does not grow
        history.record(1 + t % 4, float(t), 11000.0, (16.0, 16.0, 16.0), float(t))
    assert history.nbytes == size < 2 * 1024 * 1024
    with pytest.raises(ValueError, match="capacity"):
        GunRing(0)


def test_site_ring_records_mains_gaps_and_allocation_per_gun() -> None:
    site = SiteRing([1, 2], capacity=2)
    site.append(1.0, (10.0, 11.0, 12.0), 20.0, 32.0, {1: 16.0})
    site.append(2.0, None, 8.0, 32.0, {1: 6.0, 2: 6.0})  # the reading went stale: a gap
    site.append(2.0, None, 0.0, 32.0, {})  # not newer: dropped
    series = site.series()
    assert series["t"] == [1.0, 2.0]
    assert series["mains_a"] == [[10.0, None], [11.0, None], [12.0, None]]
    assert series["available_a"] == [20.0, 8.0] and series["site_limit_a"] == [32.0, 32.0]
    assert series["allocation"] == {"1": [16.0, 6.0], "2": [0.0, 6.0]}
    site.append(3.0, (1.0, 1.0, 1.0), 30.0, 32.0, {})
    assert site.series()["t"] == [2.0, 3.0]  # capacity 2: the oldest went
    latest = site.latest()
    assert latest is not None and latest["t"] == [3.0] and latest["mains_a"][0] == [1.0]
    assert SiteRing([1], 5).latest() is None


# ------------------------------------------------------------------ records


def ev(t: float, body: PortEventBody) -> PortEvent:
    return PortEvent(seq=0, timestamp=t, body=body)


def tx_event(kind: SessionEventType, wh: float, reason: StopReason | None = None) -> SessionEvent:
    return SessionEvent(kind, "s1", TransactionData("tx-1", "TAG1", wh, stop_reason=reason))


def test_transaction_start_and_stop_give_energy_and_reason() -> None:
    records = StationRecords()
    records.apply(2, ev(100.0, tx_event(SessionEventType.TRANSACTION_STARTED, 1000.0)))
    assert records.to_json()["transactions"][0]["stop"] is None
    records.apply(
        2, ev(200.0, tx_event(SessionEventType.TRANSACTION_FINISHED, 3500.5, StopReason.LOCAL))
    )
    (tx,) = records.to_json()["transactions"]
    assert tx == {
        "connector": 2, "transaction_id": "tx-1", "id_tag": "TAG1", "start": 100.0,
        "meter_start_wh": 1000.0, "stop": 200.0, "energy_wh": 2500.5, "stop_reason": "Local",
    }  # fmt: skip


def test_a_stop_without_its_start_has_no_energy() -> None:
    records = StationRecords()
    records.apply(1, ev(5.0, tx_event(SessionEventType.TRANSACTION_FINISHED, 9000.0)))
    (tx,) = records.to_json()["transactions"]
    assert tx["energy_wh"] is None and tx["stop"] == 5.0


@pytest.mark.parametrize(
    ("bodies", "texts"),
    [
        ([PortErrorEvent(ErrorCode.GROUND_FAILURE, "RCD", True)], ["GroundFailure raised: RCD"]),
        ([PortErrorEvent(ErrorCode.GROUND_FAILURE, "", False)], ["GroundFailure cleared"]),
        ([LinkChanged(False), LinkChanged(False), LinkChanged(True)], ["link lost", "link up"]),
        ([LinkChanged(True)], []),  # up from the start: nothing happened
        ([PortDisabledChanged(False)], ["disabled"]),
    ],
)
def test_events_are_logged_once_per_change(bodies: list[PortEventBody], texts: list[str]) -> None:
    records = StationRecords()
    for i, body in enumerate(bodies):
        records.apply(1, ev(float(i), body))
    assert [e["text"] for e in reversed(records.to_json()["events"])] == texts


def test_ocpp_connection_changes_and_bounded_lists() -> None:
    records = StationRecords(max_transactions=2, max_events=3)
    records.ocpp_connection(False, 0.0)  # offline from the start: not an event
    for t in range(1, 5):
        records.ocpp_connection(t % 2 == 1, float(t))
    events = records.to_json()["events"]
    assert [e["text"] for e in events] == [
        "CSMS connection lost", "CSMS connected", "CSMS connection lost",
    ]  # fmt: skip
    for i in range(3):
        records.apply(i, ev(float(i), tx_event(SessionEventType.TRANSACTION_STARTED, 0.0)))
    assert [tx["connector"] for tx in records.to_json()["transactions"]] == [2, 1]


# ------------------------------------------------------------------ progress


def test_progress_eta_from_the_rate_so_far_and_100_when_done() -> None:
    tracker = ProgressTracker()
    tracker.start(FIRMWARE, "SAT-1", now=10.0, total=1000)
    tracker.update(FIRMWARE, "SAT-1", "Receiving", 250, 1000, now=12.0)
    (row,) = tracker.to_json()[FIRMWARE]
    assert (row["percent"], row["eta_s"], row["bytes"]) == (25.0, 6.0, 250)
    tracker.update(FIRMWARE, "SAT-1", "Installed", 1000, 1000, now=14.0, finished=True)
    (row,) = tracker.to_json()[FIRMWARE]
    assert (row["percent"], row["eta_s"], row["finished"]) == (100.0, 0.0, True)


def test_progress_without_a_total_has_no_percent_until_done() -> None:
    tracker = ProgressTracker()
    tracker.start(DIAGNOSTICS, "MAIN", now=0.0)
    tracker.update(DIAGNOSTICS, "MAIN", "Collecting", 4096, 0, now=1.0)
    (row,) = tracker.to_json()[DIAGNOSTICS]
    assert (row["percent"], row["eta_s"]) == (None, None)
    tracker.update(DIAGNOSTICS, "MAIN", "Failed", 4096, 0, now=2.0, finished=True)
    assert tracker.to_json()[DIAGNOSTICS][0]["percent"] is None  # failed is not 100 %


# ------------------------------------------------------------------ sessions


def test_sessions_expire_revoke_and_are_bounded() -> None:
    tokens = iter(f"token-{i}" for i in range(100))
    store = SessionStore(ttl_s=60.0, max_sessions=2, token=lambda: next(tokens))
    a = store.create(0.0)
    assert store.valid(a, 59.9) and not store.valid(a, 60.0)
    assert not store.valid(None, 0.0) and not store.valid("forged", 0.0)
    b = store.create(1.0)
    store.revoke(b)
    assert not store.valid(b, 1.0)
    c, d = store.create(2.0), store.create(3.0)
    e = store.create(4.0)  # a third live session pushes out the oldest
    assert len(store) == 2 and not store.valid(a, 4.0)
    assert store.valid(d, 4.0) and store.valid(e, 4.0) and not store.valid(c, 4.0)
