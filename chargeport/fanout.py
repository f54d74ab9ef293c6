"""Fan one ordered event stream out to any number of async subscribers (no I/O, loop-only)."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

__all__ = ["Fanout", "Subscription"]

T = TypeVar("T")

_CLOSED = object()


class Subscription(AsyncIterator[T], Generic[T]):
    """Everything published after it was created, in order, until the fanout closes."""

    def __init__(self, owner: Fanout[T]) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._owner = owner
        owner._subs.add(self)

    def _put(self, item: object) -> None:
        self._queue.put_nowait(item)

    def pending(self) -> int:
        """How many items wait to be read."""
        return self._queue.qsize()

    def __aiter__(self) -> Subscription[T]:
        return self

    async def __anext__(self) -> T:
        item = await self._queue.get()
        if item is _CLOSED:
            self._queue.put_nowait(_CLOSED)  # stay closed for later reads
            raise StopAsyncIteration
        return item  # type: ignore[return-value]

    async def aclose(self) -> None:
        """Stop receiving."""
        self._owner._subs.discard(self)
        self._put(_CLOSED)


class Fanout(Generic[T]):
    """Publish synchronously; each subscription has its own unbounded queue."""

    def __init__(self) -> None:
        self._subs: weakref.WeakSet[Subscription[T]] = weakref.WeakSet()
        self._closed = False

    def subscribe(self) -> Subscription[T]:
        sub = Subscription(self)
        if self._closed:
            sub._put(_CLOSED)
        return sub

    def publish(self, item: T) -> None:
        for sub in list(self._subs):
            sub._put(item)

    def close(self) -> None:
        """End every subscription (after the items already queued)."""
        self._closed = True
        for sub in list(self._subs):
            sub._put(_CLOSED)
