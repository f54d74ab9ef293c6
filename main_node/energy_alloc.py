"""The allocator core: available current and a fair share of it. No I/O.

- Available current per phase = the site limit (grid connection), lowered by the building's
  other load when a mains reading exists (`site - max_p(mains_p - ours_p)`) and by the OCPP
  ChargePointMaxProfile limit (connector 0).
- Conservative phase model: phase rotation is unknown, so every port is assumed to load the same
  phase; one scalar budget per phase covers 1- and 3-phase ports alike.
- Fair share with water-filling: a port capped below its share (its max current, a per-connector
  OCPP or local limit) returns the surplus to the others.
- IEC 61851-1 minimum (6 A, duty 10 %): a port that cannot get it gets 0 (paused), never less.
  When the budget does not cover everyone, the most recently started sessions pause first
  (first come, first served; ties by connector id). The energy manager decides beforehand who
  runs (`main_node.energy_policy`: rotation, hysteresis, priority) and passes only those.
- Reductions are sent before increases (`order_pushes`), so the sum of limits on the ports
  never exceeds the budget in between.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["PortDemand", "allocate", "available_current", "order_pushes"]

_RESOLUTION_A = 0.1  # limits are rounded down to this step so their sum stays in budget


@dataclass(frozen=True, slots=True)
class PortDemand:
    """One port as the allocator sees it."""

    connector_id: int
    active: bool  # a vehicle in an authorized session wants energy
    max_current_a: float  # the port's ceiling: hardware max and any per-connector limit
    phases: int = 3
    order: int = 0  # session start order: higher started later and pauses first


def available_current(
    site_limit_a: float,
    mains_a: Sequence[float] | None = None,
    own_a: Sequence[float] = (),
    station_limit_a: float | None = None,
) -> float:
    """Current per phase the ports may share: site limit less the building's other load."""
    available = site_limit_a
    if mains_a is not None:
        own = [*own_a, 0.0, 0.0, 0.0][:3]
        # The mains meter sees our ports too; only the rest of the building is subtracted.
        other = max(max(m - o, 0.0) for m, o in zip(mains_a, own, strict=False))
        available -= other
    if station_limit_a is not None:
        available = min(available, station_limit_a)
    return max(available, 0.0)


def _water_fill(budget: float, caps: Sequence[float]) -> list[float]:
    """Equal shares, where a share above a cap is redistributed among the others."""
    shares = [0.0] * len(caps)
    remaining = budget
    by_cap = sorted(range(len(caps)), key=lambda i: caps[i])
    for rank, i in enumerate(by_cap):
        shares[i] = min(caps[i], remaining / (len(caps) - rank))
        remaining -= shares[i]
    return shares


def _floor(amps: float) -> float:
    return math.floor(amps / _RESOLUTION_A + 1e-6) * _RESOLUTION_A


def allocate(
    available_a: float, ports: Iterable[PortDemand], min_current_a: float = 6.0
) -> dict[int, float]:
    """Amps per connector: water-filled fair share, 0 for ports below the IEC 61851 minimum."""
    ports = list(ports)
    result = {p.connector_id: 0.0 for p in ports}
    # A ceiling below the minimum cannot be honoured by PWM (IEC 61851-1 A.2.3): pause it.
    eligible = sorted(
        (p for p in ports if p.active and p.max_current_a >= min_current_a and p.max_current_a > 0),
        key=lambda p: (p.order, p.connector_id),
    )
    budget = max(available_a, 0.0)
    if min_current_a > 0:
        # Every eligible ceiling is >= the minimum, so k ports fit iff budget >= k * minimum.
        eligible = eligible[: int(budget / min_current_a + 1e-9)]
    shares = _water_fill(budget, [p.max_current_a for p in eligible])
    for port, share in zip(eligible, shares, strict=True):
        result[port.connector_id] = max(_floor(share), min_current_a)
    return result


def order_pushes(
    previous: Mapping[int, float | None], desired: Mapping[int, float]
) -> tuple[list[int], list[int]]:
    """Split pushes into (first, then): reductions and unknowns before increases."""
    first: list[int] = []
    then: list[int] = []
    for cid in sorted(desired):
        before = previous.get(cid)
        (then if before is not None and desired[cid] > before else first).append(cid)
    return first, then
