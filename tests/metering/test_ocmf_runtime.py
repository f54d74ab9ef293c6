"""The evse runtime signs its own register at transaction begin and end (OCMF TX=B / TX=E..).

A SimBoard on a ManualClock charges a simulated EV; every record is verified with the
independent pyocmf, its value must be the register the TransactionStarted/Finished event
carries, and it must exist before that event reaches any subscriber.
"""

from __future__ import annotations

import asyncio
import decimal
import itertools
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pyocmf import OCMF, IssueSeverity, SpecWarning

from chargeport.clock import ManualClock
from chargeport.config import PortConfig
from chargeport.port import PortEvent, SessionEvent, SessionEventType, StopReason
from evse.errors import Refused
from evse.meter_key import PAGING_FILE
from evse.ocmf import (
    ReadingReason,
    format_energy_kwh,
)
from evse.ocmf_verify import (
    PagingGuard,
    key_id,
    load_public_key,
    verify_record,
)
from evse.runtime import EvseRuntime, RuntimeTiming
from evse.signing import BoardSigning, TransactionRecords, end_reason
from hal.sim import SimBoard

RATE = 2_000


@dataclass
class Board:
    clock: ManualClock
    sim: SimBoard
    rt: EvseRuntime
    events: list[PortEvent] = field(default_factory=list)
    # What `signing.records(tx)` held at the moment each begin/end event was received.
    seen_at_event: list[TransactionRecords | None] = field(default_factory=list)

    async def run_until(self, done: Callable[[], bool], max_s: float = 30.0) -> None:
        """Advance simulated time until `done()`; signing runs in a thread, so also yield."""
        step, elapsed = 0.05, 0.0
        while not done():
            assert elapsed < max_s, "condition not reached in simulated time"
            self.clock.advance(step)
            elapsed += step
            for _ in range(8):
                await asyncio.sleep(0)
            await asyncio.sleep(0.001)  # let the signing thread hand its result back

    def session(self, kind: SessionEventType) -> list[SessionEvent]:
        return [
            e.body for e in self.events if isinstance(e.body, SessionEvent) and e.body.type is kind
        ]


async def _board(signing: BoardSigning | None) -> AsyncIterator[Board]:
    clock = ManualClock()
    sim = SimBoard(clock=clock, sample_rate_hz=RATE, block_s=0.1)
    ids = itertools.count(1)
    rt = EvseRuntime(
        sim.board,
        PortConfig(sample_rate_hz=RATE),
        connector_id=1,
        serial="SIM-1",
        firmware_version="1.0.0",
        clock=clock,
        id_factory=lambda: f"tx{next(ids)}",
        timing=RuntimeTiming(debounce_s=0.05, housekeeping_s=0.05, over_current_allowed_s=2.0),
        signing=signing,
    )
    board = Board(clock, sim, rt)
    sub = rt.port.events()

    async def collect() -> None:
        async for e in sub:
            board.events.append(e)
            body = e.body
            if isinstance(body, SessionEvent) and body.transaction and rt.signing is not None:
                if body.type in (
                    SessionEventType.TRANSACTION_STARTED,
                    SessionEventType.TRANSACTION_FINISHED,
                ):
                    tx = body.transaction.transaction_id
                    board.seen_at_event.append(rt.signing.records(tx))

    task = asyncio.create_task(collect())
    await rt.start()
    try:
        yield board
    finally:
        await rt.stop()
        await task
        sim.close()


@pytest.fixture
async def signed(tmp_path: Path) -> AsyncIterator[Board]:
    signing = BoardSigning.open(tmp_path, serial="SIM-1", firmware_version="1.0.0")
    async for board in _board(signing):
        yield board


@pytest.fixture
async def unsigned() -> AsyncIterator[Board]:
    async for board in _board(None):
        yield board


async def _charge(board: Board, seconds: float = 3.0) -> None:
    ev = board.sim.ev
    ev.plug_in()
    await board.run_until(lambda: bool(board.events))
    await board.rt.port.authorize("04A1B2C3")
    ev.draw(16.0, 3)
    await board.run_until(lambda: board.sim.contactor_closed)
    started = board.clock.time()
    await board.run_until(lambda: board.clock.time() - started >= seconds)


def _pyocmf(text: str) -> OCMF:
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpecWarning)
        return OCMF.from_string(text, strict=True)


async def test_begin_and_end_carry_the_boards_own_register(signed: Board) -> None:
    """OCMF Table 7: TX=B at the start, an end code at the finish; RV = the event's register."""
    await _charge(signed)
    signed.sim.ev.unplug()
    finished = SessionEventType.TRANSACTION_FINISHED
    await signed.run_until(lambda: bool(signed.session(finished)))
    start = signed.session(SessionEventType.TRANSACTION_STARTED)[0].transaction
    end = signed.session(finished)[0].transaction
    assert start is not None and end is not None
    assert end.meter_wh > start.meter_wh + 5.0  # ~11 kW for 3 s
    assert signed.rt.signing is not None
    recs = signed.rt.signing.records(start.transaction_id)
    assert recs is not None and recs.begin is not None and recs.end is not None
    # Signed before the events went out: a subscriber can always attach the record.
    assert [r is not None and r.begin is not None for r in signed.seen_at_event] == [True, True]
    assert signed.seen_at_event[1] is not None and signed.seen_at_event[1].end is not None

    key = signed.rt.signing.public_key_hex
    begin, finish = _pyocmf(recs.begin.text), _pyocmf(recs.end.text)
    assert begin.verify_signature(key) and finish.verify_signature(key)
    assert begin.payload.RD[0].TX == "B"
    assert finish.payload.RD[0].TX == end_reason(StopReason.EV_DISCONNECTED) == "E"
    # The DSP's register may start a hair below zero; a signed register is never negative.
    assert begin.payload.RD[0].RV == decimal.Decimal(format_energy_kwh(max(start.meter_wh, 0)))
    assert finish.payload.RD[0].RV == decimal.Decimal(format_energy_kwh(end.meter_wh))
    assert begin.payload.ID == finish.payload.ID == "04A1B2C3"
    assert begin.payload.GS == "SIM-1" and begin.payload.PG == "T1" and finish.payload.PG == "T2"
    # The pair passes pyocmf's transparency rules; only the unsynchronized clock is a warning.
    issues = begin.check_eichrecht(finish)
    assert [i for i in issues if i.severity is IssueSeverity.ERROR] == []


@pytest.mark.filterwarnings("ignore:Identification Status:UserWarning")  # fiscal: no IS
async def test_on_demand_records_and_stop_reason(signed: Board) -> None:
    """On demand: TX=C (page T) during a transaction, fiscal (page F) outside one."""
    assert signed.rt.signing is not None
    key = load_public_key(signed.rt.signing.public_key_hex)
    idle = await signed.rt.sign_reading()
    await _charge(signed, 2.0)
    during = await signed.rt.sign_reading()
    await signed.rt.port.stop_transaction(StopReason.REMOTE)
    finished = SessionEventType.TRANSACTION_FINISHED
    await signed.run_until(lambda: bool(signed.session(finished)))
    tx = signed.session(finished)[0].transaction
    assert tx is not None and idle is not None and during is not None
    recs = signed.rt.signing.records(tx.transaction_id)
    assert recs is not None and recs.begin is not None and recs.end is not None
    guard, kid = PagingGuard(), key_id(key)
    pages = []
    for rec in (idle, recs.begin, during, recs.end):
        parsed = verify_record(rec.text, key)
        guard.accept(kid, parsed)
        pages.append((parsed.page_label, parsed.readings[0].get("TX")))
        assert OCMF.from_string(rec.text).verify_signature(signed.rt.signing.public_key_hex)
    assert pages == [("F1", None), ("T1", "B"), ("T2", "C"), ("T3", "R")]
    assert recs.end.reading.reason is ReadingReason.END_REMOTE


async def test_a_signing_failure_never_stops_the_session(signed: Board, tmp_path: Path) -> None:
    """Counters cannot be saved: no record, logged, but the transaction runs and ends."""
    (tmp_path / PAGING_FILE).mkdir()  # os.replace onto a directory fails
    await _charge(signed, 1.0)
    signed.sim.ev.unplug()
    finished = SessionEventType.TRANSACTION_FINISHED
    await signed.run_until(lambda: bool(signed.session(finished)))
    tx = signed.session(finished)[0].transaction
    assert tx is not None and tx.meter_wh > 0
    assert signed.rt.signing is not None and signed.rt.signing.records(tx.transaction_id) is None


async def test_signing_off_refuses_on_demand(unsigned: Board) -> None:
    with pytest.raises(Refused, match="meter_signing"):
        await unsigned.rt.sign_reading()
