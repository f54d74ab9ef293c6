"""RFID reader: an NXP PN532 (or another PN53x) on a UART in HSU mode, via pyserial.

Theory of operation (PN532 User Manual UM0701-02, section 6.2 "Host link protocol"). Every
exchange is a command frame from the host, an ACK frame from the PN532, then its response:

    normal frame: 00 00 FF | LEN | LCS | TFI | PD0..PDn | DCS | 00
    LEN = len(TFI + PD), LEN + LCS = 0 (mod 256), TFI + sum(PD) + DCS = 0 (mod 256)
    TFI = D4 host -> PN532, D5 PN532 -> host; response code = command code + 1
    ACK 00 00 FF 00 FF 00 · NACK 00 00 FF FF 00 00 · error frame 00 00 FF 01 FF 7F 81 00

The reader wakes the chip (section 7.2.11: 0x55 0x55 then zeros), configures it
(SAMConfiguration normal mode, RFConfiguration MaxRetries so that InListPassiveTarget returns
when no card is there), then polls InListPassiveTarget (106 kbps type A, section 7.3.5) and
presents each card's NFCID1 (UID, hex) once per arrival. `FrameDecoder` and `TagDebouncer`
are the pure cores; `Pn532Reader` only moves bytes. A reader that stops answering is logged
once, retried, and logged again when it answers: the port keeps charging without RFID.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import serial

from hal.base import HalError

__all__ = [
    "ACK",
    "NACK",
    "AckFrame",
    "ErrorFrame",
    "Frame",
    "FrameDecoder",
    "InformationFrame",
    "NackFrame",
    "Pn532Reader",
    "TagDebouncer",
    "encode_frame",
    "parse_passive_targets",
]

log = logging.getLogger(__name__)

HOST_TFI, PN532_TFI = 0xD4, 0xD5
ACK = b"\x00\x00\xff\x00\xff\x00"
NACK = b"\x00\x00\xff\xff\x00\x00"
ERROR_FRAME = b"\x00\x00\xff\x01\xff\x7f\x81\x00"
WAKEUP = b"\x55\x55" + bytes(14)  # HSU wake-up: the chip needs a long preamble (7.2.11)

GET_FIRMWARE_VERSION = 0x02
SAM_CONFIGURATION = 0x14
RF_CONFIGURATION = 0x32
IN_LIST_PASSIVE_TARGET = 0x4A
IN_RELEASE = 0x52

_MAX_BUFFER = 1024


def encode_frame(tfi: int, data: bytes) -> bytes:
    """A normal information frame carrying TFI and `data` (at most 254 bytes together)."""
    body = bytes([tfi]) + data
    if len(body) > 254:
        raise ValueError("a normal PN532 frame carries at most 254 bytes")
    n = len(body)
    return b"\x00\x00\xff" + bytes([n, -n & 0xFF]) + body + bytes([-sum(body) & 0xFF, 0x00])


@dataclass(frozen=True, slots=True)
class AckFrame:
    pass


@dataclass(frozen=True, slots=True)
class NackFrame:
    pass


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    """The PN532 could not parse or execute a command (syntax error frame)."""


@dataclass(frozen=True, slots=True)
class InformationFrame:
    tfi: int
    data: bytes  # command or response code, then its parameters


Frame = AckFrame | NackFrame | ErrorFrame | InformationFrame


class FrameDecoder:
    """Bytes in, frames out; resynchronises at the next start code after garbage."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.dropped = 0  # bad checksums and unsupported (extended) frames

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        buf = self._buffer
        while True:
            start = buf.find(b"\x00\xff")
            if start < 0:
                del buf[: max(0, len(buf) - 1)]  # a trailing 0x00 may begin a start code
                break
            del buf[:start]
            if len(buf) < 4:
                break
            length, lcs = buf[2], buf[3]
            if (length, lcs) == (0x00, 0xFF):
                frames.append(AckFrame())
                del buf[:4]
                continue
            if (length, lcs) == (0xFF, 0x00):
                frames.append(NackFrame())
                del buf[:4]
                continue
            if (length + lcs) & 0xFF or length == 0xFF:  # bad LCS, or an extended frame
                self.dropped += 1
                del buf[:2]
                continue
            if len(buf) < 4 + length + 1:
                break
            body, dcs = bytes(buf[4 : 4 + length]), buf[4 + length]
            if (sum(body) + dcs) & 0xFF:
                self.dropped += 1
                del buf[:2]
                continue
            del buf[: 4 + length + 1]
            frames.append(ErrorFrame() if body == b"\x7f" else InformationFrame(body[0], body[1:]))
        if len(buf) > _MAX_BUFFER:
            del buf[:-4]
        return frames


def parse_passive_targets(data: bytes) -> list[bytes]:
    """NFCID1s from an InListPassiveTarget response for 106 kbps type A (UM0701-02 7.3.5):
    NbTg, then per target Tg, SENS_RES (2), SEL_RES (1), NFCIDLength, NFCID1, [ATS]."""
    if not data:
        raise HalError("PN532: empty InListPassiveTarget response")
    uids: list[bytes] = []
    pos = 1
    for _ in range(data[0]):
        if pos + 5 > len(data):
            raise HalError("PN532: InListPassiveTarget response cut short")
        sel_res, uid_len = data[pos + 3], data[pos + 4]
        uid = data[pos + 5 : pos + 5 + uid_len]
        if len(uid) != uid_len or uid_len not in (4, 7, 10):
            raise HalError(f"PN532: NFCID1 of {uid_len} bytes (expected 4, 7 or 10)")
        uids.append(uid)
        pos += 5 + uid_len
        if sel_res & 0x20 and pos < len(data):  # ISO/IEC 14443-4 card: an ATS follows,
            pos += data[pos]  # whose first byte is its length (including itself)
    return uids


class TagDebouncer:
    """One presentation per card arrival: a card that stays on the reader is not re-sent."""

    def __init__(self) -> None:
        self._present: str | None = None

    def observe(self, uid: str | None) -> str | None:
        """Feed one poll result; returns the tag to present, if this poll brought one."""
        new = uid if uid is not None and uid != self._present else None
        self._present = uid
        return new


class Pn532Reader:
    """`hal.base.IdReader` over a PN532 on `device` (`port.rfid_device`)."""

    def __init__(
        self,
        device: str,
        *,
        baudrate: int = 115_200,
        poll_interval_s: float = 0.2,
        answer_timeout_s: float = 0.5,
        retry_s: float = 2.0,
        passive_retries: int = 2,
    ) -> None:
        self._device = device
        self._baudrate = baudrate
        self._poll_interval = poll_interval_s
        self._answer_timeout = answer_timeout_s
        self._retry = retry_s
        self._passive_retries = passive_retries
        self._serial: serial.Serial | None = None
        self._decoder = FrameDecoder()
        self._frames: asyncio.Queue[Frame] = asyncio.Queue()
        self._problem: str | None = None
        self.firmware: tuple[int, int, int] | None = None  # IC, version, revision

    async def async_open(self) -> None:
        """Open the serial port (raises `HalError`); the chip itself is set up by `tags()`."""
        try:
            self._serial = serial.Serial(self._device, self._baudrate, timeout=0)
        except (serial.SerialException, OSError) as exc:
            raise HalError(
                f"RFID reader: cannot open port.rfid_device {self._device!r}: {exc}"
            ) from exc
        asyncio.get_running_loop().add_reader(self._serial.fileno(), self._on_readable)

    async def async_close(self) -> None:
        if self._serial is not None:
            asyncio.get_running_loop().remove_reader(self._serial.fileno())
            self._serial.close()
            self._serial = None

    async def tags(self) -> AsyncIterator[str]:
        """Every card presented, as its UID in upper-case hex, until the reader is closed."""
        debounce = TagDebouncer()
        ready = False
        while self._serial is not None:
            try:
                if not ready:
                    await self._async_setup()
                    ready = True
                uid = await self._async_poll()
            except HalError as exc:
                ready = False
                if str(exc) != self._problem:
                    self._problem = str(exc)
                    log.warning(
                        "RFID reader on %s: %s (retrying every %g s)",
                        self._device,
                        exc,
                        self._retry,
                    )
                await asyncio.sleep(self._retry)
                continue
            if self._problem is not None:
                log.warning("RFID reader on %s: answering again", self._device)
                self._problem = None
            tag = debounce.observe(uid)
            if tag is not None:
                yield tag
            await asyncio.sleep(self._poll_interval)

    # ------------------------------------------------------------------ exchanges

    async def _async_setup(self) -> None:
        self._write(WAKEUP)
        await self._async_command(SAM_CONFIGURATION, b"\x01\x14\x01")  # normal mode, IRQ on
        # CfgItem 5 MaxRetries: ATR 0xFF, PSL 1, passive activation: return when no card.
        await self._async_command(
            RF_CONFIGURATION, bytes([0x05, 0xFF, 0x01, self._passive_retries])
        )
        version = await self._async_command(GET_FIRMWARE_VERSION, b"")
        if len(version) != 4:
            raise HalError("GetFirmwareVersion answer is not a PN53x's")
        self.firmware = (version[0], version[1], version[2])
        log.info(
            "RFID reader on %s: PN5%02x firmware %d.%d",
            self._device,
            version[0],
            version[1],
            version[2],
        )

    async def _async_poll(self) -> str | None:
        """One InListPassiveTarget: the UID of the card in the field, or None."""
        answer = await self._async_command(IN_LIST_PASSIVE_TARGET, b"\x01\x00")
        uids = parse_passive_targets(answer)
        if not uids:
            return None
        await self._async_command(IN_RELEASE, b"\x00")  # deselect: the next poll finds it anew
        return uids[0].hex().upper()

    async def _async_command(self, code: int, params: bytes) -> bytes:
        """Send a command; wait for its ACK and its response; returns the response parameters."""
        while not self._frames.empty():
            self._frames.get_nowait()  # stale answers of an exchange that timed out
        self._write(encode_frame(HOST_TFI, bytes([code]) + params))
        try:
            async with asyncio.timeout(self._answer_timeout):
                while not isinstance(frame := await self._frames.get(), AckFrame):
                    pass
            async with asyncio.timeout(self._answer_timeout):
                while True:
                    frame = await self._frames.get()
                    if isinstance(frame, ErrorFrame):
                        raise HalError(f"PN532 refused command {code:#04x} (error frame)")
                    if (
                        isinstance(frame, InformationFrame)
                        and frame.tfi == PN532_TFI
                        and frame.data[:1] == bytes([code + 1])
                    ):
                        return frame.data[1:]
        except TimeoutError:
            raise HalError(
                f"no answer to command {code:#04x} (is it a PN532 in HSU mode at "
                f"{self._baudrate} baud?)"
            ) from None

    def _write(self, data: bytes) -> None:
        if self._serial is None:
            raise HalError("the reader is closed")
        try:
            self._serial.write(data)
        except (serial.SerialException, OSError) as exc:
            raise HalError(f"write failed: {exc}") from exc

    def _on_readable(self) -> None:
        """Reader callback (loop thread): decode what arrived."""
        assert self._serial is not None
        try:
            data = self._serial.read(self._serial.in_waiting or 1)
        except (serial.SerialException, OSError):
            return  # the reader vanished for a moment; the exchange times out and retries
        for frame in self._decoder.feed(data):
            self._frames.put_nowait(frame)
