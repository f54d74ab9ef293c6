"""Link test fixtures (they live in linkkit.py so tests can import the helpers too)."""

from linkkit import link, pki, proxy_factory, stranger_pki

__all__ = ["link", "pki", "proxy_factory", "stranger_pki"]
