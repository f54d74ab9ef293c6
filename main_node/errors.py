"""The main_node package's error base."""

from __future__ import annotations

from chargeport.errors import ChargeportError

__all__ = ["MainNodeError"]


class MainNodeError(ChargeportError):
    """Base of every main_node error."""
