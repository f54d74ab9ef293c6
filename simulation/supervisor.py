"""Supervise board processes the way systemd would on a board (Restart=always, RestartSec).

A process that exits for any reason (crash, kill -9, firmware restart into a new slot) is
started again after `restart_delay_s`; `stop()` sends SIGTERM to every process, waits, then
SIGKILLs what is left. Nothing outlives the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chargeport.tasks import OwnedTasks

__all__ = ["ProcessSpec", "Supervised", "Supervisor"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: Sequence[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    restart_delay_s: float = 1.0


@dataclass
class Supervised:
    spec: ProcessSpec
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    last_exit: int | None = None


class Supervisor:
    """Starts, restarts and finally stops a set of processes."""

    def __init__(self, stop_timeout_s: float = 5.0) -> None:
        self._stop_timeout_s = stop_timeout_s
        self.children: dict[str, Supervised] = {}
        self._tasks = OwnedTasks(log)  # one keeper per child
        self._stopping = False

    def add(self, spec: ProcessSpec) -> Supervised:
        child = Supervised(spec)
        self.children[spec.name] = child
        self._tasks.spawn(self._keep_running(child), f"supervise-{spec.name}")
        return child

    def pid(self, name: str) -> int | None:
        proc = self.children[name].process
        return proc.pid if proc is not None and proc.returncode is None else None

    async def _spawn(self, child: Supervised) -> asyncio.subprocess.Process:
        spec = child.spec
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with spec.log_path.open("ab") as logfile:
            proc = await asyncio.create_subprocess_exec(
                *spec.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=logfile,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, **spec.env},
                start_new_session=True,  # Ctrl-C reaches us, and we stop the children in order
            )
        child.process = proc
        child.starts += 1
        return proc

    async def _keep_running(self, child: Supervised) -> None:
        while not self._stopping:
            proc = await self._spawn(child)
            code = await proc.wait()
            child.last_exit = code
            if self._stopping:
                return
            log.warning(
                "%s exited with %s; restarting in %.1f s",
                child.spec.name,
                code,
                child.spec.restart_delay_s,
            )
            await asyncio.sleep(child.spec.restart_delay_s)

    async def stop(self) -> None:
        self._stopping = True
        await self._tasks.cancel_all()
        procs = [c.process for c in self.children.values() if c.process is not None]
        for proc in procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), self._stop_timeout_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
