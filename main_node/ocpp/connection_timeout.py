"""ConnectionTimeOut (OCPP 1.6 key 9.1.6): an authorization given to a connector ends when no
transaction starts within that many seconds, on every connector whichever board it is on.

Theory of operation: the station records the moment it handed an authorization to a port
(RemoteStartTransaction, 5.11, or a presented id tag, 3.5). The deadline is that moment plus
the key's *current* value, so a ChangeConfiguration of the key applies at once to the
authorizations already waiting. A transaction that started, or a port that ended the
authorization itself, clears the entry. Pure: time is passed in.
"""

from __future__ import annotations

__all__ = ["PendingAuthorizations"]


class PendingAuthorizations:
    """Authorizations handed to ports and still waiting for the EV."""

    def __init__(self) -> None:
        self._since: dict[int, float] = {}

    def authorized(self, connector_id: int, now: float) -> None:
        """The port was told to accept `connector_id`'s next EV from `now`."""
        self._since[connector_id] = now

    def ended(self, connector_id: int) -> None:
        """The authorization was used (a transaction started) or withdrawn."""
        self._since.pop(connector_id, None)

    def waiting(self) -> list[int]:
        """Connectors with an authorization waiting, in order."""
        return sorted(self._since)

    def next_deadline(self, timeout_s: float) -> float | None:
        """When the first waiting authorization times out; None when none does (0 = off)."""
        if timeout_s <= 0 or not self._since:
            return None
        return min(self._since.values()) + timeout_s

    def due(self, now: float, timeout_s: float) -> list[int]:
        """Connectors whose authorization has timed out at `now`; they are forgotten."""
        if timeout_s <= 0:
            return []
        out = sorted(c for c, since in self._since.items() if now - since >= timeout_s - 1e-6)
        for connector_id in out:
            del self._since[connector_id]
        return out
