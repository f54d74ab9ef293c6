"""IdToken decisions (2.0.1 Part 2 C01, C12-C15), table-driven over the shared store; the CSMS
is the `ask` seam (a fake: None = offline)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from main_node.ocpp.auth import AuthStore
from main_node.ocpp.db import open_db
from main_node.ocpp201.authorization import Authorization, as_v16_info
from main_node.ocpp201.device_model import DeviceModel, VarKey, catalog


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    db = open_db(":memory:")
    yield db
    db.close()


def _authorization(
    conn: sqlite3.Connection, answer: dict[str, Any] | None, **variables: str
) -> Authorization:
    device = DeviceModel(conn, catalog([1]))
    for name, value in variables.items():
        assert device.set(VarKey("AuthCtrlr", name), value) == "Accepted"
    store = AuthStore(conn)
    store.update(
        1,
        "Full",
        [
            {"idTag": "LISTED", "idTagInfo": {"status": "Accepted"}},
            {"idTag": "BLOCKED", "idTagInfo": {"status": "Blocked"}},
        ],
    )

    async def ask(_token: dict[str, Any]) -> dict[str, Any] | None:
        return answer

    return Authorization(store, device, lambda: 1_700_000_000.0, ask, lambda: answer is not None)


@pytest.mark.parametrize(
    ("token", "csms", "variables", "expected"),
    [
        ("LISTED", {"status": "Invalid"}, {}, "Accepted"),  # C14 LocalPreAuthorize
        ("LISTED", {"status": "Invalid"}, {"LocalPreAuthorize": "false"}, "Invalid"),  # C01
        ("LISTED", None, {}, "Accepted"),  # C13 offline, LocalAuthorizeOffline
        ("LISTED", None, {"LocalAuthorizeOffline": "false"}, "Invalid"),
        ("BLOCKED", None, {"OfflineTxForUnknownIdEnabled": "true"}, "Blocked"),  # known: no C15
        ("NEW", None, {}, "Invalid"),
        ("NEW", None, {"OfflineTxForUnknownIdEnabled": "true"}, "Accepted"),  # C15
        ("NEW", {"status": "NoCredit"}, {}, "NoCredit"),  # the CSMS's own word
    ],
)
async def test_decision_c01_c12_c15(
    conn: sqlite3.Connection,
    token: str,
    csms: dict[str, Any] | None,
    variables: dict[str, str],
    expected: str,
) -> None:
    authorization = _authorization(conn, csms, **variables)
    assert await authorization.decide({"idToken": token, "type": "ISO14443"}) == expected


async def test_an_answer_is_cached_and_used_offline_c10_c12(conn: sqlite3.Connection) -> None:
    online = _authorization(conn, {"status": "Accepted"})
    assert await online.decide({"idToken": "SEEN", "type": "ISO14443"}) == "Accepted"
    offline = _authorization(conn, None)
    assert await offline.decide({"idToken": "SEEN", "type": "ISO14443"}) == "Accepted"


def test_finer_2_0_1_refusals_are_invalid_in_the_shared_store() -> None:
    assert as_v16_info({"status": "NotAtThisTime"}) == {"status": "Invalid"}
    assert as_v16_info(
        {"status": "Accepted", "groupIdToken": {"idToken": "G", "type": "Central"}}
    ) == {"status": "Accepted", "parentIdTag": "G"}
