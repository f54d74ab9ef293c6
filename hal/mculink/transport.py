"""Async host end of the MCU link: moves bytes between a pyserial port and the `FrameCodec`.

The port is opened non-blocking and watched with `loop.add_reader`, so reads run on the event
loop thread and need no thread hop. Commands wait for the MCU's `Ack`; a keepalive ping
re-runs the handshake when the MCU goes quiet (it restarted, or the line was cut).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import serial

from chargeport.tasks import OwnedTasks
from hal.mculink.codec import (
    FrameCodec,
    LinkError,
    LinkStats,
    MessageReceived,
    ProvisionAnswered,
    Role,
    SessionEstablished,
    Transmit,
)
from hal.mculink.messages import (
    Ack,
    Message,
    Ping,
    Pong,
    ResetRcd,
    SetContactor,
    SetCpDuty,
    SetLinkKey,
    SetLock,
)

__all__ = ["Command", "McuTransport", "PortUnavailable", "load_link_key"]

log = logging.getLogger(__name__)

Command = SetCpDuty | SetContactor | SetLock | ResetRcd | SetLinkKey


class PortUnavailable(LinkError):
    """The serial device cannot be opened (wrong path, permissions, in use)."""


def load_link_key(path: str) -> bytes:
    """Read the 32-byte link key (hex text) named by `port.link_key_file`."""
    try:
        text = Path(path).read_text().strip()
        key = bytes.fromhex(text)
    except (OSError, ValueError) as exc:
        raise LinkError(f"port.link_key_file {path!r}: cannot read a hex key ({exc})") from exc
    if len(key) != 32:
        raise LinkError(f"port.link_key_file {path!r}: key is {len(key)} bytes, expected 32")
    return key


class McuTransport:
    """The link over one serial device; reports go to `on_message` on the loop thread."""

    def __init__(
        self,
        device: str,
        key: bytes,
        on_message: Callable[[Message], None],
        *,
        baudrate: int = 115_200,
        command_timeout_s: float = 1.0,
        ping_interval_s: float = 0.5,
        link_timeout_s: float = 2.0,
    ) -> None:
        self._device = device
        self._baudrate = baudrate
        self._codec = FrameCodec(key, Role.HOST)
        self._on_message = on_message
        self._command_timeout = command_timeout_s
        self._ping_interval = ping_interval_s
        self._link_timeout = link_timeout_s
        self._serial: serial.Serial | None = None
        self._established = asyncio.Event()
        self._acks: dict[int, asyncio.Future[bool]] = {}
        self._provision_answer: asyncio.Future[bool] | None = None
        self._seq = 0
        self._last_rx = 0.0
        self._tasks = OwnedTasks(log)  # the keepalive

    @property
    def stats(self) -> LinkStats:
        """The codec's frame counters."""
        return self._codec.stats

    @property
    def connected(self) -> bool:
        """True while a session is established."""
        return self._established.is_set()

    async def async_open(self) -> None:
        """Open the port and complete the first handshake (raises `LinkError`)."""
        await self.async_open_port()
        self._write(self._codec.start())
        try:
            await asyncio.wait_for(self._established.wait(), self._link_timeout)
        except TimeoutError:
            await self.async_close()
            raise LinkError(f"MCU link: no handshake answer on {self._device}") from None
        self._tasks.spawn(self._async_keepalive(), "mculink-keepalive")

    async def async_open_port(self) -> None:
        """Open the port only: no handshake, no keepalive (to provision a blank MCU)."""
        try:
            self._serial = serial.Serial(self._device, self._baudrate, timeout=0)
        except (serial.SerialException, OSError) as exc:
            raise PortUnavailable(f"MCU link: cannot open {self._device}: {exc}") from exc
        loop = asyncio.get_running_loop()
        loop.add_reader(self._serial.fileno(), self._on_readable)
        self._last_rx = loop.time()

    async def async_provision(self, key: bytes, *, attempts: int = 3) -> bool:
        """Offer `key` to a blank MCU; True = stored, False = it already holds a key.

        A lost frame is sent again (each attempt waits `command_timeout_s`)."""
        for _ in range(attempts):
            self._provision_answer = asyncio.get_running_loop().create_future()
            self._write(self._codec.provision(key))
            try:
                return await asyncio.wait_for(self._provision_answer, self._command_timeout)
            except TimeoutError:
                continue
            finally:
                self._provision_answer = None
        raise LinkError(f"MCU link: no answer to PROVISION on {self._device}")

    async def async_close(self) -> None:
        """Stop the keepalive and close the port."""
        await self._tasks.cancel_all()
        if self._serial is not None:
            asyncio.get_running_loop().remove_reader(self._serial.fileno())
            self._serial.close()
            self._serial = None
        self._established.clear()
        for fut in self._acks.values():
            if not fut.done():
                fut.set_exception(LinkError("MCU link closed"))
        self._acks.clear()

    async def async_command(self, make: Callable[[int], Command]) -> None:
        """Send the command `make(seq)` and wait for the MCU to acknowledge it."""
        if not self._established.is_set():
            raise LinkError("MCU link down: command not sent")
        self._seq = (self._seq + 1) & 0xFFFF
        seq = self._seq
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._acks[seq] = fut
        try:
            self._write(self._codec.send(make(seq)))
            ok = await asyncio.wait_for(fut, self._command_timeout)
        except TimeoutError:
            raise LinkError(f"MCU link: no acknowledgement for {make(seq)!r}") from None
        finally:
            self._acks.pop(seq, None)
        if not ok:
            raise LinkError(f"MCU refused {make(seq)!r}")

    # ------------------------------------------------------------------ loop callbacks

    def _on_readable(self) -> None:
        """Reader callback (loop thread): drain the port into the codec."""
        assert self._serial is not None
        try:
            data = self._serial.read(self._serial.in_waiting or 1)
        except (serial.SerialException, OSError):
            return  # the peer end vanished for a moment; the keepalive notices silence
        for event in self._codec.receive_data(data):
            if isinstance(event, Transmit):
                self._write(event.data)
            elif isinstance(event, SessionEstablished):
                self._last_rx = asyncio.get_running_loop().time()
                self._established.set()
            elif isinstance(event, MessageReceived):
                self._last_rx = asyncio.get_running_loop().time()
                self._dispatch(event.message)
            elif isinstance(event, ProvisionAnswered):
                if self._provision_answer is not None and not self._provision_answer.done():
                    self._provision_answer.set_result(event.stored)

    def _dispatch(self, message: Message) -> None:
        if isinstance(message, Ack):
            fut = self._acks.get(message.seq)
            if fut is not None and not fut.done():
                fut.set_result(message.ok)
        elif not isinstance(message, Pong):
            self._on_message(message)

    def _write(self, data: bytes) -> None:
        if self._serial is None:
            raise LinkError("MCU link closed")
        try:
            self._serial.write(data)
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"MCU link: write to {self._device} failed: {exc}") from exc

    async def _async_keepalive(self) -> None:
        """Ping periodically; after `link_timeout_s` of silence, handshake again."""
        loop = asyncio.get_running_loop()
        ping = 0
        while True:
            await asyncio.sleep(self._ping_interval)
            try:
                if loop.time() - self._last_rx > self._link_timeout:
                    self._established.clear()
                    self._last_rx = loop.time()
                    self._write(self._codec.start())
                elif self._established.is_set():
                    ping = (ping + 1) & 0xFFFFFFFF
                    self._write(self._codec.send(Ping(ping)))
            except LinkError:
                continue  # the line is gone for now; try again next round
