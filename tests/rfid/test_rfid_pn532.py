"""PN532 RFID reader: the frame codec against the datasheet's bytes (UM0701-02 section 6.2),
and the reader against a simulated PN532 on a real pseudo-terminal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from waiting import until

from chargeport.clock import ManualClock
from chargeport.config import PortConfig
from hal.base import HalError
from hal.factory import open_board
from hal.pn532 import (
    ACK,
    NACK,
    AckFrame,
    ErrorFrame,
    FrameDecoder,
    InformationFrame,
    NackFrame,
    Pn532Reader,
    TagDebouncer,
    encode_frame,
    parse_passive_targets,
)
from hal.pn532_sim import SimPn532

# ------------------------------------------------------------------ frames (pure)

# UM0701-02 6.2.1 / 7.2.2: GetFirmwareVersion and the answer of a PN532 v1.6.
GET_FIRMWARE = bytes.fromhex("0000ff02fed4022a00")
FIRMWARE_ANSWER = bytes.fromhex("0000ff06fad50332010607e800")


def test_command_frame_matches_the_user_manual() -> None:
    assert encode_frame(0xD4, b"\x02") == GET_FIRMWARE


def test_response_ack_nack_and_error_frames_decode() -> None:
    """6.2.1.3 ACK, 6.2.1.4 NACK, 6.2.1.5 error frame (syntax error)."""
    frames = FrameDecoder().feed(ACK + FIRMWARE_ANSWER + NACK + bytes.fromhex("0000ff01ff7f8100"))
    assert frames == [
        AckFrame(),
        InformationFrame(0xD5, bytes.fromhex("0332010607")),
        NackFrame(),
        ErrorFrame(),
    ]


def test_frames_split_anywhere_and_wrapped_in_garbage_still_decode() -> None:
    stream = b"\x55\x13\x00\xff\x07" + ACK + b"\xaa" + FIRMWARE_ANSWER + b"\x00\x00"
    for cut in range(1, len(stream)):
        decoder = FrameDecoder()
        frames = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert frames == [AckFrame(), InformationFrame(0xD5, bytes.fromhex("0332010607"))], cut


@pytest.mark.parametrize(
    ("broken", "why"),
    [
        (FIRMWARE_ANSWER[:-2] + b"\xe9\x00", "DCS off by one"),
        (FIRMWARE_ANSWER[:4] + b"\xfb" + FIRMWARE_ANSWER[5:], "LEN + LCS != 0"),
        (bytes.fromhex("0000ffffff0100fe00d400"), "extended frame (unsupported)"),
    ],
)
def test_corrupt_frame_is_dropped_and_the_next_one_decodes(broken: bytes, why: str) -> None:
    decoder = FrameDecoder()
    assert decoder.feed(broken + ACK) == [AckFrame()], why
    assert decoder.dropped == 1


@pytest.mark.parametrize(
    ("answer", "uids"),
    [
        ("00", []),
        ("01 01 0004 08 04 a1b2c3d4", ["a1b2c3d4"]),
        ("01 01 0044 00 07 04112233445566", ["04112233445566"]),
        # Two targets, the first ISO 14443-4 (SEL_RES bit 6) with a 5-byte ATS.
        ("02 01 0004 20 04 01020304 05 7880a002 02 0004 08 04 0a0b0c0d", ["01020304", "0a0b0c0d"]),
    ],
)
def test_in_list_passive_target_answers(answer: str, uids: list[str]) -> None:
    """UM0701-02 7.3.5, 106 kbps type A: NbTg, then Tg, SENS_RES, SEL_RES, NFCID1, [ATS]."""
    assert [u.hex() for u in parse_passive_targets(bytes.fromhex(answer))] == uids


@pytest.mark.parametrize(
    "answer", ["", "01 01 0004", "01 01 0004 08 04 a1b2", "01 01 0004 08 05 0102030405"]
)
def test_malformed_passive_target_answer_is_a_hal_error(answer: str) -> None:
    with pytest.raises(HalError):
        parse_passive_targets(bytes.fromhex(answer))


def test_a_card_is_presented_once_per_arrival() -> None:
    debounce = TagDebouncer()
    polls = [None, "A1", "A1", "A1", None, "A1", "B2", "B2", None, None]
    assert [debounce.observe(p) for p in polls] == [
        None, "A1", None, None, None, "A1", "B2", None, None, None,
    ]  # fmt: skip


# ------------------------------------------------------------------ reader over a pty


@pytest.fixture
async def chip() -> AsyncIterator[SimPn532]:
    sim = SimPn532.create()
    await sim.async_start()
    yield sim
    await sim.async_stop()


@pytest.fixture
async def reader(chip: SimPn532) -> AsyncIterator[Pn532Reader]:
    r = Pn532Reader(chip.device, poll_interval_s=0.01, answer_timeout_s=0.3, retry_s=0.05)
    await r.async_open()
    yield r
    await r.async_close()


@pytest.fixture
async def seen(reader: Pn532Reader) -> AsyncIterator[list[str]]:
    """Every tag the reader presents, collected by a consumer that keeps pulling (as the evse
    runtime does: the reader polls only while someone iterates `tags()`)."""
    got: list[str] = []

    async def consume() -> None:
        async for tag in reader.tags():
            got.append(tag)

    task = asyncio.create_task(consume(), name="rfid-consumer")
    yield got
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.mark.integration
async def test_cards_are_read_once_per_arrival(
    chip: SimPn532, reader: Pn532Reader, seen: list[str]
) -> None:
    chip.card = bytes.fromhex("a1b2c3d4")
    await until(lambda: seen == ["A1B2C3D4"])
    assert reader.firmware == (0x32, 1, 6) and chip.configured
    polls = chip.commands.count(0x4A)
    await until(lambda: chip.commands.count(0x4A) >= polls + 3)  # still on the reader
    assert seen == ["A1B2C3D4"]
    chip.card = bytes.fromhex("04112233445566")  # another card, 7-byte UID
    await until(lambda: len(seen) == 2)
    chip.card = None
    polls = chip.commands.count(0x4A)
    await until(lambda: chip.commands.count(0x4A) >= polls + 2)  # the field is empty
    chip.card = bytes.fromhex("04112233445566")  # the same card again: a new presentation
    await until(lambda: len(seen) == 3)
    assert seen == ["A1B2C3D4", "04112233445566", "04112233445566"]


@pytest.mark.integration
async def test_silent_reader_is_logged_once_and_found_again(
    chip: SimPn532, caplog: pytest.LogCaptureFixture, reader: Pn532Reader
) -> None:
    """A reader that stops answering: one WARNING, retries, one WARNING when it is back."""
    caplog.set_level(logging.WARNING, logger="hal.pn532")
    chip.silent = True
    chip.card = bytes.fromhex("a1b2c3d4")
    got: list[str] = []

    async def consume() -> None:
        async for tag in reader.tags():
            got.append(tag)

    task = asyncio.create_task(consume(), name="rfid-consumer")
    try:
        await until(lambda: "no answer" in caplog.text)
        tries = chip.commands.count(0x14)  # the silent chip still counts what it hears
        await until(lambda: chip.commands.count(0x14) >= tries + 3)  # retried, not logged
        chip.silent = False
        await until(lambda: got == ["A1B2C3D4"])
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if "no answer" in w]) == 1
    assert warnings[-1].endswith("answering again")


@pytest.mark.integration
async def test_garbage_on_the_line_does_not_lose_a_card(
    chip: SimPn532, reader: Pn532Reader, seen: list[str]
) -> None:
    await until(lambda: chip.commands.count(0x4A) >= 1)
    chip.inject_raw(b"\x00\xff\x05\x00\x13\x37" + bytes(range(256)))
    chip.card = bytes.fromhex("deadbeef")
    await until(lambda: seen == ["DEADBEEF"])


async def test_missing_device_is_a_one_line_hal_error(tmp_path: Path) -> None:
    with pytest.raises(HalError, match=r"cannot open port.rfid_device '.*nope'"):
        await Pn532Reader(str(tmp_path / "nope")).async_open()


@pytest.mark.integration
async def test_rfid_device_in_the_config_gives_the_board_its_reader(chip: SimPn532) -> None:
    chip.card = bytes.fromhex("0a0b0c0d")
    config = PortConfig(rfid_device=chip.device)
    async with open_board(config, ManualClock()) as (board, _):
        assert isinstance(board.id_reader, Pn532Reader)
        tags = board.id_reader.tags()
        assert await anext(tags) == "0A0B0C0D"
        await tags.aclose()  # type: ignore[attr-defined]  # an async generator underneath
