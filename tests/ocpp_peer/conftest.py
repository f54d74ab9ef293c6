"""The strict-peer suite: every test talks to `peer/csms.js` (ocpp-rpc, strictMode) and fails
on any schema failure in either direction; the run ends with one summary line

    ocpp-peer: N passed, N failed, S schema failures
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# The station fixture the other OCPP tests use (a main with a local port and satellites).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ocpp"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ocpp201"))  # the 2.0.1 kit

from strict_peer import StrictPeer, peer_ready

_HERE = Path(__file__).resolve().parent
_schema_failures: list[dict[str, object]] = []


@pytest.fixture
async def peer() -> AsyncIterator[StrictPeer]:
    """A running strict central system; the test fails if any message failed its schema."""
    why = peer_ready()
    if why is not None:
        pytest.fail(why)
    async with StrictPeer() as running:
        yield running
    failures = running.schema_failures
    _schema_failures.extend(failures)
    assert not failures, f"OCPP 1.6 schema failures: {failures}"


@pytest.fixture
async def peer201() -> AsyncIterator[StrictPeer]:
    """The strict central system speaking OCPP 2.0.1 (`ocpp2.0.1`, the 2.0.1 schemas)."""
    why = peer_ready()
    if why is not None:
        pytest.fail(why)
    async with StrictPeer("ocpp2.0.1") as running:
        yield running
    failures = running.schema_failures
    _schema_failures.extend(failures)
    assert not failures, f"OCPP 2.0.1 schema failures: {failures}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    ours: dict[str, bool] = {}  # nodeid -> passed (a failing setup/teardown fails the test)
    for key in ("passed", "failed", "error"):
        for report in terminalreporter.stats.get(key, []):
            path = Path(str(getattr(report, "fspath", "")))
            if not path.is_absolute():
                path = Path(terminalreporter.config.rootpath) / path
            if _HERE not in path.parents:
                continue
            ok = key == "passed"
            ours[report.nodeid] = ours.get(report.nodeid, True) and ok
    if not ours:
        return
    passed = sum(1 for ok in ours.values() if ok)
    failed = len(ours) - passed
    terminalreporter.write_line(
        f"ocpp-peer: {passed} passed, {failed} failed, {len(_schema_failures)} schema failures"
    )
