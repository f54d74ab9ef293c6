"""The one way tests wait for something to become true (issue 11: one poll helper, not seven).

`until` polls a fact with a bound that only fails a broken test, never times a working one;
`settled` lets the event loop run without advancing any clock, for ManualClock tests where a
result that arrives without `advance` proves the path is event-driven.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["settled", "until"]


async def until(
    predicate: Callable[[], object],
    within_s: float = 10.0,
    *,
    what: str = "",
    interval_s: float = 0.005,
) -> None:
    """Return once `predicate()` is truthy; AssertionError naming `what` after `within_s`."""
    try:
        async with asyncio.timeout(within_s):
            while not predicate():
                await asyncio.sleep(interval_s)
    except TimeoutError:
        raise AssertionError(f"not within {within_s:g} s: {what or predicate}") from None


async def settled(predicate: Callable[[], object], what: str, turns: int = 2000) -> None:
    """Let the loop run (no clock moves) until `predicate()` holds; AssertionError otherwise."""
    for _ in range(turns):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")
