"""A simulated PN532 in HSU mode on the master side of a pty pair.

`SimPn532.create()` opens a pty (raw) and exposes the slave's path as `device`, so the host
opens it with pyserial as it would open /dev/ttyUSB0. It answers the commands `Pn532Reader`
uses (UM0701-02: ACK first, then the response), with a card in the field or not; tests put a
card on it, make it silent, or write garbage.
"""

from __future__ import annotations

import asyncio
import os
import tty

from hal.pn532 import (
    ACK,
    ERROR_FRAME,
    GET_FIRMWARE_VERSION,
    HOST_TFI,
    IN_LIST_PASSIVE_TARGET,
    IN_RELEASE,
    PN532_TFI,
    RF_CONFIGURATION,
    SAM_CONFIGURATION,
    FrameDecoder,
    InformationFrame,
    encode_frame,
)

__all__ = ["SimPn532"]

FIRMWARE = bytes([0x32, 0x01, 0x06, 0x07])  # PN532, v1.6, supports ISO 14443 A/B and 18092


class SimPn532:
    """The chip; `async_start` begins answering, `async_stop` closes the pty."""

    def __init__(self, master_fd: int, slave_fd: int) -> None:
        self._master = master_fd
        self._slave = slave_fd  # held open so the master never reads EIO between host opens
        self.device = os.ttyname(slave_fd)
        self._decoder = FrameDecoder()
        self.card: bytes | None = None  # NFCID1 of the card in the field
        self.silent = False  # a chip that has lost power
        self.commands: list[int] = []  # command codes received, in order
        self.configured = False  # SAMConfiguration seen (the chip is awake)

    @classmethod
    def create(cls) -> SimPn532:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        return cls(master, slave)

    async def async_start(self) -> None:
        asyncio.get_running_loop().add_reader(self._master, self._on_readable)

    async def async_stop(self) -> None:
        asyncio.get_running_loop().remove_reader(self._master)
        os.close(self._master)
        os.close(self._slave)

    def inject_raw(self, data: bytes) -> None:
        """Write raw bytes (garbage) towards the host."""
        os.write(self._master, data)

    def _on_readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, OSError):
            return
        for frame in self._decoder.feed(data):
            if not isinstance(frame, InformationFrame) or frame.tfi != HOST_TFI or not frame.data:
                continue
            code, params = frame.data[0], frame.data[1:]
            self.commands.append(code)  # what reached the chip, answered or not
            if self.silent:
                continue
            self._write(ACK)
            answer = self._answer(code, params)
            if answer is None:
                self._write(ERROR_FRAME)
            else:
                self._write(encode_frame(PN532_TFI, bytes([code + 1]) + answer))

    def _answer(self, code: int, params: bytes) -> bytes | None:
        if code == SAM_CONFIGURATION:
            self.configured = True
            return b""
        if code == GET_FIRMWARE_VERSION:
            return FIRMWARE
        if code == RF_CONFIGURATION:
            return b""
        if code == IN_LIST_PASSIVE_TARGET and params[:2] == b"\x01\x00":
            if self.card is None:
                return b"\x00"
            # One target: Tg 1, SENS_RES 00 04, SEL_RES 08 (MIFARE Classic 1K), NFCID1.
            return b"\x01\x01\x00\x04\x08" + bytes([len(self.card)]) + self.card
        if code == IN_RELEASE:
            return b"\x00"
        return None

    def _write(self, data: bytes) -> None:
        try:
            os.write(self._master, data)
        except OSError:
            return  # the host is not reading: a real UART would drop the bytes too
