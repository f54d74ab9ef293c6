"""Authorization for the session: local list, cache, Authorize.req and the offline rules
(OCPP 1.6 section 3.5), for RFID swipes and RemoteStartTransaction (section 5.11).

`SessionAuth` is a mixin of `client.OcppSession`; the hooks it declares are the session's.
"""

from __future__ import annotations

import logging
from typing import Any

from ocpp.exceptions import OCPPError
from ocpp.v16 import call

from chargeport.port import StopReason
from main_node.ocpp.auth import AuthStore
from main_node.ocpp.session_ops import Offline
from main_node.ocpp.station_state import StationState

__all__ = ["SessionAuth"]

log = logging.getLogger(__name__)


class SessionAuth(StationState):
    """Decides whether an id tag may charge, asking the CSMS when it can."""

    auth: AuthStore

    @property
    def online(self) -> bool:
        raise NotImplementedError  # the session knows its connection

    async def async_request(self, payload: Any) -> Any:
        raise NotImplementedError  # the session sends live CALLs

    def cache_id_tag(self, id_tag: str, info: dict[str, Any]) -> None:
        """Remember a CSMS answer in the authorization cache (when enabled)."""
        if id_tag and self.config_bool("AuthorizationCacheEnabled", True):
            self.auth.cache_put(id_tag, info, self.now())

    async def async_check_id_tag(self, id_tag: str) -> bool:
        """Authorize an id tag: local list / cache, Authorize.req, offline rules (section 3.5)."""
        now = self.now()
        use_list = self.config_bool("LocalAuthListEnabled", True)
        use_cache = self.config_bool("AuthorizationCacheEnabled", True)
        known = self.auth.lookup(id_tag, now, use_list=use_list, use_cache=use_cache)
        if self.online:
            if known is not None and self.config_bool("LocalPreAuthorize", False):
                return bool(known.get("status") == "Accepted")
            try:
                result = await self.async_request(call.Authorize(id_tag=id_tag))
            except (Offline, OCPPError, TimeoutError) as exc:
                log.info("Authorize.req failed (%s); deciding offline", exc)
            else:
                info = dict(result.id_tag_info)
                self.cache_id_tag(id_tag, info)
                return bool(info.get("status") == "Accepted")
        decision = self.auth.authorize_offline(
            id_tag,
            now,
            self.config_bool("LocalAuthorizeOffline", True),
            self.config_bool("AllowOfflineTxForUnknownId", False),
            use_list=use_list,
            use_cache=use_cache,
        )
        return decision is not None and decision.get("status") == "Accepted"

    async def async_local_authorize(self, cid: int, id_tag: str) -> None:
        """A tag presented at a port: stop its own transaction, or authorize a new one."""
        tx = self.active_tx.get(cid)
        if tx is not None:
            if tx.id_tag.casefold() == id_tag.casefold():
                await self.ports[cid].stop_transaction(StopReason.LOCAL)
            return
        allowed, reservation = self.reservation_check(cid, id_tag)
        if not allowed:
            log.info("connector %d is reserved for another id tag than %s", cid, id_tag)
        elif await self.async_check_id_tag(id_tag):
            await self.ports[cid].authorize(id_tag, reservation)
        else:
            log.info("id tag %s refused on connector %d", id_tag, cid)

    async def async_remote_start(
        self, connector_id: int, id_tag: str, profile: dict[str, Any] | None
    ) -> None:
        """RemoteStartTransaction accepted: authorize (if AuthorizeRemoteTxRequests), then go."""
        allowed, reservation = self.reservation_check(connector_id, id_tag)
        if not allowed:
            log.info("remote start for %s: connector %d reserved for another", id_tag, connector_id)
            return
        if self.config_bool("AuthorizeRemoteTxRequests", False):
            if not await self.async_check_id_tag(id_tag):
                log.info("remote start for %s refused by authorization", id_tag)
                return
        if profile is not None:
            self.pending_tx_profile[connector_id] = profile
        await self.ports[connector_id].authorize(id_tag, reservation)
