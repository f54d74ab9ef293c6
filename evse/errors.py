"""Errors of the evse package; `LocalPort` translates them to `chargeport.port` errors."""

from __future__ import annotations

from chargeport.errors import ChargeportError

__all__ = ["EvseError", "IllegalTransition", "Refused"]


class EvseError(ChargeportError):
    """Base of every evse error."""


class IllegalTransition(EvseError):
    """An input the state machine has no transition for (a bug in whoever fed it)."""


class Refused(EvseError):
    """A command that is not possible in the current state (the caller's fault)."""
