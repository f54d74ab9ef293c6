"""IdToken decisions for 2.0.1 (Part 2 C01, C10-C15) over the shared local list and cache.

The store (`main_node.ocpp.auth.AuthStore`) keeps 1.6-shaped idTagInfo; a 2.0.1 IdTokenInfo
maps onto it (`as_v16_info`): status (2.0.1's finer refusals are Invalid there),
cacheExpiryDateTime, groupIdToken as the parent. The CSMS is asked through a seam (`ask`), so
this holds no connection and no task.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from main_node.ocpp.auth import AuthStore
from main_node.ocpp201.device_model import DeviceModel

__all__ = ["Authorization", "as_v16_info"]

_V16_STATUS = {"Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"}

# The CSMS's IdTokenInfo for a token (wire form), or None when it cannot be asked or answer.
Ask = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]


def as_v16_info(info: dict[str, Any]) -> dict[str, Any]:
    """IdTokenInfoType -> the shared store's idTagInfo (status, expiryDate, parentIdTag)."""
    status = str(info.get("status", "Invalid"))
    out: dict[str, Any] = {"status": status if status in _V16_STATUS else "Invalid"}
    if info.get("cacheExpiryDateTime"):
        out["expiryDate"] = info["cacheExpiryDateTime"]
    group = info.get("groupIdToken")
    if isinstance(group, dict) and group.get("idToken"):
        out["parentIdTag"] = str(group["idToken"])[:20]
    return out


class Authorization:
    """Whether an IdToken may charge: local list, cache, the CSMS, the offline rules."""

    def __init__(
        self,
        store: AuthStore,
        device: DeviceModel,
        now: Callable[[], float],
        ask: Ask,
        online: Callable[[], bool],
    ) -> None:
        self.store = store
        self.device = device
        self.now = now
        self.ask = ask
        self.online = online

    def cache(self, token: dict[str, Any], info: dict[str, Any]) -> None:
        """C10: remember the CSMS's answer (AuthCacheCtrlr.Enabled)."""
        if not self.device.bool_value("AuthCacheCtrlr", "Enabled"):
            return
        with contextlib.suppress(sqlite3.Error, ValueError):
            tag = str(token.get("idToken", ""))[:20]
            self.store.cache_put(tag, as_v16_info(info), self.now())

    def local_info(self, id_token: str) -> dict[str, Any] | None:
        """What the local list, then the cache, hold for a token (expiry applied)."""
        return self.store.lookup(
            id_token,
            self.now(),
            use_list=self.device.bool_value("LocalAuthListCtrlr", "Enabled"),
            use_cache=self.device.bool_value("AuthCacheCtrlr", "Enabled"),
        )

    def local_parent(self, tag: str) -> str | None:
        known = self.local_info(tag)
        parent = None if known is None else known.get("parentIdTag")
        return parent if isinstance(parent, str) else None

    async def decide(self, token: dict[str, Any]) -> str:
        """C01 / C12 / C13 / C15: the authorization status to act on."""
        known = self.local_info(str(token.get("idToken", "")))
        online = self.online()
        if online and known is not None and known.get("status") == "Accepted":
            if self.device.bool_value("AuthCtrlr", "LocalPreAuthorize"):  # C14
                return "Accepted"
        info = await self.ask(token) if online else None
        if info is not None:
            self.cache(token, info)
            return str(info.get("status", "Invalid"))
        if known is not None:  # offline from here on
            if known.get("status") != "Accepted":
                return str(known.get("status"))
            if self.device.bool_value("AuthCtrlr", "LocalAuthorizeOffline"):
                return "Accepted"
        if self.device.bool_value("AuthCtrlr", "OfflineTxForUnknownIdEnabled"):
            return "Accepted"
        return "Invalid"
