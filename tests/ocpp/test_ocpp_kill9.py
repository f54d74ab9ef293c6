"""A real kill -9 of the main's OCPP session while offline (OCPP 1.6 section 4.10): the
process is SIGKILLed with Start/Stop journaled, restarted from the same SQLite file, and the
CSMS then receives every message exactly once, in order."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from simulation.csms import CentralSystem

CHILD = Path(__file__).with_name("ocpp_child_station.py")


class Child:
    """The child station process and its stdout lines."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def expect(self, prefix: str, within_s: float = 10.0) -> str:
        """The next stdout line starting with `prefix` (others are skipped)."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(within_s):
            while True:
                line = (await self.proc.stdout.readline()).decode()
                assert line, f"child exited (waiting for {prefix!r})"
                if line.startswith(prefix):
                    return line.strip()

    async def command(self, line: str) -> str:
        """Send one command; its `pending N` answer."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()
        return await self.expect("pending")


@contextlib.asynccontextmanager
async def child(db: Path, url: str, log: Path) -> AsyncIterator[Child]:
    """Start the child; on exit close its stdin, and kill it if it does not end."""
    with log.open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CHILD),
            str(db),
            url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            cwd=CHILD.parents[2],
            # The child imports the test kits (tests/ocpp) and the shared `waiting` (tests/).
            env={**os.environ, "PYTHONPATH": f"{CHILD.parent}{os.pathsep}{CHILD.parents[1]}"},
        )
    try:
        yield Child(proc)
    finally:
        if proc.returncode is None and proc.stdin is not None:
            proc.stdin.close()
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def test_kill_9_while_offline_then_restart_delivers_each_message_once_ocpp16_4_10(
    tmp_path: Path,
) -> None:
    """Transaction 1 starts online and stops offline; 2 and 3 run entirely offline. SIGKILL,
    restart on the same file, CSMS back: Start/Stop arrive once each, in journal order."""
    db, log = tmp_path / "ocpp.sqlite", tmp_path / "child.log"
    csms = CentralSystem()
    await csms.start()
    port_no = csms.port
    try:
        async with child(db, csms.url, log) as first:
            assert await first.expect("pending") == "pending 0"
            await first.expect("online")
            await first.command("start 1 100")
            # Its answer reached the child too (an unanswered CALL is sent again: §4.10).
            while await first.command("pending") != "pending 0":
                await asyncio.sleep(0.01)
            await csms.stop()
            await first.expect("offline")
            answers = [
                await first.command(c)
                for c in ("stop 1 150", "start 2 200", "stop 2 260", "start 3 300", "stop 3 390")
            ]
            assert answers[-1] == "pending 5"
            first.proc.send_signal(signal.SIGKILL)
            assert await first.proc.wait() == -signal.SIGKILL
        async with child(db, f"ws://127.0.0.1:{port_no}/ocpp", log) as second:
            assert await second.expect("pending") == "pending 5"
            await csms.start(port_no)
            await second.expect("online")
            await csms.wait_for(lambda: len(csms.actions("StopTransaction")) == 3)
            while await second.command("pending") != "pending 0":
                await asyncio.sleep(0.01)
        sent = [(a, p) for a, p in csms.messages if a in ("StartTransaction", "StopTransaction")]
        assert [a for a, _ in sent] == ["StartTransaction", "StopTransaction"] * 3
        starts = [p["connector_id"] for a, p in sent if a == "StartTransaction"]
        stops = [(p["transaction_id"], p["meter_stop"]) for a, p in sent if a == "StopTransaction"]
        assert starts == [1, 2, 3]
        assert stops == [(1001, 150), (1002, 260), (1003, 390)]
        assert [len(csms.actions("BootNotification"))] == [2]  # one per process
    finally:
        await csms.stop()
