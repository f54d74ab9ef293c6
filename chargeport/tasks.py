"""Owned background tasks: every task has an owner that names it, logs its failure and stops it.

STYLE.md rule 9 (no fire-and-forget) in one place, instead of a `_tasks` set, a `_spawn` and a
cancel-and-gather loop in every class that runs something in the background.

Crash-only (ARCHITECTURE.md): a long-lived task either restarts after a failure (`supervise`,
with exponential backoff and a budget of failures per window, decided by the pure
`RestartBudget`) or its failure ends the process. A process installs the last resort with
`set_failure_hook` (the main exits non-zero so that systemd restarts it): a task of any
`OwnedTasks` in the process that fails is then never only a line in the log.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from chargeport.clock import Clock, RealClock

__all__ = [
    "FailureHook",
    "OwnedTasks",
    "RestartBudget",
    "RestartPolicy",
    "TaskGaveUp",
    "set_failure_hook",
    "supervise",
]

T = TypeVar("T")

FailureHook = Callable[[str, BaseException], None]

_failure_hook: FailureHook | None = None


def set_failure_hook(hook: FailureHook | None) -> FailureHook | None:
    """Call `hook(name, exc)` whenever an owned task of this process fails; returns the old one."""
    global _failure_hook
    previous, _failure_hook = _failure_hook, hook
    return previous


class TaskGaveUp(Exception):
    """A supervised task failed more often than its `RestartPolicy` allows."""


@dataclass(frozen=True)
class RestartPolicy:
    """Restart after `initial_s`, doubling up to `max_s`; more than `budget` failures within
    `window_s` seconds and the task gives up (its owner, or the process, ends)."""

    initial_s: float = 0.5
    max_s: float = 30.0
    budget: int = 5
    window_s: float = 300.0


class RestartBudget:
    """Pure: the delay before restarting a task that failed at `now`, or None to give up."""

    def __init__(self, policy: RestartPolicy) -> None:
        self._policy = policy
        self._failures: collections.deque[float] = collections.deque()

    def failed(self, now: float) -> float | None:
        policy = self._policy
        self._failures.append(now)
        while self._failures and self._failures[0] <= now - policy.window_s:
            self._failures.popleft()
        count = len(self._failures)
        if count > policy.budget:
            return None
        return float(min(policy.max_s, policy.initial_s * 2 ** (count - 1)))

    @property
    def failures(self) -> int:
        """Failures within the window, as of the last `failed`."""
        return len(self._failures)


async def supervise(
    factory: Callable[[], Awaitable[None]],
    name: str,
    log: logging.Logger,
    policy: RestartPolicy | None = None,
    clock: Clock | None = None,
) -> None:
    """Run `factory()` until it returns; restart it after a failure, per `policy`.

    A task that fails more than the budget allows raises `TaskGaveUp` (from the last error).
    Cancellation is never a failure.
    """
    budget = RestartBudget(policy or RestartPolicy())
    clock = clock or RealClock()
    while True:
        try:
            await factory()
            return
        except Exception as exc:
            delay = budget.failed(clock.monotonic())
            if delay is None:
                log.critical("%s failed %d times; giving up: %s", name, budget.failures, exc)
                raise TaskGaveUp(f"{name} failed {budget.failures} times: {exc}") from exc
            log.error("%s failed; restarting in %.2f s", name, delay, exc_info=exc)
            await clock.sleep(delay * clock.speed)  # backoff in real seconds


class OwnedTasks:
    """A set of named tasks; a task that fails is logged on `log`, `cancel_all` stops them all.

    A failure is also handed to `on_failure` (or, without one, to the process's failure hook).
    """

    def __init__(self, log: logging.Logger, on_failure: FailureHook | None = None) -> None:
        self._log = log
        self._on_failure = on_failure
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def spawn_supervised(
        self,
        factory: Callable[[], Awaitable[None]],
        name: str,
        policy: RestartPolicy | None = None,
        clock: Clock | None = None,
    ) -> asyncio.Task[None]:
        """`spawn` a task that `supervise` restarts; when it gives up, the failure is reported."""
        return self.spawn(supervise(factory, name, self._log, policy, clock), name)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        assert exc is not None
        self._log.error("%s failed", task.get_name(), exc_info=exc)
        hook = self._on_failure or _failure_hook
        if hook is not None:
            hook(task.get_name(), exc)

    def __len__(self) -> int:
        return len(self._tasks)

    async def wait(self) -> None:
        """Wait until every task now running has finished (failures are logged, not raised)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def cancel_all(self) -> None:
        """Cancel every task and wait until each has finished."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
