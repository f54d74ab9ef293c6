"""The system_aggregator package's error base."""

from __future__ import annotations

from chargeport.errors import ChargeportError

__all__ = ["AggregatorError"]


class AggregatorError(ChargeportError):
    """Base of every system_aggregator error."""
