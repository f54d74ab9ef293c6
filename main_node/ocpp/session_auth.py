"""Authorization for the session: local list, cache, Authorize.req and the offline rules
(OCPP 1.6 section 3.5), for RFID swipes and RemoteStartTransaction (section 5.11); the
parentIdTag of a reservation (section 5.13); ConnectionTimeOut on every connector (key 9.1.6).

`SessionAuth` is a mixin of `client.OcppSession`; the hooks it declares are the session's.
"""

from __future__ import annotations

import logging
from typing import Any

from ocpp.exceptions import OCPPError
from ocpp.v16 import call

from chargeport.port import PortError, StopReason
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

    def _known_info(self, id_tag: str) -> dict[str, Any] | None:
        """The idTagInfo the local list or the cache holds for `id_tag` (section 3.5.3)."""
        return self.auth.lookup(
            id_tag,
            self.now(),
            use_list=self.config_bool("LocalAuthListEnabled", True),
            use_cache=self.config_bool("AuthorizationCacheEnabled", True),
        )

    def local_parent_id_tag(self, id_tag: str) -> str | None:
        known = self._known_info(id_tag)
        parent = None if known is None else known.get("parentIdTag")
        return parent if isinstance(parent, str) and parent else None

    async def async_id_tag_info(self, id_tag: str) -> dict[str, Any] | None:
        """The idTagInfo to act on: local list / cache, Authorize.req, offline rules (3.5).

        None = refuse (an offline unknown tag).
        """
        known = self._known_info(id_tag)
        if self.online:
            if known is not None and self.config_bool("LocalPreAuthorize", False):
                return known
            try:
                result = await self.async_request(call.Authorize(id_tag=id_tag))
            except (Offline, OCPPError, TimeoutError) as exc:
                log.info("Authorize.req failed (%s); deciding offline", exc)
            else:
                info = dict(result.id_tag_info)
                self.cache_id_tag(id_tag, info)
                # The package hands the answer over in snake_case.
                if "parent_id_tag" in info:
                    info["parentIdTag"] = info.pop("parent_id_tag")
                return info
        return self.auth.authorize_offline(
            id_tag,
            self.now(),
            self.config_bool("LocalAuthorizeOffline", True),
            self.config_bool("AllowOfflineTxForUnknownId", False),
            use_list=self.config_bool("LocalAuthListEnabled", True),
            use_cache=self.config_bool("AuthorizationCacheEnabled", True),
        )

    async def async_check_id_tag(self, id_tag: str) -> bool:
        """Authorize an id tag: local list / cache, Authorize.req, offline rules (section 3.5)."""
        info = await self.async_id_tag_info(id_tag)
        return info is not None and info.get("status") == "Accepted"

    async def async_reservation_decision(
        self, cid: int, id_tag: str
    ) -> tuple[bool, int | None, dict[str, Any] | None]:
        """May `id_tag` use `cid` given its reservations (section 5.13), learning its parent.

        A connector reserved for a parentIdTag accepts any id tag whose parentIdTag matches:
        the parent comes from the local list or the cache, else from an Authorize.req (whose
        answer is returned as well, so the tag is not authorized twice).
        """
        allowed, reservation = self.reservation_check(cid, id_tag)
        if allowed or not self.reserved_for_a_parent(cid):
            return allowed, reservation, None
        if self.local_parent_id_tag(id_tag) is not None:
            return False, None, None  # its known parent is not the reservation's
        asked = await self.async_id_tag_info(id_tag)
        parent = None if asked is None else asked.get("parentIdTag")
        if not isinstance(parent, str) or not parent:
            return False, None, asked
        allowed, reservation = self.reservation_check(cid, id_tag, parent)
        return allowed, reservation, asked

    async def async_local_authorize(self, cid: int, id_tag: str) -> None:
        """A tag presented at a port: stop its own transaction, or authorize a new one."""
        tx = self.active_tx.get(cid)
        if tx is not None:
            if tx.id_tag.casefold() == id_tag.casefold():
                await self.ports[cid].stop_transaction(StopReason.LOCAL)
            return
        allowed, reservation, info = await self.async_reservation_decision(cid, id_tag)
        if not allowed:
            log.info("connector %d is reserved for another id tag than %s", cid, id_tag)
            return
        if info is None:
            info = await self.async_id_tag_info(id_tag)
        if info is not None and info.get("status") == "Accepted":
            await self._authorize_port(cid, id_tag, reservation)
        else:
            log.info("id tag %s refused on connector %d", id_tag, cid)

    async def async_remote_start(
        self, connector_id: int, id_tag: str, profile: dict[str, Any] | None
    ) -> None:
        """RemoteStartTransaction accepted: authorize (if AuthorizeRemoteTxRequests), then go."""
        allowed, reservation, info = await self.async_reservation_decision(connector_id, id_tag)
        if not allowed:
            log.info("remote start for %s: connector %d reserved for another", id_tag, connector_id)
            return
        if self.config_bool("AuthorizeRemoteTxRequests", False):
            if info is None:
                info = await self.async_id_tag_info(id_tag)
            if info is None or info.get("status") != "Accepted":
                log.info("remote start for %s refused by authorization", id_tag)
                return
        if profile is not None:
            self.pending_tx_profile[connector_id] = profile
        await self._authorize_port(connector_id, id_tag, reservation)

    # ------------------------------------------------------------ ConnectionTimeOut (9.1.6)

    async def _authorize_port(self, cid: int, id_tag: str, reservation: int | None) -> None:
        """Hand the authorization to the port; it waits at most ConnectionTimeOut for the EV."""
        await self.ports[cid].authorize(id_tag, reservation)
        if cid not in self.active_tx:
            self.pending_auth.authorized(cid, self.now())
            self._auth_wake.set()

    async def async_connection_timeout_loop(self) -> None:
        """End each authorization no transaction used within ConnectionTimeOut, any board."""
        while True:
            timeout = self._interval("ConnectionTimeOut", 60)
            for cid in self.pending_auth.due(self.now(), timeout):
                if cid in self.active_tx:
                    continue  # the EV came: the authorization started a transaction
                log.info("connector %d: no EV within ConnectionTimeOut, authorization ends", cid)
                try:
                    await self.ports[cid].withdraw_authorization()
                except PortError as exc:  # the port ended it itself, or is unreachable
                    log.info("connector %d kept no authorization to end: %s", cid, exc)
            self._auth_wake.clear()
            await self._sleep_until(self._auth_wake, self.pending_auth.next_deadline(timeout))
