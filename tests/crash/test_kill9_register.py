"""Energy after a crash (issue 12): the main is SIGKILLed mid-charge and started again; the
PowerLoss StopTransaction of its own gun (OCPP 1.6 section 6.49 Reason PowerLoss) carries
the port's meter register at restart, which the board persisted, never the last journaled
MeterValues nor 0. The OCPP timers run on the scaled clock, so `--speed` scales MeterValues."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from main_node.app import REGISTER_FILE
from simulation.csms import CentralSystem

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SPEED = 10.0


def config(tmp_path: Path, csms_url: str) -> Path:
    path = tmp_path / "main.toml"
    path.write_text(
        f'[station]\nid = "CP-KILL"\nstate_dir = "{tmp_path / "state"}"\n'
        "[port]\nsample_rate_hz = 2000\n"
        f'[ocpp]\ncsms_url = "{csms_url}"\nmeter_value_sample_interval_s = 10\n'
        "[link]\ninsecure = true\nmdns = false\n"
        "[dashboard]\nenabled = false\n"
    )
    return path


async def start_main(cfg: Path, log: Path, *extra: str) -> asyncio.subprocess.Process:
    with log.open("ab") as err:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chargeport_cli",
            "main",
            "--config",
            str(cfg),
            "--speed",
            str(SPEED),
            *extra,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=err,
            cwd=ROOT,
            env={k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"},
        )


def register_wh(state: Path) -> float:
    try:
        return float(json.loads((state / REGISTER_FILE).read_text())["energy_wh"])
    except (OSError, ValueError, KeyError):
        return 0.0


def energy_of(meter_values: list[dict]) -> float:  # type: ignore[type-arg]
    for mv in meter_values:
        for sv in mv.get("sampled_value", []):
            if sv.get("format") == "SignedData":
                continue  # the board's OCMF record beside the reading
            if sv.get("measurand", "Energy.Active.Import.Register") == (
                "Energy.Active.Import.Register"
            ):
                scale = 1000.0 if sv.get("unit") == "kWh" else 1.0
                return float(sv["value"]) * scale
    return 0.0


async def test_power_loss_stop_after_kill_9_carries_the_register_at_restart_ocpp16_6_49(
    tmp_path: Path,
) -> None:
    scenario = tmp_path / "ev.txt"
    scenario.write_text("plugin\nauth TAG-OK\nwait_pwm\ndraw_power_regulated 16,3\nsleep 100000\n")
    state = tmp_path / "state"
    log = tmp_path / "main.log"
    async with CentralSystem(accepted_tags=["TAG-OK"]) as csms:
        cfg = config(tmp_path, csms.url)
        first = await start_main(cfg, log, "--scenario", str(scenario))
        second: asyncio.subprocess.Process | None = None
        try:
            await csms.wait_for(lambda: csms.actions("StartTransaction"), within_s=60)
            (tx,) = csms.transactions.values()
            # Two periodic MeterValues (10 simulated s apart: 1 s of real time at --speed 10).
            await csms.wait_for(lambda: len(tx.meter_values) >= 2, within_s=30)
            last_sent = energy_of(tx.meter_values[-1:])
            assert last_sent > 0
            # The register moves on past what the CSMS last heard, then the main dies.
            async with asyncio.timeout(30):
                while register_wh(state) < last_sent + 20.0:
                    await asyncio.sleep(0.05)
            first.send_signal(signal.SIGKILL)
            await first.wait()
            at_kill = register_wh(state)
            assert at_kill > last_sent + 20.0

            second = await start_main(cfg, log)  # no EV: the register stays where it was
            stop = await csms.wait_for(lambda: csms.actions("StopTransaction"), within_s=60)
            assert stop[0]["reason"] == "PowerLoss"
            assert stop[0]["transaction_id"] == tx.transaction_id
            assert stop[0]["meter_stop"] == round(at_kill)
            assert stop[0]["meter_stop"] > energy_of(
                csms.transactions[tx.transaction_id].meter_values[-1:]
            )
            second.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                assert await second.wait() == 0
        finally:
            for proc in (first, second):
                if proc is not None and proc.returncode is None:
                    proc.kill()
                    await proc.wait()
