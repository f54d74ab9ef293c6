"""Reset (OCPP 1.6 §5.14: soft = stop transactions first) and time fan-out with drift report."""

from __future__ import annotations

from pathlib import Path

import pytest
from agg_fixtures import TARGET, Keys, Station

from chargeport.board import BoardUnavailable, ResetKind
from system_aggregator.aggregator import SystemAggregator, drifted


class Recorder:
    """A BoardSystem stand-in that records reset calls into a shared journal."""

    def __init__(self, serial: str, journal: list[str], fail: bool = False) -> None:
        self.serial = serial
        self._journal = journal
        self._fail = fail

    async def reset(self, kind: ResetKind) -> None:
        self._journal.append(f"{self.serial}:{kind.value}")
        if self._fail:
            raise BoardUnavailable("gone")


@pytest.mark.parametrize("kind", [ResetKind.SOFT, ResetKind.HARD])
async def test_reset_satellites_first_then_local(
    tmp_path: Path, keys: Keys, kind: ResetKind
) -> None:
    journal: list[str] = []

    async def stop_transactions() -> None:
        journal.append("transactions stopped")

    sats = [Recorder("S1", journal), Recorder("S2", journal, fail=True)]
    agg = SystemAggregator(
        Recorder("MAIN", journal), sats,  # type: ignore[arg-type]
        trusted_keys=[keys.pub], target=TARGET, work_dir=tmp_path,
        stop_transactions=stop_transactions,
    )  # fmt: skip
    await agg.reset(kind)
    first = ["transactions stopped"] if kind is ResetKind.SOFT else []
    assert journal[: len(first)] == first
    assert sorted(journal[len(first) : -1]) == [f"S1:{kind.value}", f"S2:{kind.value}"]
    assert journal[-1] == f"MAIN:{kind.value}"  # even though S2 failed


async def test_set_time_reports_drifted_boards(station: Station) -> None:
    station.satellites[0]._offset = 30.0  # SAT-1's clock runs 30 s ahead
    now = station.local.now()
    offsets = await station.aggregator.set_time(now)
    assert set(offsets) == {"SAT-1", "SAT-2", "MAIN-1"}
    assert offsets["SAT-1"] == pytest.approx(30.0, abs=1.0)
    assert station.aggregator.last_drift == ["SAT-1"]
    assert abs((await station.remotes[0].info()).time - station.local.now()) < 1.0


def test_drift_threshold_table() -> None:
    assert drifted({"a": 1.9, "b": -2.1, "c": 2.0, "d": float("nan")}, 2.0) == ["b", "d"]
