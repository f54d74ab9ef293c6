"""The live terminal table of `chargeport sim` (rich), built from the main's state snapshot."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.table import Table

from simulation.supervisor import Supervisor

__all__ = ["render_table"]


def _current(phases: list[float]) -> str:
    """Per-phase current, compact: "16.0x3" when the phases agree, else each one."""
    if not phases:
        return "—"
    if max(phases) - min(phases) < 0.5:
        return f"{sum(phases) / len(phases):.1f}x{len(phases)}"
    return "/".join(f"{c:.0f}" for c in phases)


def render_table(state: dict[str, Any] | None, supervisor: Supervisor) -> Table:
    """The station as a table that fits an 80-column terminal."""
    table = Table(title="chargeport station (Ctrl-C stops)", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("gun", justify="right", no_wrap=True)
    table.add_column("board", no_wrap=True, overflow="ellipsis", max_width=18)
    table.add_column("state", no_wrap=True)
    table.add_column("A", justify="right", no_wrap=True)
    table.add_column("kW", justify="right", no_wrap=True)
    table.add_column("kWh", justify="right", no_wrap=True)
    table.add_column("done", justify="right", no_wrap=True)
    table.add_column("link", no_wrap=True)
    if state is None:
        table.caption = "waiting for the main board to answer…"
        return table
    versions = {gun["firmware_version"] for gun in state["guns"]}
    for gun in state["guns"]:
        link = "up" if gun["link_up"] else "[red]DOWN[/red]"
        if len(versions) > 1:
            link += f" {gun['firmware_version']}"
        errors = ", ".join(gun["active_errors"])
        table.add_row(
            str(gun["connector"]),
            gun["serial"],
            gun["state"] + (f"\n[red]{errors}[/red]" if errors else ""),
            _current(gun["current_a"]),
            f"{round(gun['power_w'] / 1000, 2) + 0.0:.2f}",  # + 0.0: no "-0.00"
            f"{gun['session_energy_wh'] / 1000:.3f}",
            str(gun["sessions_completed"]),
            link,
        )
    restarts = {n: c.starts - 1 for n, c in supervisor.children.items() if c.starts > 1}
    csms = "connected" if state["ocpp_connected"] else "offline"
    firmware = f"fw {versions.pop()} · " if len(versions) == 1 else ""
    table.caption = f"CSMS {csms} · {firmware}update {state['firmware_status']}" + (
        f" · restarts {restarts}" if restarts else ""
    )
    up = sum(1 for gun in state["guns"] if gun["link_up"])
    if up < len(state["guns"]):
        table.caption += f"\nboards linked: {up} of {len(state['guns'])}"
    for problem in state.get("discovery_problems", []):
        table.caption += f"\n[yellow]{problem}[/yellow]"
    return table
