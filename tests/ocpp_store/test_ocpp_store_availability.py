"""Connector availability: OCPP 1.6 §5.2 ChangeAvailability, persisted and scheduled."""

from __future__ import annotations

from pathlib import Path

import pytest

from main_node.ocpp.availability import AvailabilityStore
from main_node.ocpp.db import open_db

OP, INOP = "Operative", "Inoperative"


@pytest.mark.parametrize(
    ("connector", "kind", "busy", "status", "changes"),
    [
        (2, INOP, [], "Accepted", {2: INOP}),
        # §5.2: a running transaction makes it Scheduled; nothing changes now.
        (2, INOP, [2], "Scheduled", {}),
        # §5.2: already in the requested state: Accepted, nothing to do.
        (2, OP, [], "Accepted", {}),
        # Connector 0 is the whole charge point.
        (0, INOP, [], "Accepted", {0: INOP, 1: INOP, 2: INOP, 3: INOP}),
        (0, INOP, [3], "Scheduled", {1: INOP, 2: INOP}),
        (4, INOP, [], "Rejected", {}),
        (-1, INOP, [], "Rejected", {}),
        (1, "Sideways", [], "Rejected", {}),
    ],
)
def test_change_availability_5_2(
    tmp_path: Path,
    connector: int,
    kind: str,
    busy: list[int],
    status: str,
    changes: dict[int, str],
) -> None:
    """§5.2 ChangeAvailability answers and the effective changes to apply now."""
    store = AvailabilityStore(open_db(tmp_path / "s.db"), 3)
    result = store.request(connector, kind, busy)
    assert (result.status, result.changes) == (status, changes)


def test_scheduled_change_applies_when_transaction_ends_5_2(tmp_path: Path) -> None:
    """§5.2 Scheduled: the change happens once the transaction has finished."""
    store = AvailabilityStore(open_db(tmp_path / "s.db"), 3)
    store.request(0, INOP, busy=[2, 3])
    assert store.all_effective() == {0: OP, 1: INOP, 2: OP, 3: OP}
    assert store.transaction_ended(2, busy=[2, 3]) == {2: INOP}
    # The charge point itself follows once the last scheduled connector is done.
    assert store.transaction_ended(3, busy=[3]) == {0: INOP, 3: INOP}
    assert store.request(0, OP, busy=[]).changes == {0: OP, 1: OP, 2: OP, 3: OP}


def test_operative_cancels_a_scheduled_inoperative_5_2(tmp_path: Path) -> None:
    """A later Operative request replaces the pending Inoperative one."""
    store = AvailabilityStore(open_db(tmp_path / "s.db"), 2)
    assert store.request(1, INOP, busy=[1]).status == "Scheduled"
    assert store.request(1, OP, busy=[1]).status == "Accepted"
    assert store.pending(1) is None
    assert store.transaction_ended(1, busy=[1]) == {}


def test_charge_point_inoperative_overrides_connector(tmp_path: Path) -> None:
    """With connector 0 Inoperative no connector is usable, whatever its own state."""
    store = AvailabilityStore(open_db(tmp_path / "s.db"), 2)
    store.request(0, INOP, busy=[])
    assert store.request(1, OP, busy=[]).changes == {}
    assert store.effective(1) == INOP


def test_availability_and_schedule_survive_restart(tmp_path: Path) -> None:
    """ChangeAvailability persists across restarts, pending changes included."""
    path = tmp_path / "s.db"
    store = AvailabilityStore(open_db(path), 3)
    store.request(1, INOP, busy=[])
    store.request(2, INOP, busy=[2])
    store = AvailabilityStore(open_db(path), 3)
    assert store.all_effective() == {0: OP, 1: INOP, 2: OP, 3: OP}
    assert store.pending(2) == INOP
    # At boot no transaction runs any more: settle applies what was scheduled.
    assert store.settle(busy=[]) == {2: INOP}
