"""Crash-only tasks (issue 12): a supervised task restarts with backoff within its budget and
gives up past it; a failure that is not restarted reaches a hook that ends the process."""

from __future__ import annotations

import asyncio
import logging

import pytest

from chargeport.clock import ManualClock
from chargeport.tasks import (
    OwnedTasks,
    RestartBudget,
    RestartPolicy,
    TaskGaveUp,
    set_failure_hook,
    supervise,
)

log = logging.getLogger("test.supervision")

POLICY = RestartPolicy(initial_s=1.0, max_s=4.0, budget=3, window_s=60.0)


@pytest.mark.parametrize(
    ("failures_at", "delays"),
    [
        ([0.0], [1.0]),  # first failure: initial backoff
        ([0.0, 1.0, 2.0], [1.0, 2.0, 4.0]),  # doubling
        ([0.0, 1.0, 2.0, 3.0], [1.0, 2.0, 4.0, None]),  # one past the budget: give up
        ([0.0, 1.0, 2.0, 61.5], [1.0, 2.0, 4.0, 2.0]),  # two left the window
        ([0.0, 100.0, 200.0, 300.0], [1.0, 1.0, 1.0, 1.0]),  # rare failures never add up
    ],
)
def test_restart_budget_backs_off_and_gives_up_past_its_budget(
    failures_at: list[float], delays: list[float | None]
) -> None:
    budget = RestartBudget(POLICY)
    assert [budget.failed(t) for t in failures_at] == delays


def test_backoff_never_exceeds_its_maximum() -> None:
    budget = RestartBudget(RestartPolicy(initial_s=1.0, max_s=4.0, budget=100, window_s=1e9))
    assert max(d or 0.0 for d in (budget.failed(float(t)) for t in range(20))) == 4.0


async def test_supervise_restarts_a_failing_task_until_it_succeeds() -> None:
    clock = ManualClock()
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise RuntimeError(f"boom {len(runs)}")

    task = asyncio.create_task(supervise(flaky, "flaky", log, POLICY, clock))
    while not task.done():  # each backoff ends when the clock passes it
        clock.advance(10.0)
        await asyncio.sleep(0)
    await task
    assert runs == [0, 1, 2]


async def test_supervise_gives_up_with_task_gave_up_past_the_budget() -> None:
    policy = RestartPolicy(initial_s=0.0, max_s=0.0, budget=2, window_s=60.0)
    runs = 0

    async def broken() -> None:
        nonlocal runs
        runs += 1
        raise ValueError("always")

    with pytest.raises(TaskGaveUp) as caught:
        await supervise(broken, "broken", log, policy)
    assert runs == 3 and isinstance(caught.value.__cause__, ValueError)


async def test_cancellation_is_not_a_failure() -> None:
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(supervise(forever, "forever", log, POLICY))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_owned_task_failure_reaches_its_owner_then_the_process_hook() -> None:
    seen: list[tuple[str, str]] = []
    hooked: list[str] = []

    async def fail() -> None:
        raise RuntimeError("dead")

    owned = OwnedTasks(log, on_failure=lambda name, exc: seen.append((name, str(exc))))
    task = owned.spawn(fail(), "with-owner")
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)  # the done callback
    assert seen == [("with-owner", "dead")]

    previous = set_failure_hook(lambda name, exc: hooked.append(name))
    try:
        plain = OwnedTasks(log)
        task = plain.spawn(fail(), "without-owner")
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)
    finally:
        set_failure_hook(previous)
    assert hooked == ["without-owner"]


async def test_spawn_supervised_reports_only_when_the_task_gives_up() -> None:
    seen: list[str] = []
    owned = OwnedTasks(log, on_failure=lambda name, exc: seen.append(type(exc).__name__))
    runs = 0

    async def twice_then_fine() -> None:
        nonlocal runs
        runs += 1
        if runs <= 2:
            raise RuntimeError("transient")

    policy = RestartPolicy(initial_s=0.0, max_s=0.0, budget=5, window_s=60.0)
    await owned.spawn_supervised(twice_then_fine, "transient", policy)
    assert runs == 3 and seen == []

    async def always() -> None:
        raise RuntimeError("permanent")

    task = owned.spawn_supervised(always, "permanent", policy)
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)
    assert seen == ["TaskGaveUp"]
