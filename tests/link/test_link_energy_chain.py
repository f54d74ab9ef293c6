"""Not one watt-hour lost between boards (issue 16), with real satellite processes.

Each satellite is `python -m chargeport_cli satellite` on the sim board, an EV charging for ever
(free vend), OCMF signing on; the main's side is a RemotePort in this process. Every signed
record the main receives is verified with the independent `pyocmf` against the satellite's own
key, and its reading must be the register the event carries.
  * kill -9 of the satellite mid-charge: the restarted board ends the transaction from its
    journal at its persisted register (PowerLoss, OCPP 1.6 6.49), signed; the main closes it
    with that, not with the last reading it saw, exactly once; the next transaction begins
    where the register stood.
  * a link loss past the grace: the board's fail-safe stops the charge at its register; the
    main holds the StopTransaction (the stop sent cannot be corrected, 4.10) and gets the real
    end, signed, when the link returns.
  * a main that never saw the start (a new main after the ring overflowed) recreates the
    transaction from the journal with its real start time, register and signed begin.
"""

from __future__ import annotations

import asyncio
import decimal
import signal
import socket
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from linkkit import Link, TcpProxy
from pyocmf import OCMF, SpecWarning

from chargeport.port import (
    LinkChanged,
    MeterValue,
    PortEvent,
    SessionEvent,
    SessionEventType,
    TransactionData,
)
from evse.meter_key import load_signer
from evse.ocmf import format_energy_kwh, public_key_hex
from main_node.remote_port import RemotePort
from satellite.tx_journal import TxJournal

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

SERIAL = "SAT-1"
Ev = SessionEventType


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Board:
    """One satellite process (restartable with the same state dir and port)."""

    state: Path
    config: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.state / "sat.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chargeport_cli", "satellite", "--config", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    async def stop(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            await asyncio.to_thread(self.proc.wait, 10)
        self.proc = None

    @property
    def key(self) -> str:
        return public_key_hex(load_signer(self.state))

    def log(self) -> str:
        return (self.state / "sat.log").read_text(errors="replace")[-3000:]


@pytest.fixture
async def board(tmp_path: Path) -> AsyncIterator[Callable[..., Board]]:
    boards: list[Board] = []

    def make(*, grace_s: float = 30.0, event_ring: int = 4096) -> Board:
        state = tmp_path / f"sat{len(boards)}"
        state.mkdir()
        scenario = state / "ev.txt"
        scenario.write_text("plugin\nwait_pwm\ndraw_power_regulated 16,3\nsleep 100000\n")
        port = _free_port()
        config = state / "sat.toml"
        config.write_text(
            f'[board]\nserial = "{SERIAL}"\nstate_dir = "{state}"\n'
            f"[port]\nsample_rate_hz = 1000\nmeter_interval_s = 0.2\nfree_vend = true\n"
            f'meter_signing = true\nscenario = "{scenario}"\n'
            f"[link]\ninsecure = true\nmdns = false\nkeepalive_s = 0.3\nliveness_s = 1.0\n"
            f"grace_period_s = {grace_s}\nevent_ring = {event_ring}\n"
            f'[agent]\nlisten = "127.0.0.1:{port}"\nadvertise = false\n'
        )
        b = Board(state, config, port)
        boards.append(b)
        b.start()
        return b

    try:
        yield make
    finally:
        for b in boards:
            await b.stop()


class Watch:
    """Every event a RemotePort publishes, and a way to wait for one."""

    def __init__(self, rp: RemotePort) -> None:
        self.events: list[PortEvent] = []
        self._changed = asyncio.Event()
        self._task = asyncio.ensure_future(self._collect(rp.events()))

    async def _collect(self, sub: Any) -> None:
        async for ev in sub:
            self.events.append(ev)
            self._changed.set()

    async def wait(self, pred: Callable[[], Any], within_s: float = 30.0, why: str = "") -> Any:
        async with asyncio.timeout(within_s):
            while not (out := pred()):
                self._changed.clear()
                await self._changed.wait()
        return out

    def tx(self, kind: SessionEventType, tx_id: str | None = None) -> list[PortEvent]:
        return [
            e
            for e in self.events
            if isinstance(e.body, SessionEvent)
            and e.body.type is kind
            and e.body.transaction is not None
            and (tx_id is None or e.body.transaction.transaction_id == tx_id)
        ]

    def last_meter(self) -> float:
        meters = [e.body.energy_wh for e in self.events if isinstance(e.body, MeterValue)]
        return meters[-1] if meters else float("-inf")

    def link(self, up: bool) -> list[PortEvent]:
        return [
            e for e in self.events if isinstance(e.body, LinkChanged) and e.body.connected is up
        ]

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def tx_of(event: PortEvent) -> TransactionData:
    assert isinstance(event.body, SessionEvent) and event.body.transaction is not None
    return event.body.transaction


def verify(tx: TransactionData, key: str, reading: str) -> OCMF:
    """The record verifies with `key` (and only it) and signs exactly `tx.meter_wh`."""
    assert tx.signed_meter, tx
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpecWarning)  # the sim's clock is not synchronized
        rec = OCMF.from_string(tx.signed_meter)
    assert rec.verify_signature(key)
    rd = rec.payload.RD[0]
    assert rd.TX == reading, rd
    assert rd.RV is not None
    assert rd.RV == decimal.Decimal(format_energy_kwh(max(tx.meter_wh, 0.0)))
    return rec


async def remote(link: Link, b: Board, proxy: TcpProxy | None = None, **kw: Any) -> RemotePort:
    addr = ("127.0.0.1", proxy.port if proxy is not None else b.port)
    return await link.remote(SERIAL, secure=False, address=addr, connect=False, **kw)


async def test_a_killed_satellite_ends_its_transaction_at_its_own_register(
    link: Link, board: Callable[..., Board]
) -> None:
    b = board()
    rp = await remote(link, b, hold_stop_s=60.0)
    w = Watch(rp)
    try:
        [start] = await w.wait(lambda: w.tx(Ev.TRANSACTION_STARTED))
        begin = tx_of(start)
        verify(begin, b.key, "B")
        assert rp.health().meter_public_key == b.key  # from Hello, for station status
        await w.wait(lambda: w.last_meter() >= begin.meter_wh + 3.0)
        await b.stop(signal.SIGKILL)
        await w.wait(lambda: w.link(False))
        seen = w.last_meter()  # the last reading the main had of the dead board
        b.start()
        ends = await w.wait(lambda: w.tx(Ev.TRANSACTION_FINISHED, begin.transaction_id))
        end = tx_of(ends[0])
        assert end.stop_reason is not None and end.stop_reason.value == "PowerLoss"
        # The board's register as it persisted it: at most its 1 Wh write step (OCPP's
        # meterStop resolution) behind what it last reported before the kill.
        assert end.meter_wh >= seen - 1.0, (end.meter_wh, seen)
        verify(end, b.key, "P")  # OCMF Table 7: P = power failure

        # The restarted board's next transaction begins where its register stood.
        def next_start() -> list[PortEvent]:
            starts = w.tx(Ev.TRANSACTION_STARTED)
            return [e for e in starts if tx_of(e).transaction_id != begin.transaction_id]

        nxt = await w.wait(next_start, within_s=30)
        assert tx_of(nxt[0]).meter_wh >= end.meter_wh - 0.001  # the DSP starts a hair below 0
        verify(tx_of(nxt[0]), b.key, "B")
        assert len(w.tx(Ev.TRANSACTION_FINISHED, begin.transaction_id)) == 1
    except TimeoutError:
        raise AssertionError(b.log()) from None
    finally:
        await w.close()


@pytest.mark.parametrize("ring", [4096, 4], ids=["resumed", "longer-than-the-ring"])
async def test_a_link_loss_past_the_grace_bills_the_boards_fail_safe_register(
    link: Link,
    board: Callable[..., Board],
    proxy_factory: Callable[[tuple[str, int]], Any],
    caplog: pytest.LogCaptureFixture,
    ring: int,
) -> None:
    """With a 4-event ring the loss outlasts the ring (5 meter events a second): the main
    re-syncs by a snapshot, and the journal still gives the board's end."""
    b = board(grace_s=1.0, event_ring=ring)
    proxy: TcpProxy = await proxy_factory(("127.0.0.1", b.port))
    rp = await remote(link, b, proxy, hold_stop_s=120.0)
    w = Watch(rp)
    try:
        [start] = await w.wait(lambda: w.tx(Ev.TRANSACTION_STARTED))
        begin = tx_of(start)
        await w.wait(lambda: w.last_meter() >= begin.meter_wh + 2.0)
        proxy.paused = True
        proxy.cut()
        await w.wait(lambda: w.link(False))
        seen = w.last_meter()
        journal = b.state
        # The board's fail-safe stopped the charge and journaled the end (the proof it ran).
        async with asyncio.timeout(30):
            while not TxJournal.in_state_dir(journal).finished:
                await asyncio.sleep(0.05)
        # The main's grace passed too, and it holds the stop for the board's own end.
        async with asyncio.timeout(30):
            while not rp.core.holding:
                await asyncio.sleep(0.05)
        assert not w.tx(Ev.TRANSACTION_FINISHED)
        proxy.paused = False
        ends = await w.wait(lambda: w.tx(Ev.TRANSACTION_FINISHED, begin.transaction_id))
        end = tx_of(ends[0])
        board_end = TxJournal.in_state_dir(journal).finished[0].end
        assert board_end is not None and end.meter_wh == board_end.meter_wh
        assert end.meter_wh > seen  # energy during the link loss and the grace is billed
        verify(end, b.key, "E")
        assert len(w.tx(Ev.TRANSACTION_FINISHED, begin.transaction_id)) == 1
        assert ("events lost" in caplog.text) is (ring == 4), caplog.text[-2000:]
    except TimeoutError:
        raise AssertionError(b.log()) from None
    finally:
        await w.close()


async def test_a_main_that_never_saw_the_start_recreates_it_from_the_journal(
    link: Link, board: Callable[..., Board]
) -> None:
    b = board(event_ring=8)
    first = await remote(link, b)
    w1 = Watch(first)
    try:
        [start] = await w1.wait(lambda: w1.tx(Ev.TRANSACTION_STARTED))
        begin = tx_of(start)
        await first.stop()  # that main is gone; the board charges on inside its grace
        await w1.close()
        # Far more than 8 meter events later the ring no longer holds the start.
        async with asyncio.timeout(30):
            while (TxJournal.in_state_dir(b.state).last_wh or 0) < begin.meter_wh + 8.0:
                await asyncio.sleep(0.1)
        second = await remote(link, b, main_boot_id="main-boot-2")
        w2 = Watch(second)
        again = await w2.wait(lambda: w2.tx(Ev.TRANSACTION_STARTED, begin.transaction_id))
        assert tx_of(again[0]) == begin  # register, id tag and signed begin record
        assert again[0].timestamp == start.timestamp  # its real start time, not "now"
        verify(tx_of(again[0]), b.key, "B")
        await w2.close()
    except TimeoutError:
        raise AssertionError(b.log()) from None
