"""Local authorization list and cache: OCPP 1.6 §3.5, §5.15 SendLocalList, §5.10, §5.4."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from main_node.ocpp.auth import AuthStore
from main_node.ocpp.db import open_db

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
PAST = "2023-11-14T22:00:00Z"
FUTURE = "2023-11-15T22:00:00Z"


def _entry(tag: str, status: str | None = "Accepted", **info: Any) -> dict[str, Any]:
    if status is None:
        return {"idTag": tag}
    return {"idTag": tag, "idTagInfo": {"status": status, **info}}


@pytest.fixture
def store(tmp_path: Path) -> AuthStore:
    return AuthStore(open_db(tmp_path / "s.db"))


def test_version_is_zero_for_an_empty_list_5_10(store: AuthStore) -> None:
    """§5.10: listVersion 0 means no (or an empty) local list."""
    assert store.get_version() == 0
    assert store.update(3, "Full", [_entry("A")]) == "Accepted"
    assert store.get_version() == 3
    assert store.update(4, "Full", []) == "Accepted"
    assert store.get_version() == 0


@pytest.mark.parametrize(
    ("version", "update_type", "entries", "status", "after"),
    [
        # Differential add and remove (no idTagInfo = remove, §5.15).
        (6, "Differential", [_entry("C"), _entry("A", None)], "Accepted", {"B", "C"}),
        # §7.45 VersionMismatch: differential version <= current.
        (5, "Differential", [_entry("C")], "VersionMismatch", {"A", "B"}),
        (4, "Differential", [_entry("C")], "VersionMismatch", {"A", "B"}),
        # Full replaces whatever version it carries.
        (1, "Full", [_entry("Z")], "Accepted", {"Z"}),
        # Malformed: all or nothing.
        (6, "Differential", [_entry("C"), {"idTag": "x" * 21}], "Failed", {"A", "B"}),
        (6, "Differential", [_entry("C", "Bogus")], "Failed", {"A", "B"}),
        (6, "Differential", [_entry("C"), _entry("c")], "Failed", {"A", "B"}),
        (6, "Sideways", [_entry("C")], "Failed", {"A", "B"}),
        # SendLocalListMaxLength = 3 and LocalAuthListMaxLength = 3 below.
        (6, "Full", [_entry(t) for t in "CDEF"], "Failed", {"A", "B"}),
        (6, "Differential", [_entry("C"), _entry("D")], "Failed", {"A", "B"}),
    ],
)
def test_send_local_list_5_15(
    store: AuthStore,
    version: int,
    update_type: str,
    entries: list[dict[str, Any]],
    status: str,
    after: set[str],
) -> None:
    """§5.15 SendLocalList outcomes on a list at version 5 holding A and B."""
    assert store.update(5, "Full", [_entry("A"), _entry("B")]) == "Accepted"
    result = store.update(version, update_type, entries, max_update_length=3, max_list_length=3)
    assert result == status
    assert {t for t in "ABCDEFZ" if store.local_list_lookup(t)} == after
    assert store.get_version() == (version if status == "Accepted" else 5)


def test_local_list_disabled_is_not_supported_5_15(store: AuthStore) -> None:
    """§7.45 NotSupported when LocalAuthListEnabled is false."""
    assert store.update(1, "Full", [_entry("A")], enabled=False) == "NotSupported"
    assert store.local_list_lookup("A") is None


def test_id_tags_are_case_insensitive_7_24(store: AuthStore) -> None:
    """§7.24 IdToken is CiString20: lookups ignore case."""
    store.update(1, "Full", [_entry("AbC123", "Blocked")])
    assert store.local_list_lookup("abc123") == {"status": "Blocked"}
    store.cache_put("DeAdBeEf", {"status": "Accepted"}, T0)
    assert store.cache_lookup("DEADBEEF", T0) == {"status": "Accepted"}


def test_snake_case_entries_from_the_ocpp_package(store: AuthStore) -> None:
    """Handlers get snake_case keys from the ocpp package; both spellings are accepted."""
    entries = [{"id_tag": "A", "id_tag_info": {"status": "Accepted", "parent_id_tag": "P"}}]
    assert store.update(1, "Full", entries) == "Accepted"
    assert store.local_list_lookup("A") == {"status": "Accepted", "parentIdTag": "P"}


@pytest.mark.parametrize(
    ("info", "found"),
    [
        ({"status": "Accepted"}, True),
        ({"status": "Accepted", "expiryDate": FUTURE}, True),
        ({"status": "Accepted", "expiryDate": PAST}, False),  # §3.5.2 expired
        ({"status": "Blocked"}, True),
    ],
)
def test_cache_expiry_3_5_2(store: AuthStore, info: dict[str, Any], found: bool) -> None:
    """§3.5.2: a cache entry past its expiryDate no longer answers."""
    store.cache_put("A", info, T0)
    assert (store.cache_lookup("A", T0) is not None) is found


def test_cache_survives_restart_and_clears_5_4(tmp_path: Path) -> None:
    """The cache is persistent; ClearCache (§5.4) empties it."""
    path = tmp_path / "s.db"
    AuthStore(open_db(path)).cache_put("A", {"status": "Accepted"}, T0)
    store = AuthStore(open_db(path))
    assert store.cache_lookup("A", T0) == {"status": "Accepted"}
    store.cache_clear()
    assert store.cache_lookup("A", T0) is None


def test_cache_eviction_prefers_expired_then_rejected_then_oldest_3_5_2(store: AuthStore) -> None:
    """A full cache drops expired entries first, then non-Accepted, then the oldest."""
    store.cache_max_entries = 3
    store.cache_put("old", {"status": "Accepted"}, T0)
    store.cache_put("blocked", {"status": "Blocked"}, T0 + 1)
    store.cache_put("expired", {"status": "Accepted", "expiryDate": PAST}, T0 + 2)
    store.cache_put("new1", {"status": "Accepted"}, T0 + 3)
    assert store.lookup("expired", T0, use_list=False) is None
    store.cache_put("new2", {"status": "Accepted"}, T0 + 4)
    assert store.lookup("blocked", T0, use_list=False) is None
    store.cache_put("new3", {"status": "Accepted"}, T0 + 5)
    assert store.lookup("old", T0, use_list=False) is None
    assert store.cache_size() == 3


def test_local_list_has_priority_over_cache_3_5_3(store: AuthStore) -> None:
    """§3.5.3: the local list wins over the cache for the same idTag."""
    store.update(1, "Full", [_entry("A", "Blocked")])
    store.cache_put("A", {"status": "Accepted"}, T0)
    assert store.lookup("A", T0) == {"status": "Blocked"}


@pytest.mark.parametrize(
    ("list_status", "cache_status", "offline", "unknown", "expected"),
    [
        # LocalAuthorizeOffline: known Accepted idTags charge offline.
        ("Accepted", None, True, False, "Accepted"),
        (None, "Accepted", True, False, "Accepted"),
        (None, "AcceptedExpired", True, False, "Expired"),
        ("Blocked", "Accepted", True, True, "Blocked"),
        # AllowOfflineTxForUnknownId admits only idTags known nowhere.
        (None, None, True, True, "Accepted"),
        (None, None, True, False, None),
        (None, "Invalid", False, True, "Invalid"),
        # Without LocalAuthorizeOffline a known Accepted idTag is no better than unknown.
        ("Accepted", None, False, False, None),
        ("Accepted", None, False, True, "Accepted"),
    ],
)
def test_authorize_offline_9_1(
    store: AuthStore,
    list_status: str | None,
    cache_status: str | None,
    offline: bool,
    unknown: bool,
    expected: str | None,
) -> None:
    """§9.1 LocalAuthorizeOffline / AllowOfflineTxForUnknownId decisions."""
    if list_status:
        store.update(1, "Full", [_entry("A", list_status)])
    if cache_status == "AcceptedExpired":
        store.cache_put("A", {"status": "Accepted", "expiryDate": PAST}, T0 - 3600)
    elif cache_status:
        store.cache_put("A", {"status": cache_status}, T0)
    info = store.authorize_offline("A", T0, offline, unknown)
    assert (None if info is None else info["status"]) == expected
