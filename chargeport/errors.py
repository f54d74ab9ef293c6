"""The base of every chargeport error a user may see; its message is one line saying what to fix.

Each package has one base below this one (h11's `LocalProtocolError` / `RemoteProtocolError`
habit, per package): `hal.base.HalError`, `evse.errors.EvseError`,
`satellite.errors.SatelliteError`, `system_aggregator.errors.AggregatorError`,
`main_node.errors.MainNodeError`; the shared contracts' own (`PortError`, `BoardError`,
`ConfigError`, `BundleError`, `PkiError`) derive from `ChargeportError` directly. Library
exceptions (grpc, serial, paho, ocpp, pymodbus) are translated at the seam that meets them.
`tests/unit/test_error_bases.py` keeps it so.
"""

from __future__ import annotations

__all__ = ["ChargeportError"]


class ChargeportError(Exception):
    """Raised for a problem the user can fix; the CLI prints it as one line."""
