"""The satellite package's error base."""

from __future__ import annotations

from chargeport.errors import ChargeportError

__all__ = ["SatelliteError"]


class SatelliteError(ChargeportError):
    """Base of every satellite error."""
