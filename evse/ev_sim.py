"""Simulated-EV scenarios in the style of EVerest's car simulator.

A scenario is commands separated by ';' or newlines, '#' starts a comment:

    sleep 1; plugin; auth 04A1B2C3; wait_pwm; draw_power_regulated 16,3; sleep 30; pause; unplug

Commands: `sleep S`, `plugin`, `unplug`, `wait_pwm`, `draw_power_regulated A,P`,
`draw_power_fixed A,P` (ignores the PWM offer), `overshoot A` (a regulated EV that reads the
duty A amps too high), `pause` (back to state B), `auth TAG` (the driver presents an RFID card),
fault injections `diode_fault`, `rcd_trip`, `cp_short`, `welded_contactor`,
`stuck_open_contactor`, `over_temperature`, `meter_failure` (optionally followed by `off`).
"""

from __future__ import annotations

from dataclasses import dataclass

from chargeport.clock import Clock
from evse.errors import EvseError
from hal.sim import FAULTS, SimulatedEv

__all__ = ["ScenarioError", "SimulatedEv", "Step", "parse_scenario", "run_scenario"]


class ScenarioError(EvseError):
    """A scenario script that cannot be parsed; the message names the line."""


@dataclass(frozen=True, slots=True)
class Step:
    command: str
    args: tuple[str, ...] = ()
    line: int = 0


_ARITY = {
    "sleep": 1,
    "plugin": 0,
    "unplug": 0,
    "wait_pwm": 0,
    "draw_power_regulated": 1,
    "draw_power_fixed": 1,
    "pause": 0,
    "auth": 1,
    "overshoot": 1,
}


def _check(cmd: str, args: tuple[str, ...], line: int) -> Step:
    where = f"line {line}: {cmd}"
    if cmd in FAULTS:
        if args not in ((), ("on",), ("off",)):
            raise ScenarioError(f"{where}: expected nothing, 'on' or 'off' after a fault name")
        return Step(cmd, args, line)
    if cmd not in _ARITY:
        known = ", ".join([*_ARITY, *FAULTS])
        raise ScenarioError(f"line {line}: unknown command {cmd!r} (expected one of: {known})")
    if len(args) != _ARITY[cmd]:
        raise ScenarioError(f"{where}: expected {_ARITY[cmd]} argument(s), got {len(args)}")
    if cmd in ("sleep", "overshoot"):
        what = "seconds" if cmd == "sleep" else "amps"
        try:
            value = float(args[0])
        except ValueError:
            raise ScenarioError(f"{where}: expected {what}, got {args[0]!r}") from None
        if not value >= 0:
            raise ScenarioError(f"{where}: {what} must be >= 0, got {args[0]!r}")
    if cmd.startswith("draw_power"):
        parts = args[0].split(",")
        try:
            amps, phases = float(parts[0]), int(parts[1])
        except (ValueError, IndexError):
            raise ScenarioError(f"{where}: expected 'AMPS,PHASES', got {args[0]!r}") from None
        if len(parts) != 2 or amps < 0 or phases not in (1, 2, 3):
            raise ScenarioError(f"{where}: expected AMPS >= 0 and PHASES 1..3, got {args[0]!r}")
    return Step(cmd, args, line)


def parse_scenario(text: str) -> list[Step]:
    """Parse a scenario; `ScenarioError` names the first bad line."""
    steps: list[Step] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        for part in raw.split("#", 1)[0].split(";"):
            words = part.split()
            if not words:
                continue
            # "draw_power_regulated 16, 3" is accepted too: rejoin the argument list.
            cmd, rest = words[0], words[1:]
            args = ("".join(rest),) if cmd.startswith("draw_power") and rest else tuple(rest)
            steps.append(_check(cmd, args, number))
    return steps


async def run_scenario(steps: list[Step], ev: SimulatedEv, clock: Clock) -> None:
    """Play `steps` on `ev`, sleeping on `clock`."""
    board = ev.board
    for step in steps:
        cmd, args = step.command, step.args
        if cmd == "sleep":
            await clock.sleep(float(args[0]))
        elif cmd == "plugin":
            ev.plug_in()
        elif cmd == "unplug":
            ev.unplug()
        elif cmd == "wait_pwm":
            await ev.wait_pwm()
        elif cmd in ("draw_power_regulated", "draw_power_fixed"):
            amps, phases = args[0].split(",")
            ev.draw(float(amps), int(phases), regulated=cmd == "draw_power_regulated")
        elif cmd == "pause":
            ev.pause()
        elif cmd == "overshoot":
            ev.overshoot_a = float(args[0])
            board._changed()
        elif cmd == "auth":
            ev.swipe(args[0])
        elif cmd == "rcd_trip" and not args:
            # A residual-current pulse: the RCD latches until the runtime resets it.
            board.inject(cmd, True)
            board.inject(cmd, False)
        else:
            board.inject(cmd, args != ("off",))
