"""Local authorization list and authorization cache (OCPP 1.6 §3.5, §5.15, §5.11).

idTags are CiString20 (§7.24 IdToken): compared case-insensitively, stored as given.
The local list has priority over the cache for the same idTag (§3.5.3). A cached entry whose
expiryDate has passed counts as Expired (§3.5.2); `cache_lookup` then answers None.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Literal

from main_node.ocpp.db import ensure_schema, parse_datetime, to_wire, transaction

__all__ = ["ID_TAG_MAX_LENGTH", "AuthStore", "UpdateStatus", "effective_info"]

ID_TAG_MAX_LENGTH = 20  # §7.24 IdToken = CiString20Type
UpdateStatus = Literal["Accepted", "Failed", "VersionMismatch", "NotSupported"]
_STATUSES = frozenset({"Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"})


def _key(id_tag: str) -> str:
    return id_tag.casefold()


def effective_info(info: dict[str, Any], now: float) -> dict[str, Any]:
    """The idTagInfo as it stands at `now`: an Accepted entry past its expiryDate is Expired."""
    expiry = info.get("expiryDate")
    if info.get("status") == "Accepted" and isinstance(expiry, str):
        try:
            expired = parse_datetime(expiry) <= now
        except ValueError:
            expired = True  # an unreadable expiry must not grant access
        if expired:
            return {**info, "status": "Expired"}
    return info


def _valid_info(info: Any) -> bool:
    return (
        isinstance(info, dict)
        and info.get("status") in _STATUSES
        and (info.get("expiryDate") is None or isinstance(info["expiryDate"], str))
        and (
            info.get("parentIdTag") is None
            or (
                isinstance(info["parentIdTag"], str)
                and len(info["parentIdTag"]) <= ID_TAG_MAX_LENGTH
            )
        )
    )


class AuthStore:
    """The persisted local authorization list (with its version) and authorization cache."""

    def __init__(self, conn: sqlite3.Connection, *, cache_max_entries: int = 1000) -> None:
        ensure_schema(conn)
        self._conn = conn
        self.cache_max_entries = cache_max_entries

    # ---------------------------------------------------------------- local list (§5.15)

    def get_version(self) -> int:
        """GetLocalListVersion: 0 when the list is empty (§5.10), else the installed version."""
        if self._conn.execute("SELECT 1 FROM auth_list LIMIT 1").fetchone() is None:
            return 0
        row = self._conn.execute("SELECT value FROM auth_meta WHERE key = 'version'").fetchone()
        return 0 if row is None else int(row[0])

    def update(
        self,
        list_version: int,
        update_type: str,
        entries: list[dict[str, Any]] | None,
        *,
        enabled: bool = True,
        max_update_length: int | None = None,
        max_list_length: int | None = None,
    ) -> UpdateStatus:
        """SendLocalList (§5.15): apply a Full or Differential update, all or nothing.

        `enabled` is LocalAuthListEnabled, `max_update_length` SendLocalListMaxLength and
        `max_list_length` LocalAuthListMaxLength.
        """
        if not enabled:
            return "NotSupported"
        items = to_wire(entries or [])
        if update_type not in ("Full", "Differential") or not isinstance(list_version, int):
            return "Failed"
        if max_update_length is not None and len(items) > max_update_length:
            return "Failed"
        seen: set[str] = set()
        for item in items:
            tag = item.get("idTag") if isinstance(item, dict) else None
            if not isinstance(tag, str) or not 0 < len(tag) <= ID_TAG_MAX_LENGTH:
                return "Failed"
            if _key(tag) in seen:
                return "Failed"
            seen.add(_key(tag))
            if item.get("idTagInfo") is not None and not _valid_info(item["idTagInfo"]):
                return "Failed"
        if update_type == "Differential" and list_version <= self.get_version():
            # §7.45 UpdateStatus.VersionMismatch: "less or equal than version of current list".
            return "VersionMismatch"
        if max_list_length is not None and self._size_after(update_type, items) > max_list_length:
            return "Failed"
        with transaction(self._conn):
            if update_type == "Full":
                self._conn.execute("DELETE FROM auth_list")
            for item in items:
                info = item.get("idTagInfo")
                if info is None:
                    # Differential: no idTagInfo = remove the entry (§5.15); Full: nothing to add.
                    self._conn.execute(
                        "DELETE FROM auth_list WHERE id_key = ?", (_key(item["idTag"]),)
                    )
                else:
                    self._conn.execute(
                        "INSERT OR REPLACE INTO auth_list(id_key, id_tag, info) VALUES (?,?,?)",
                        (_key(item["idTag"]), item["idTag"], json.dumps(info)),
                    )
            self._conn.execute(
                "INSERT OR REPLACE INTO auth_meta(key, value) VALUES ('version', ?)",
                (str(list_version),),
            )
        return "Accepted"

    def local_list_lookup(self, id_tag: str) -> dict[str, Any] | None:
        """The idTagInfo stored in the local list for `id_tag`, as sent by the CSMS."""
        row = self._conn.execute(
            "SELECT info FROM auth_list WHERE id_key = ?", (_key(id_tag),)
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def local_list_size(self) -> int:
        """Number of entries in the local list."""
        return int(self._conn.execute("SELECT COUNT(*) FROM auth_list").fetchone()[0])

    # ---------------------------------------------------------------- cache (§3.5.2)

    def cache_put(self, id_tag: str, id_tag_info: dict[str, Any], now: float) -> None:
        """Store the idTagInfo of an Authorize/Start/StopTransaction.conf (§3.5.2)."""
        info = to_wire(id_tag_info)
        with transaction(self._conn):
            self._conn.execute(
                "INSERT OR REPLACE INTO auth_cache(id_key, id_tag, info, stored_at)"
                " VALUES (?,?,?,?)",
                (_key(id_tag), id_tag, json.dumps(info), now),
            )
            self._evict(now)

    def cache_lookup(self, id_tag: str, now: float) -> dict[str, Any] | None:
        """The cached idTagInfo, or None when absent or past its expiryDate."""
        info = self._cached(id_tag)
        if info is None or effective_info(info, now)["status"] == "Expired":
            return None
        return info

    def cache_clear(self) -> None:
        """ClearCache (§5.4)."""
        with transaction(self._conn):
            self._conn.execute("DELETE FROM auth_cache")

    def cache_size(self) -> int:
        """Number of cached idTags."""
        return int(self._conn.execute("SELECT COUNT(*) FROM auth_cache").fetchone()[0])

    # ---------------------------------------------------------------- decisions

    def lookup(
        self, id_tag: str, now: float, *, use_list: bool = True, use_cache: bool = True
    ) -> dict[str, Any] | None:
        """The locally known idTagInfo at `now`, list before cache (§3.5.3), expiry applied.

        For LocalPreAuthorize (§3.5.3) and offline decisions; None when the idTag is unknown.
        """
        info = self.local_list_lookup(id_tag) if use_list else None
        if info is None and use_cache:
            info = self._cached(id_tag)
        return None if info is None else effective_info(info, now)

    def authorize_offline(
        self,
        id_tag: str,
        now: float,
        local_authorize_offline: bool,
        allow_unknown: bool,
        *,
        use_list: bool = True,
        use_cache: bool = True,
    ) -> dict[str, Any] | None:
        """Offline authorization: the idTagInfo to act on, or None to refuse.

        LocalAuthorizeOffline (§9.1.19) lets known Accepted idTags charge; a known idTag that
        is not Accepted (Blocked, Expired, …) is returned as is and never falls back to
        AllowOfflineTxForUnknownId (§9.1.1), which admits only idTags known nowhere.
        """
        info = self.lookup(id_tag, now, use_list=use_list, use_cache=use_cache)
        if info is not None and info.get("status") != "Accepted":
            return info
        if info is not None and local_authorize_offline:
            return info
        if allow_unknown:
            return {"status": "Accepted"}
        return None

    def _size_after(self, update_type: str, items: list[dict[str, Any]]) -> int:
        keys: set[str] = set()
        if update_type == "Differential":
            keys = {r[0] for r in self._conn.execute("SELECT id_key FROM auth_list")}
        for item in items:
            if item.get("idTagInfo") is None:
                keys.discard(_key(item["idTag"]))
            else:
                keys.add(_key(item["idTag"]))
        return len(keys)

    def _cached(self, id_tag: str) -> dict[str, Any] | None:
        row = self._conn.execute(
            "SELECT info FROM auth_cache WHERE id_key = ?", (_key(id_tag),)
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def _evict(self, now: float) -> None:
        excess = self.cache_size() - self.cache_max_entries
        if excess <= 0:
            return
        # §3.5.2: when full, drop expired entries first, then non-Accepted, then the oldest.
        rows = self._conn.execute("SELECT id_key, info, stored_at FROM auth_cache").fetchall()

        def rank(row: tuple[str, str, float]) -> tuple[int, float]:
            status = effective_info(json.loads(row[1]), now).get("status")
            return (0 if status == "Expired" else 1 if status != "Accepted" else 2, row[2])

        for id_key, _, _ in sorted(rows, key=rank)[:excess]:
            self._conn.execute("DELETE FROM auth_cache WHERE id_key = ?", (id_key,))
