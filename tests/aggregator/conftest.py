"""Registers the aggregator fixtures (defined in agg_fixtures.py so tests can import helpers)."""

from agg_fixtures import ftp_server, http_server, keys, station

__all__ = ["ftp_server", "http_server", "keys", "station"]
