"""The shipped example configs on separate hosts: a main and a satellite, each in its own
network namespace on one bridge, with simulated hardware, mTLS and mDNS, as the README says.

Skipped with the reason where network namespaces cannot be made (not root)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from netns import NetnsLab, NetnsUnavailable

from chargeport.pki import init_pki

pytestmark = [pytest.mark.integration, pytest.mark.root]

ROOT = Path(__file__).resolve().parents[2]
CHARGEPORT = str(ROOT / ".venv" / "bin" / "chargeport")
PYTHON = str(ROOT / ".venv" / "bin" / "python")
BOUND_S = 60.0  # a bound on a hang, not a timing assertion

STATE = """
import json, urllib.request
with urllib.request.urlopen("http://127.0.0.1:8080/api/state", timeout=2) as r:
    print(json.dumps(json.load(r)))
"""


@pytest.fixture
def lab() -> Iterator[NetnsLab]:
    lab = NetnsLab()
    try:
        lab.open()
    except (NetnsUnavailable, FileNotFoundError) as exc:
        pytest.skip(f"network namespaces unavailable (needs root and iproute2): {exc}")
    try:
        lab.add_host("main", "10.232.0.1/24")
        for n in (1, 2, 3):
            lab.add_host(f"sat{n}", f"10.232.0.1{n}/24")
        yield lab
    finally:
        lab.close()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A folder laid out as the example configs expect: examples/ and a station PKI."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    subprocess.run(
        [CHARGEPORT, "pki", "init", "--dir", "pki", "--station", "CP-SIM",
         "--satellite", "SAT-SIM-1", "--satellite", "SAT-SIM-2", "--satellite", "SAT-SIM-3"],
        cwd=tmp_path, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return tmp_path


def three_satellite_station(site: Path) -> None:
    """The sim examples grown to a 4-gun station, without EV scenarios (guns stay Available):
    one satellite config per board, as an installer would copy them."""
    examples = site / "examples"
    main = (examples / "sim-main.toml").read_text()
    main = "\n".join(line for line in main.splitlines() if not line.startswith("scenario"))
    for n in (2, 3):
        main += f'\n[[satellites]]\nserial = "SAT-SIM-{n}"\nconnector = {n + 1}\n'
    (examples / "sim-main.toml").write_text(main)
    sat = (examples / "sim-satellite.toml").read_text()
    sat = "\n".join(line for line in sat.splitlines() if not line.startswith("scenario"))
    for n in (1, 2, 3):
        text = sat.replace("SAT-SIM-1", f"SAT-SIM-{n}").replace("sat-sim-1", f"sat-sim-{n}")
        (examples / f"sim-satellite-{n}.toml").write_text(text)


class Boards:
    """Board processes started in namespaces; all are stopped (SIGTERM, then SIGKILL)."""

    def __init__(self, lab: NetnsLab, site: Path) -> None:
        self.lab, self.site = lab, site
        self.procs: dict[str, asyncio.subprocess.Process] = {}

    async def start(self, name: str, host: str, *argv: str) -> None:
        log = open(self.site / f"{name}.log", "wb")  # noqa: ASYNC230 - a local file, once
        self.procs[name] = await asyncio.create_subprocess_exec(
            *self.lab.exec_prefix(host), CHARGEPORT, *argv,
            cwd=self.site, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        log.close()

    def log(self, name: str) -> str:
        return (self.site / f"{name}.log").read_text(errors="replace")

    async def stop(self) -> None:
        for proc in self.procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@pytest.fixture
async def boards(lab: NetnsLab, site: Path) -> AsyncIterator[Boards]:
    made = Boards(lab, site)
    try:
        yield made
    finally:
        await made.stop()


async def station_state(lab: NetnsLab) -> dict[str, Any] | None:
    proc = await asyncio.create_subprocess_exec(
        *lab.exec_prefix("main"), PYTHON, "-c", STATE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return json.loads(out) if proc.returncode == 0 else None


async def test_example_configs_run_a_station_across_hosts(
    lab: NetnsLab, boards: Boards, site: Path
) -> None:
    """A main and three satellites on separate addresses: discovery resolves each satellite's
    real address (advertised from the wildcard interface choice, never 0.0.0.0 or loopback)
    and every gun reaches Available."""
    three_satellite_station(site)
    for n in (1, 2, 3):
        config = f"examples/sim-satellite-{n}.toml"
        await boards.start(f"sat{n}", f"sat{n}", "satellite", "--config", config)
    await boards.start("main", "main", "main", "--config", "examples/sim-main.toml")
    state: dict[str, Any] | None = None
    try:
        async with asyncio.timeout(BOUND_S):
            while state is None or [g["state"] for g in state["guns"]] != ["Available"] * 4:
                await asyncio.sleep(0.5)
                state = await station_state(lab)
    except TimeoutError:
        raise AssertionError(f"not every gun Available: {state and state['guns']}") from None
    assert [g["connector"] for g in state["guns"]] == [1, 2, 3, 4]
    assert all(g["link_up"] for g in state["guns"])
    for n in (1, 2, 3):
        assert f"satellite SAT-SIM-{n} is at ('10.232.0.1{n}', 50061)" in boards.log("main")
    assert state["discovery_problems"] == []


async def test_a_satellite_with_a_foreign_certificate_is_one_readable_error(
    lab: NetnsLab, boards: Boards, site: Path
) -> None:
    """The board carries a certificate from another `pki init`: the main says so once, at
    ERROR, naming the board's address, and no gRPC C-core lines reach the log."""
    init_pki(site / "pki-other", "CP-OTHER", ["SAT-SIM-1"])
    config = site / "examples" / "sim-satellite.toml"
    config.write_text(config.read_text().replace('pki_dir = "pki"', 'pki_dir = "pki-other"'))
    await boards.start("sat1", "sat1", "satellite", "--config", "examples/sim-satellite.toml")
    await boards.start("main", "main", "main", "--config", "examples/sim-main.toml")
    async with asyncio.timeout(BOUND_S):
        while "satellite at 10.232.0.11:50061" not in boards.log("main"):
            await asyncio.sleep(0.5)
        await asyncio.sleep(3)  # several more refused handshakes: still one line
    lines = boards.log("main").splitlines()
    errors = [line for line in lines if " ERROR " in line and "satellite at" in line]
    assert len(errors) == 1, errors
    assert "station CA" in errors[0] or "same `chargeport pki init`" in errors[0], errors
    assert not [line for line in lines if "ssl_transport_security" in line or "E1204" in line]
    state = await station_state(lab)
    assert state is not None and not state["guns"][1]["link_up"]
