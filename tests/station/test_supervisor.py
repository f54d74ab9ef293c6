"""The sim's supervisor restarts a dead board process and leaves nothing running on stop."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from waiting import until

from simulation.supervisor import ProcessSpec, Supervisor


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_killed_process_is_restarted_and_stop_reaps_everything(tmp_path: Path) -> None:
    sup = Supervisor(stop_timeout_s=2.0)
    child = sup.add(
        ProcessSpec(
            name="board",
            argv=[sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
            log_path=tmp_path / "board.log",
            restart_delay_s=0.05,
        )
    )
    log = tmp_path / "board.log"

    def ups() -> int:
        return log.read_text().count("up") if log.exists() else 0

    await until(lambda: ups() == 1)
    first = sup.pid("board")
    assert first is not None
    os.kill(first, signal.SIGKILL)
    await until(lambda: ups() == 2)
    second = sup.pid("board")
    assert second != first
    assert child.last_exit == -signal.SIGKILL
    await sup.stop()
    assert second is not None and not alive(second)


async def test_stop_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    log = tmp_path / "s.log"
    sup = Supervisor(stop_timeout_s=0.3)
    sup.add(ProcessSpec("stubborn", [sys.executable, "-c", code], log))
    await until(lambda: log.exists() and "ready" in log.read_text())
    pid = sup.pid("stubborn")
    await sup.stop()
    assert pid is not None and not alive(pid)
