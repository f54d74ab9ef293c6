"""The live terminal table of `chargeport sim` (rich), built from the main's state snapshot."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from chargeport.sim.supervisor import Supervisor

__all__ = ["render_table"]


def render_table(state: dict[str, Any] | None, supervisor: Supervisor) -> Table:
    table = Table(title="chargeport station (Ctrl-C stops)", expand=False)
    for column in ("gun", "board", "state", "current A", "power kW", "session kWh", "sessions"):
        table.add_column(column)
    table.add_column("link")
    if state is None:
        table.caption = "waiting for the main board to answer…"
        return table
    for gun in state["guns"]:
        current = "/".join(f"{c:.1f}" for c in gun["current_a"]) or "—"
        link = "up" if gun["link_up"] else "[red]DOWN[/red]"
        errors = ", ".join(gun["active_errors"])
        table.add_row(
            str(gun["connector"]),
            gun["serial"],
            gun["state"] + (f" [red]{errors}[/red]" if errors else ""),
            current,
            f"{round(gun['power_w'] / 1000, 2) + 0.0:.2f}",  # + 0.0: no "-0.00"
            f"{gun['session_energy_wh'] / 1000:.3f}",
            str(gun["sessions_completed"]),
            f"{link} fw {gun['firmware_version']}",
        )
    restarts = {n: c.starts - 1 for n, c in supervisor.children.items() if c.starts > 1}
    csms = "connected" if state["ocpp_connected"] else "offline"
    table.caption = f"CSMS {csms} · firmware {state['firmware_status']}" + (
        f" · restarts {restarts}" if restarts else ""
    )
    for problem in state.get("discovery_problems", []):
        table.caption += f"\n[yellow]{problem}[/yellow]"
    return table
