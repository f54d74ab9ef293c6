"""Log lines name the board they come from (operators filter by logger)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from satellite.board_system import LocalBoardSystem


@pytest.mark.parametrize(
    ("role", "logger"), [("main", "main_node.board"), ("satellite", "satellite.board")]
)
def test_board_system_logs_under_its_role(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, role: str, logger: str
) -> None:
    state = tmp_path / "firmware" / "state.json"
    state.parent.mkdir(parents=True)
    state.write_text("{not json")  # makes the board system log once while it starts
    with caplog.at_level(logging.INFO):
        LocalBoardSystem("B-1", role, tmp_path, [], "chargeport-board")
    assert {r.name for r in caplog.records if "unreadable" in r.getMessage()} == {logger}
