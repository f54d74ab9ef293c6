"""`chargeport sim --mqtt HOST:PORT` adds the MQTT API to the simulated station (real mosquitto)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from mqtt_harness import Broker, Probe

pytestmark = pytest.mark.integration

STATION = "SIM-STATION"


async def test_sim_publishes_every_gun_over_mqtt(
    tmp_path: Path, broker: Broker, probe: Probe
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chargeport_cli", "sim", "--headless", "--speed", "30",
        "--duration", "600", "--until-complete", "--dashboard-port", "0",
        "--mqtt", f"{broker.host}:{broker.port}", "--state-dir", str(tmp_path / "state"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(150):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    summary = json.loads(out.decode().strip().splitlines()[-1])
    assert all(g["sessions_completed"] >= 1 for g in summary["guns"])

    for connector in (1, 2, 3, 4):
        states = probe.json(f"chargeport/{STATION}/connector/{connector}/state")
        assert states, f"no state published for connector {connector}"
        assert max(s["sessions_completed"] for s in states) >= 1
        assert probe.json(f"chargeport/{STATION}/connector/{connector}/meter")
    # The station said goodbye when the sim stopped (retained, so late subscribers know).
    statuses = [p for t, p, _ in probe.messages if t == f"chargeport/{STATION}/status"]
    assert statuses[-1] == b"offline"
