"""HAL drivers from other packages, found through the `chargeport.hal` entry point group.

A vendor's package declares

    [project.entry-points."chargeport.hal"]
    acme = "acme_board:open_board"

and a board config selects it with `port.hal = "acme"`. The entry point names a callable
`(config: PortConfig, clock: Clock) -> async context manager yielding a hal.base.Board`; the
context manager owns whatever the driver opens. docs/hal-drivers.md has a worked example.
The built-in names `sim` and `serial` cannot be taken over by a package.
"""

from __future__ import annotations

import contextlib
import logging
from importlib.metadata import EntryPoint, entry_points
from typing import Protocol

from chargeport.clock import Clock
from chargeport.config import PortConfig
from hal.base import Board, HalError

__all__ = ["BUILT_IN", "GROUP", "HalDriver", "installed_drivers", "load_driver"]

log = logging.getLogger(__name__)

GROUP = "chargeport.hal"
BUILT_IN = ("sim", "serial")


class HalDriver(Protocol):
    """What a `chargeport.hal` entry point must name."""

    def __call__(
        self, config: PortConfig, clock: Clock
    ) -> contextlib.AbstractAsyncContextManager[Board]: ...


def installed_drivers() -> dict[str, EntryPoint]:
    """Drivers that installed packages offer, by name (built-in names excluded)."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUP):
        if ep.name in BUILT_IN:
            log.warning("HAL driver %r from %s ignored: the name is built in", ep.name, ep.value)
        else:
            found.setdefault(ep.name, ep)
    return found


def load_driver(name: str) -> HalDriver:
    """The driver called `name`; `HalError` (one line) when it is missing or does not load."""
    drivers = installed_drivers()
    ep = drivers.get(name)
    if ep is None:
        offered = ", ".join(sorted(drivers)) or "none installed"
        raise HalError(
            f"no HAL driver {name!r} (built in: {', '.join(BUILT_IN)}; from packages: {offered})"
        )
    package = ep.dist.name if ep.dist is not None else ep.module
    try:
        driver = ep.load()
    except Exception as exc:  # a third party's import failure, whatever it is
        raise HalError(
            f"HAL driver {name!r} ({ep.value}, package {package}) failed to load: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not callable(driver):
        raise HalError(f"HAL driver {name!r} ({ep.value}) is not callable")
    loaded: HalDriver = driver
    return loaded
