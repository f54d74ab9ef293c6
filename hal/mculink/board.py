"""A `hal.base.Board` whose pilot, contactor, lock, temperature and RCD sit behind the MCU link.

The MCU pushes reports; `McuBoard` keeps the latest of each (reads never wait on the line) and
sends commands that complete when the MCU acknowledges them. The sampler synthesises mains
blocks carrying the per-phase currents the MCU reports (the MCU measures RMS, not waveforms).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from chargeport.clock import Clock, RealClock
from hal.base import Board, SampleBlock
from hal.mculink.codec import LinkError, LinkStats
from hal.mculink.messages import (
    ContactorFeedback,
    CpLevel,
    Currents,
    Fault,
    LockFeedback,
    Message,
    RcdStatus,
    ResetRcd,
    SetContactor,
    SetCpDuty,
    SetLock,
    Temperature,
)
from hal.mculink.transport import McuTransport, load_link_key
from hal.waveform import WaveformSource

__all__ = ["McuBoard", "open_mcu_board"]


class McuBoard:
    """The MCU-linked board; every method of the `Board` seams lives here, `board()` binds them."""

    def __init__(
        self,
        device: str,
        key: bytes,
        *,
        clock: Clock | None = None,
        sample_rate_hz: int = 10_000,
        block_s: float = 0.1,
        power_factor: float = 0.99,
        command_timeout_s: float = 1.0,
        ping_interval_s: float = 0.5,
        link_timeout_s: float = 2.0,
    ) -> None:
        self.transport = McuTransport(
            device,
            key,
            self._on_message,
            command_timeout_s=command_timeout_s,
            ping_interval_s=ping_interval_s,
            link_timeout_s=link_timeout_s,
        )
        self._clock: Clock = clock or RealClock()
        self.waveform = WaveformSource(rate_hz=sample_rate_hz)
        self._block_n = max(1, round(block_s * sample_rate_hz))
        self._power_factor = power_factor
        self.cp_volts: float | None = None
        self._diode_ok = True
        self.contactor_closed = False
        self.locked = False
        self.temperature_c: float | None = None
        self.rcd_tripped = False
        self.currents_a = (0.0, 0.0, 0.0)
        self.faults: dict[int, str] = {}  # active MCU faults by code
        self._level_queues: set[asyncio.Queue[float | None]] = set()
        self._closed = False

    @property
    def stats(self) -> LinkStats:
        return self.transport.stats

    def board(self) -> Board:
        """This board as the evse runtime sees it."""
        return Board(
            cp=self, contactor=_Contactor(self), lock=self, sampler=self, temperature=self, rcd=self
        )

    async def async_open(self) -> None:
        await self.transport.async_open()

    async def async_close(self) -> None:
        self._closed = True
        for q in self._level_queues:
            q.put_nowait(None)
        await self.transport.async_close()

    # ------------------------------------------------------------------ ControlPilot

    async def set_duty(self, percent: float) -> None:
        await self.transport.async_command(lambda seq: SetCpDuty(seq, percent))

    async def levels(self) -> AsyncIterator[float]:
        queue: asyncio.Queue[float | None] = asyncio.Queue()
        self._level_queues.add(queue)
        try:
            if self.cp_volts is not None:
                yield self.cp_volts
            while (level := await queue.get()) is not None:
                yield level
        finally:
            self._level_queues.discard(queue)

    async def diode_ok(self) -> bool:
        return self._diode_ok

    # ------------------------------------------------------------------ lock, temperature, RCD

    async def lock(self, locked: bool) -> None:
        await self.transport.async_command(lambda seq: SetLock(seq, locked))

    async def read_c(self) -> float:
        if self.temperature_c is None:
            raise LinkError("MCU link: no temperature report yet")
        return self.temperature_c

    async def tripped(self) -> bool:
        return self.rcd_tripped

    async def reset(self) -> None:
        await self.transport.async_command(ResetRcd)

    # ------------------------------------------------------------------ Sampler

    async def blocks(self) -> AsyncIterator[SampleBlock]:
        n = self._block_n
        span = n / self.waveform.rate_hz
        start = self._clock.monotonic()
        while not self._closed:
            # Gap-free: each block starts where the last ended; a late loop catches up.
            await self._clock.sleep(start + span - self._clock.monotonic())
            if self._closed:
                return
            drawn = self.currents_a if self.contactor_closed else (0.0, 0.0, 0.0)
            yield self.waveform.block(start, n, drawn, self._power_factor)
            start += span

    # ------------------------------------------------------------------ reports (loop thread)

    def _on_message(self, message: Message) -> None:
        if isinstance(message, CpLevel):
            self._diode_ok = message.diode_ok
            if message.volts != self.cp_volts:
                self.cp_volts = message.volts
                for q in self._level_queues:
                    q.put_nowait(message.volts)
        elif isinstance(message, ContactorFeedback):
            self.contactor_closed = message.closed
        elif isinstance(message, LockFeedback):
            self.locked = message.locked
        elif isinstance(message, Temperature):
            self.temperature_c = message.celsius
        elif isinstance(message, RcdStatus):
            self.rcd_tripped = message.tripped
        elif isinstance(message, Currents):
            self.currents_a = (message.l1, message.l2, message.l3)
        elif isinstance(message, Fault):
            if message.active:
                self.faults[message.code] = message.text
            else:
                self.faults.pop(message.code, None)


class _Contactor:
    """The `Contactor` seam (a separate object: `switch`/`feedback` over the same link)."""

    def __init__(self, board: McuBoard) -> None:
        self._board = board

    async def switch(self, closed: bool) -> None:
        await self._board.transport.async_command(lambda seq: SetContactor(seq, closed))

    async def feedback(self) -> bool:
        # The MCU reports the mirror contact before it acknowledges a switch command.
        return self._board.contactor_closed


@contextlib.asynccontextmanager
async def open_mcu_board(
    device: str, link_key_file: str, *, clock: Clock | None = None, sample_rate_hz: int = 10_000
) -> AsyncIterator[Board]:
    """Open the MCU link named by `port.serial_device` / `port.link_key_file`; yield the Board."""
    key = load_link_key(link_key_file)
    mcu = McuBoard(device, key, clock=clock, sample_rate_hz=sample_rate_hz)
    await mcu.async_open()
    try:
        yield mcu.board()
    finally:
        await mcu.async_close()
