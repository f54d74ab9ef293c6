"""The base of every chargeport error a user may see; its message is one line saying what to fix."""

from __future__ import annotations

__all__ = ["ChargeportError"]


class ChargeportError(Exception):
    """Raised for a problem the user can fix; the CLI prints it as one line."""
