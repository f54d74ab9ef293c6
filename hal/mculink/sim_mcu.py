"""A simulated safety MCU on the master side of a pty pair, speaking the MCU link protocol.

`SimMcu.create()` opens a pty (`os.openpty`, raw mode) and exposes the slave's path as
`device`, so the host opens it with pyserial exactly as it would open /dev/ttyS1. Tests set
the EV state and inject faults or garbage; the MCU answers commands and pushes its reports.
A `SimMcu` created with no key is a blank board that takes its key from PROVISION
(docs/mcu-link.md, "Key provisioning"); `key` is what its flash would hold.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tty

from chargeport.tasks import OwnedTasks
from hal.mculink.codec import (
    FrameCodec,
    KeyProvisioned,
    LinkStats,
    MessageReceived,
    Role,
    SessionEstablished,
    Transmit,
)
from hal.mculink.messages import (
    Ack,
    ContactorFeedback,
    CpLevel,
    Currents,
    Fault,
    LockFeedback,
    Message,
    Ping,
    Pong,
    RcdStatus,
    ResetRcd,
    SetContactor,
    SetCpDuty,
    SetLinkKey,
    SetLock,
    Temperature,
)

__all__ = ["FAULT_WELDED", "SimMcu"]

log = logging.getLogger(__name__)

FAULT_WELDED = 1  # the contactor's mirror contact stays closed after an open command

# IEC 61851-1 table A.3 positive plateau per vehicle state.
_CP_VOLTS = {"A": 12.0, "B": 9.0, "C": 6.0, "D": 3.0, "E": 0.0}


class SimMcu:
    """The MCU end; `async_start` begins serving, `async_stop` closes the pty."""

    def __init__(
        self, master_fd: int, slave_fd: int, key: bytes | None, status_interval_s: float
    ) -> None:
        self._master = master_fd
        self._slave = slave_fd  # held open so the master never reads EIO between host opens
        self.device = os.ttyname(slave_fd)
        self.key = key  # the MCU's flash: survives `restart()`
        self._codec = FrameCodec(key, Role.MCU)
        self._status_interval = status_interval_s
        self._tasks = OwnedTasks(log)  # the status loop
        self.duty = 100.0
        self.ev_state = "A"
        self.diode_ok = True
        self.contactor_closed = False
        self.welded = False
        self.locked = False
        self.temperature_c = 25.0
        self.rcd_tripped = False
        self.currents = (0.0, 0.0, 0.0)
        self.received: list[Message] = []

    @classmethod
    def create(cls, key: bytes | None, status_interval_s: float = 0.2) -> SimMcu:
        """A fresh pty pair in raw mode with the MCU on its master side."""
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        return cls(master, slave, key, status_interval_s)

    @property
    def stats(self) -> LinkStats:
        return self._codec.stats

    @property
    def cp_volts(self) -> float:
        """State F (duty 0, IEC 61851-1) drives -12 V whatever the EV does."""
        return -12.0 if self.duty <= 0.0 else _CP_VOLTS[self.ev_state]

    async def async_start(self) -> None:
        asyncio.get_running_loop().add_reader(self._master, self._on_readable)
        self._tasks.spawn(self._async_status_loop(), "sim-mcu-status")

    async def async_stop(self) -> None:
        await self._tasks.cancel_all()
        asyncio.get_running_loop().remove_reader(self._master)
        os.close(self._master)
        os.close(self._slave)

    # ------------------------------------------------------------------ test controls

    def set_ev_state(self, state: str) -> None:
        self.ev_state = state
        self._report(CpLevel(self.cp_volts, self.diode_ok))

    def set_fault_welded(self, welded: bool) -> None:
        self.welded = welded
        self._report(Fault(FAULT_WELDED, welded, "contactor welded" if welded else ""))

    def trip_rcd(self) -> None:
        self.rcd_tripped = True
        self.contactor_closed = self.welded  # the RCD opens the contactor in hardware
        self._report(RcdStatus(True))
        self._report(ContactorFeedback(self.contactor_closed))

    def restart(self) -> None:
        """Reboot the MCU: the session is lost, state returns to safe defaults."""
        self._codec = FrameCodec(self.key, Role.MCU)
        self.duty, self.contactor_closed, self.locked = 100.0, self.welded, False

    def inject_raw(self, data: bytes) -> None:
        """Write raw bytes (garbage) towards the host."""
        os.write(self._master, data)

    # ------------------------------------------------------------------ protocol

    def _on_readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, OSError):
            return
        for event in self._codec.receive_data(data):
            if isinstance(event, Transmit):
                self._write(event.data)
            elif isinstance(event, MessageReceived):
                self._handle(event.message)
            elif isinstance(event, KeyProvisioned):
                self.key = event.key  # a real MCU writes its flash before it answers
            elif isinstance(event, SessionEstablished):
                self._report_all()  # a new session: tell the host everything at once

    def _handle(self, msg: Message) -> None:
        self.received.append(msg)
        if isinstance(msg, Ping):
            self._report(Pong(msg.seq))
        elif isinstance(msg, SetCpDuty):
            ok = 0.0 <= msg.percent <= 100.0
            if ok:
                self.duty = msg.percent
                self._report(CpLevel(self.cp_volts, self.diode_ok))
            self._report(Ack(msg.seq, ok))
        elif isinstance(msg, SetContactor):
            ok = not (msg.closed and self.rcd_tripped)  # never close onto a tripped RCD
            if ok:
                self.contactor_closed = msg.closed or self.welded
            self._report(ContactorFeedback(self.contactor_closed))
            self._report(Ack(msg.seq, ok))
        elif isinstance(msg, SetLock):
            self.locked = msg.locked
            self._report(LockFeedback(self.locked))
            self._report(Ack(msg.seq, True))
        elif isinstance(msg, SetLinkKey):
            self.key = msg.key  # stored first, then acknowledged under the current session
            self._codec.rekey(msg.key)
            self._report(Ack(msg.seq, True))
        elif isinstance(msg, ResetRcd):
            self.rcd_tripped = False
            self._report(RcdStatus(False))
            self._report(Ack(msg.seq, True))

    def _report_all(self) -> None:
        self._report(CpLevel(self.cp_volts, self.diode_ok))
        self._report(ContactorFeedback(self.contactor_closed))
        self._report(LockFeedback(self.locked))
        self._report(Temperature(self.temperature_c))
        self._report(RcdStatus(self.rcd_tripped))
        drawn = self.currents if self.contactor_closed else (0.0, 0.0, 0.0)
        self._report(Currents(*drawn))

    def _report(self, msg: Message) -> None:
        if not self._codec.established:
            return
        self._write(self._codec.send(msg))

    def _write(self, data: bytes) -> None:
        try:
            os.write(self._master, data)
        except OSError:
            return  # the host is not reading: a real UART would drop the bytes too

    async def _async_status_loop(self) -> None:
        while True:
            await asyncio.sleep(self._status_interval)
            self._report_all()
