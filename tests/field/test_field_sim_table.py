"""The `chargeport sim` table fits an 80-column terminal and says how many boards are linked."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from simulation.supervisor import Supervisor
from simulation.table import render_table


def gun(connector: int, serial: str, state: str, link_up: bool = True) -> dict[str, Any]:
    return {
        "connector": connector,
        "serial": serial,
        "state": state,
        "active_errors": ["GroundFailure"] if state == "Faulted" else [],
        "current_a": [16.0, 15.9, 16.1],
        "power_w": 11040.0,
        "session_energy_wh": 12345.0,
        "sessions_completed": 12,
        "link_up": link_up,
        "firmware_version": "1.0.0",
    }


def render(state: dict[str, Any] | None) -> str:
    console = Console(width=80, record=True, color_system=None)
    console.print(render_table(state, Supervisor()))
    return console.export_text()


def test_four_guns_fit_80_columns_without_cutting_anything() -> None:
    serials = ["MAIN-0001", "SAT-0002-1a2b3c", "SAT-0003-1a2b3c", "SAT-0004-1a2b3c"]
    states = ["Charging", "SuspendedEVSE", "Faulted", "Available"]
    text = render(
        {
            "guns": [
                gun(i + 1, s, st) for i, (s, st) in enumerate(zip(serials, states, strict=True))
            ],
            "ocpp_connected": True,
            "firmware_status": "Idle",
        }
    )
    assert "…" not in text
    assert all(len(line) <= 80 for line in text.splitlines())
    for word in [*serials, *states, "GroundFailure", "16.0x3", "11.04", "12.345", "link"]:
        assert word in text


def test_bootstrap_progress_counts_linked_boards() -> None:
    text = render(
        {
            "guns": [gun(1, "MAIN-0001", "Available"), gun(2, "SAT-2", "Unavailable", False)],
            "ocpp_connected": False,
            "firmware_status": "Idle",
        }
    )
    assert "boards linked: 1 of 2" in text and "DOWN" in text
    assert "waiting for the main board" in render(None)
