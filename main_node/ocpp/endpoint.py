"""The one rule for the CSMS websocket URL (OCPP-J 1.6 section 3.1.1 "server endpoint").

The charge point connects to `<csms_url>/<station id>`: the station appends its id as the last
path segment, unless `csms_url` already ends with exactly that segment (so both
`wss://csms/ocpp` and `wss://csms/ocpp/CP-0001` reach `wss://csms/ocpp/CP-0001` for station
`CP-0001`). A query string stays at the end.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

__all__ = ["csms_endpoint"]


def csms_endpoint(csms_url: str, station_id: str) -> str:
    """The websocket URL for `station_id` under `csms_url`, by the rule above."""
    parts = urlsplit(csms_url)
    segment = quote(station_id, safe="")
    path = parts.path.rstrip("/")
    if path.rsplit("/", 1)[-1] not in (station_id, segment):
        path = f"{path}/{segment}"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))
