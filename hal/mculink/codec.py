"""Sans-IO frame codec of the host <-> safety MCU serial link: bytes in, events out.

The normative description (with test vectors and a C reference) is docs/mcu-link.md; this
summary must agree with it. A frame on the wire is COBS-encoded and ends with one 0x00 byte,
so a receiver resynchronises at the next 0x00 whatever garbage came before. Decoded, a frame is

    type (1) | direction (1) | body | CRC-32 (4, big endian, over everything before it)

The CRC separates line noise (counted as `crc_errors`) from forgery (`auth_failures`).
Bodies are ChaCha20-Poly1305 (RFC 8439) with the header as associated data:

- HELLO (host -> MCU): random 12-byte nonce | AEAD_K(host_random 16)
- HELLO_ACK (MCU -> host): random 12-byte nonce | AEAD_K(host_random 16 | mcu_random 16)
- DATA: counter (8) | AEAD_S(message), nonce = direction byte | 3 zero bytes | counter
- PROVISION (host -> MCU): the new key K (32), in clear; only a blank MCU (no key) takes it
- PROVISION_ACK (MCU -> host): status (1), 0 = stored, 1 = refused (the MCU has a key)

K is the long-term link key (`port.link_key_file`); each handshake derives a fresh session key
S = HKDF-SHA256(K, salt = host_random | mcu_random). Counters start at 1 per session and
direction, and the direction byte is in the nonce, so a (key, nonce) pair never repeats even
though both sides restart their counters after a reboot. Handshake nonces are random 96-bit
values under K (few per key lifetime). A DATA frame whose counter is not above the last one
accepted is a replay (the UART delivers in order, so no window is needed). A provisioned key
is replaced only inside a session (the `SetLinkKey` message). Nothing a peer sends makes the
decoder raise: bad frames are dropped and counted in `LinkStats`.
"""

from __future__ import annotations

import enum
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from cobs import cobs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hal.base import HalError
from hal.mculink.messages import Message, MessageError, decode_message, encode_message

__all__ = [
    "MAX_FRAME",
    "FrameCodec",
    "KeyProvisioned",
    "LinkError",
    "LinkEvent",
    "LinkNotReady",
    "LinkStats",
    "MessageReceived",
    "ProvisionAnswered",
    "Role",
    "SessionEstablished",
    "Transmit",
]

MAX_FRAME = 256  # bytes of a decoded frame; longer runs without a delimiter are garbage
_HELLO, _HELLO_ACK, _DATA, _PROVISION, _PROVISION_ACK = 0x01, 0x02, 0x03, 0x04, 0x05
_TAG = 16
_MIN_FRAME = 2 + 1 + 4  # header, one body byte, CRC: the smallest frame (PROVISION_ACK)
# The shortest body (after the 2-byte header) of each frame type; shorter is `truncated`.
_MIN_BODY = {
    _HELLO: 12 + 16 + _TAG,
    _HELLO_ACK: 12 + 32 + _TAG,
    _DATA: 8 + _TAG,
    _PROVISION: 32,
    _PROVISION_ACK: 1,
}
_COUNTER = struct.Struct(">Q")
_INFO = b"chargeport mculink v1 session"


class LinkError(HalError):
    """The MCU link failed (no session, no answer, device gone)."""


class LinkNotReady(LinkError):
    """A message was sent before the handshake completed."""


class Role(enum.Enum):
    """Which end of the link this codec is; the value is the direction byte it sends with."""

    HOST = 0x00
    MCU = 0x01


@dataclass
class LinkStats:
    """Counters of what the decoder accepted and dropped."""

    frames_ok: int = 0
    garbage: int = 0  # not COBS, empty, or too long without a delimiter
    truncated: int = 0  # shorter than the smallest frame
    crc_errors: int = 0
    auth_failures: int = 0  # CRC right, AEAD tag wrong: tampered or wrong key
    replayed: int = 0
    bad_messages: int = 0  # authentic but not a message we know
    unexpected: int = 0  # a valid frame that makes no sense now (wrong direction, stale)
    handshakes: int = 0

    @property
    def dropped(self) -> int:
        """Every frame that was not accepted."""
        return (
            self.garbage
            + self.truncated
            + self.crc_errors
            + self.auth_failures
            + self.replayed
            + self.bad_messages
            + self.unexpected
        )


@dataclass(frozen=True, slots=True)
class Transmit:
    """Effect: write these bytes to the line."""

    data: bytes


@dataclass(frozen=True, slots=True)
class SessionEstablished:
    """A handshake completed; counters restarted."""


@dataclass(frozen=True, slots=True)
class MessageReceived:
    message: Message


@dataclass(frozen=True, slots=True)
class KeyProvisioned:
    """MCU: a blank MCU took a link key from PROVISION; persist it before anything else."""

    key: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class ProvisionAnswered:
    """Host: the MCU answered our PROVISION (stored = False: it already holds a key)."""

    stored: bool


LinkEvent = Transmit | SessionEstablished | MessageReceived | KeyProvisioned | ProvisionAnswered


class FrameCodec:
    """One end of the link. `receive_data` never raises; `start`/`send` return wire bytes.

    `key` None is a blank MCU (factory state): it answers only PROVISION."""

    def __init__(
        self, key: bytes | None, role: Role, random: Callable[[int], bytes] = os.urandom
    ) -> None:
        if key is None and role is Role.HOST:
            raise ValueError("the host end of the MCU link needs a key")
        self.role = role
        self._random = random
        self._key: ChaCha20Poly1305 | None = None
        self._key_bytes = b""
        if key is not None:
            self.rekey(key)
        self._peer = Role.MCU if role is Role.HOST else Role.HOST
        self._session: ChaCha20Poly1305 | None = None
        self._host_random = b""
        self._provisioning = False  # host: a PROVISION is waiting for its answer
        self._tx_counter = 0
        self._rx_counter = 0
        self._buffer = bytearray()
        self._overflow = False  # discarding until the next delimiter
        self.stats = LinkStats()

    @property
    def established(self) -> bool:
        """True once a session key is in place."""
        return self._session is not None

    @property
    def provisioned(self) -> bool:
        """True when this end holds a long-term key."""
        return self._key is not None

    def rekey(self, key: bytes) -> None:
        """Use `key` as the long-term key from the next handshake on (the session goes on)."""
        if len(key) != 32:
            raise ValueError("the MCU link key must be 32 bytes")
        self._key = ChaCha20Poly1305(key)
        self._key_bytes = key

    def start(self) -> bytes:
        """Host: begin (or restart) the handshake; returns the HELLO frame to write."""
        if self.role is not Role.HOST:
            raise LinkError("only the host starts the handshake")
        self._session = None
        self._host_random = self._random(16)
        return self._frame(_HELLO, self._seal_long_term(_HELLO, self._host_random))

    def provision(self, key: bytes) -> bytes:
        """Host: the PROVISION frame offering `key` to a blank MCU (the key travels in clear)."""
        if self.role is not Role.HOST:
            raise LinkError("only the host provisions a key")
        if len(key) != 32:
            raise ValueError("the MCU link key must be 32 bytes")
        self._provisioning = True
        return self._frame(_PROVISION, key)

    def send(self, message: Message) -> bytes:
        """Encrypt `message` under the session key; returns the frame to write."""
        if self._session is None:
            raise LinkNotReady("MCU link handshake not complete")
        self._tx_counter += 1
        counter = _COUNTER.pack(self._tx_counter)
        header = bytes([_DATA, self.role.value])
        sealed = self._session.encrypt(
            self._nonce(self.role, counter), encode_message(message), header + counter
        )
        return self._frame(_DATA, counter + sealed)

    def receive_data(self, data: bytes) -> list[LinkEvent]:
        """Feed bytes from the line; returns what they mean, in order."""
        events: list[LinkEvent] = []
        *complete, tail = data.split(b"\x00")
        for chunk in complete:
            events += self._complete(chunk)
        self._append(tail)
        return events

    # ------------------------------------------------------------------ receive side

    def _append(self, data: bytes) -> None:
        if self._overflow:
            return
        self._buffer += data
        if len(self._buffer) > 2 * MAX_FRAME:  # COBS overhead is < 1 %; this is no frame
            self._buffer.clear()
            self._overflow = True
            self.stats.garbage += 1

    def _complete(self, chunk: bytes) -> list[LinkEvent]:
        """A delimiter arrived: decode what was buffered plus `chunk`."""
        self._append(chunk)
        raw, overflow = bytes(self._buffer), self._overflow
        self._buffer.clear()
        self._overflow = False
        if overflow:
            return []
        if not raw:
            return []  # back-to-back delimiters are allowed (senders may lead with one)
        try:
            frame = cobs.decode(raw)
        except cobs.DecodeError:
            self.stats.garbage += 1
            return []
        return self._frame_in(frame)

    def _frame_in(self, frame: bytes) -> list[LinkEvent]:
        if len(frame) < _MIN_FRAME:
            self.stats.truncated += 1
            return []
        body, crc = frame[:-4], frame[-4:]
        if zlib.crc32(body).to_bytes(4, "big") != crc:
            self.stats.crc_errors += 1
            return []
        kind, direction, payload = body[0], body[1], body[2:]
        if direction != self._peer.value or kind not in _MIN_BODY:
            self.stats.unexpected += 1
            return []
        if len(payload) < _MIN_BODY[kind]:
            self.stats.truncated += 1
            return []
        if kind == _PROVISION and self.role is Role.MCU and len(payload) == 32:
            return self._provision_in(payload)
        if kind == _PROVISION_ACK and self.role is Role.HOST and len(payload) == 1:
            return self._provision_ack_in(payload[0])
        header = body[:2]
        try:
            if kind == _DATA:
                return self._data_in(header, payload)
            if kind in (_HELLO, _HELLO_ACK) and self._key is not None:
                plain = self._key.decrypt(payload[:12], payload[12:], header)
            else:
                plain = b""  # a blank MCU cannot check a HELLO; PROVISION in the wrong place
        except InvalidTag:
            self.stats.auth_failures += 1
            return []
        if kind == _HELLO and self.role is Role.MCU and len(plain) == 16:
            return self._hello_in(plain)
        if kind == _HELLO_ACK and self.role is Role.HOST and len(plain) == 32:
            return self._hello_ack_in(plain)
        self.stats.unexpected += 1
        return []

    def _data_in(self, header: bytes, payload: bytes) -> list[LinkEvent]:
        if self._session is None:
            self.stats.unexpected += 1
            return []
        counter = payload[:8]
        plain = self._session.decrypt(
            self._nonce(self._peer, counter), payload[8:], header + counter
        )
        value = _COUNTER.unpack(counter)[0]
        if value <= self._rx_counter:
            self.stats.replayed += 1
            return []
        self._rx_counter = value
        try:
            message = decode_message(plain)
        except MessageError:
            self.stats.bad_messages += 1
            return []
        self.stats.frames_ok += 1
        return [MessageReceived(message)]

    def _hello_in(self, host_random: bytes) -> list[LinkEvent]:
        """MCU: a host (re)started; a new session replaces any old one."""
        mcu_random = self._random(16)
        reply = self._frame(_HELLO_ACK, self._seal_long_term(_HELLO_ACK, host_random + mcu_random))
        self._establish(host_random, mcu_random)
        return [Transmit(reply), SessionEstablished()]

    def _hello_ack_in(self, plain: bytes) -> list[LinkEvent]:
        """Host: the MCU answered our current HELLO (an old answer is stale)."""
        if not self._host_random or plain[:16] != self._host_random:
            self.stats.unexpected += 1
            return []
        self._establish(plain[:16], plain[16:])
        self._host_random = b""
        return [SessionEstablished()]

    def _provision_in(self, key: bytes) -> list[LinkEvent]:
        """MCU: only a blank MCU takes a key in clear; one that has a key says so."""
        self.stats.frames_ok += 1
        if self._key is not None:
            return [Transmit(self._frame(_PROVISION_ACK, b"\x01"))]
        self.rekey(key)
        return [KeyProvisioned(key), Transmit(self._frame(_PROVISION_ACK, b"\x00"))]

    def _provision_ack_in(self, status: int) -> list[LinkEvent]:
        """Host: the answer to our PROVISION (unasked, it is stale or forged)."""
        if not self._provisioning or status > 1:
            self.stats.unexpected += 1
            return []
        self._provisioning = False
        self.stats.frames_ok += 1
        return [ProvisionAnswered(stored=status == 0)]

    def _establish(self, host_random: bytes, mcu_random: bytes) -> None:
        hkdf = HKDF(hashes.SHA256(), 32, salt=host_random + mcu_random, info=_INFO)
        self._session = ChaCha20Poly1305(hkdf.derive(self._key_bytes))
        self._tx_counter = self._rx_counter = 0
        self.stats.frames_ok += 1
        self.stats.handshakes += 1

    # ------------------------------------------------------------------ framing

    def _seal_long_term(self, kind: int, plain: bytes) -> bytes:
        assert self._key is not None  # the host always has a key; a blank MCU never seals
        nonce = self._random(12)
        return nonce + self._key.encrypt(nonce, plain, bytes([kind, self.role.value]))

    def _frame(self, kind: int, payload: bytes) -> bytes:
        body = bytes([kind, self.role.value]) + payload
        # A leading delimiter flushes whatever partial garbage the receiver holds.
        encoded: bytes = cobs.encode(body + zlib.crc32(body).to_bytes(4, "big"))
        return b"\x00" + encoded + b"\x00"

    @staticmethod
    def _nonce(direction: Role, counter: bytes) -> bytes:
        return bytes([direction.value, 0, 0, 0]) + counter
