"""Sans-IO MCU link codec: handshake, message round trip, and hostile byte streams."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import pytest
from cobs import cobs
from hypothesis import given, settings
from hypothesis import strategies as st

from hal.mculink.codec import (
    FrameCodec,
    LinkNotReady,
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
    MessageError,
    Ping,
    Pong,
    RcdStatus,
    ResetRcd,
    SetContactor,
    SetCpDuty,
    SetLock,
    Temperature,
    decode_message,
    encode_message,
)

KEY = bytes(range(32))

ALL_MESSAGES: list[Message] = [
    Ping(7),
    Pong(7),
    SetCpDuty(1, 26.5),
    SetContactor(2, True),
    SetLock(3, False),
    ResetRcd(4),
    Ack(5, True),
    CpLevel(9.0, True),
    ContactorFeedback(True),
    LockFeedback(True),
    Temperature(41.5),
    RcdStatus(False),
    Currents(16.0, 15.5, 0.0),
    Fault(3, True, "contactor welded"),
]


def pair() -> tuple[FrameCodec, FrameCodec]:
    """A host and an MCU codec after a completed handshake."""
    host, mcu = FrameCodec(KEY, Role.HOST), FrameCodec(KEY, Role.MCU)
    events = mcu.receive_data(host.start())
    assert isinstance(events[0], Transmit) and isinstance(events[1], SessionEstablished)
    assert host.receive_data(events[0].data) == [SessionEstablished()]
    return host, mcu


def messages(events: Sequence[object]) -> list[Message]:
    return [e.message for e in events if isinstance(e, MessageReceived)]


@pytest.mark.parametrize("message", ALL_MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips_both_ways(message: Message) -> None:
    host, mcu = pair()
    assert messages(mcu.receive_data(host.send(message))) == [message]
    assert messages(host.receive_data(mcu.send(message))) == [message]


def test_send_before_handshake_is_refused() -> None:
    with pytest.raises(LinkNotReady):
        FrameCodec(KEY, Role.HOST).send(Ping(1))


def test_wrong_key_fails_authentication() -> None:
    host, mcu = FrameCodec(KEY, Role.HOST), FrameCodec(bytes(32), Role.MCU)
    assert mcu.receive_data(host.start()) == []
    assert mcu.stats.auth_failures == 1 and not mcu.established


def test_replayed_frame_is_dropped_and_counted() -> None:
    host, mcu = pair()
    frame = host.send(SetContactor(1, True))
    assert messages(mcu.receive_data(frame)) == [SetContactor(1, True)]
    assert mcu.receive_data(frame) == []
    assert mcu.stats.replayed == 1
    assert messages(mcu.receive_data(host.send(Ping(2)))) == [Ping(2)]


def test_frame_from_an_old_session_is_rejected_after_rehandshake() -> None:
    """A new handshake derives a new session key: counters restart without nonce reuse."""
    host, mcu = pair()
    old = host.send(SetContactor(1, True))
    [reply, _] = mcu.receive_data(host.start())
    assert isinstance(reply, Transmit)
    host.receive_data(reply.data)
    assert mcu.receive_data(old) == []
    assert mcu.stats.auth_failures == 1
    # The fresh frame reuses counter 1 (same nonce), but under a new session key.
    assert messages(mcu.receive_data(host.send(SetContactor(1, True)))) == [SetContactor(1, True)]


def test_direction_is_part_of_the_nonce() -> None:
    """A host frame reflected back to the host is not accepted as an MCU frame."""
    host, _ = pair()
    assert host.receive_data(host.send(Ping(1))) == []
    assert host.stats.unexpected == 1


def test_tampered_frame_with_fixed_crc_fails_authentication() -> None:
    host, mcu = pair()
    raw = cobs.decode(host.send(Ping(1)).strip(b"\x00"))
    body = bytearray(raw[:-4])
    body[-1] ^= 0x01  # flip a bit of the tag, then make the CRC match again
    forged = b"\x00" + cobs.encode(bytes(body) + zlib.crc32(bytes(body)).to_bytes(4, "big"))
    assert mcu.receive_data(forged + b"\x00") == []
    assert mcu.stats.auth_failures == 1


@settings(max_examples=150, deadline=None)
@given(
    garbage=st.lists(st.binary(max_size=700), min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=20),
)
def test_garbage_between_valid_frames_never_hides_them(
    garbage: list[bytes], cuts: list[int]
) -> None:
    """Arbitrary garbage interleaved with valid frames: every frame arrives, in order."""
    host, mcu = pair()
    sent = [SetCpDuty(i, 10.0 + i) for i in range(len(garbage))]
    stream = b"".join(g + host.send(m) for g, m in zip(garbage, sent, strict=True))
    stream += garbage[0]
    got: list[Message] = []
    pos, k = 0, 0
    while pos < len(stream):  # delivered in arbitrary chunks, as a UART does
        n = cuts[k % len(cuts)]
        got += messages(mcu.receive_data(stream[pos : pos + n]))
        pos, k = pos + n, k + 1
    assert got == sent


@settings(max_examples=150, deadline=None)
@given(position=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_any_flipped_bit_is_rejected_and_the_next_frame_decodes(position: int, bit: int) -> None:
    host, mcu = pair()
    frame = bytearray(host.send(SetContactor(1, True)))
    i = 1 + position % (len(frame) - 2)  # inside the frame, not its delimiters
    frame[i] ^= 1 << bit
    good = host.send(SetContactor(2, False))
    assert messages(mcu.receive_data(bytes(frame) + good)) == [SetContactor(2, False)]
    assert mcu.stats.dropped >= 1


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=2000))
def test_pure_garbage_never_raises(data: bytes) -> None:
    host, mcu = pair()
    assert messages(mcu.receive_data(data)) == []  # must not raise; may count drops
    assert messages(mcu.receive_data(host.send(Ping(1)))) == [Ping(1)]


def test_truncated_frame_is_counted() -> None:
    host, mcu = pair()
    frame = host.send(Ping(1))
    assert mcu.receive_data(frame[:12] + b"\x00") == []
    assert mcu.stats.truncated + mcu.stats.garbage + mcu.stats.crc_errors == 1
    assert messages(mcu.receive_data(frame)) == [Ping(1)]


def test_unknown_or_short_message_is_a_message_error() -> None:
    with pytest.raises(MessageError):
        decode_message(b"\x7f")
    with pytest.raises(MessageError):
        decode_message(encode_message(SetCpDuty(1, 10.0))[:-1])
