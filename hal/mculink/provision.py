"""Put a link key on a board's safety MCU (docs/mcu-link.md, "Key provisioning").

A blank MCU takes its first key from a PROVISION frame; a provisioned one changes its key only
inside a session opened with the current key (`SetLinkKey`). Either way the new key is proven
by a fresh handshake before this reports success. Keys never appear in a message or a log:
only `key_id`, a short one-way fingerprint, does.
"""

from __future__ import annotations

import enum
import hashlib

from hal.mculink.codec import LinkError
from hal.mculink.messages import Message, SetLinkKey
from hal.mculink.transport import McuTransport, PortUnavailable

__all__ = ["Outcome", "async_provision", "key_id"]


class Outcome(enum.Enum):
    STORED = "stored on a blank MCU"
    REPLACED = "replaced the previous key"
    ALREADY = "the MCU already holds this key"


def key_id(key: bytes) -> str:
    """A fingerprint to tell keys apart in logs (8 hex digits of a domain-separated SHA-256)."""
    return hashlib.sha256(b"chargeport mculink key id\x00" + key).hexdigest()[:8]


def _ignore(_: Message) -> None:
    """Reports that arrive while provisioning are not needed."""


async def async_provision(
    device: str,
    key: bytes,
    *,
    current_key: bytes | None = None,
    baudrate: int = 115_200,
    timeout_s: float = 1.0,
) -> Outcome:
    """Make the MCU on `device` hold `key`; raises `LinkError` with a one-line reason."""
    if current_key is None:
        blank = McuTransport(device, key, _ignore, baudrate=baudrate, command_timeout_s=timeout_s)
        await blank.async_open_port()
        try:
            stored = await blank.async_provision(key)
        finally:
            await blank.async_close()
        if stored:
            if not await _async_opens(device, key, baudrate, timeout_s):
                raise LinkError(f"the MCU on {device} took the key but does not handshake with it")
            return Outcome.STORED
        if await _async_opens(device, key, baudrate, timeout_s):
            return Outcome.ALREADY
        raise LinkError(
            f"the MCU on {device} already holds a different link key: pass "
            "--current-key-file with it, or clear the key on the board (docs/mcu-link.md)"
        )
    if current_key == key:
        raise LinkError("--current-key-file and --key-file hold the same key")
    session = McuTransport(
        device,
        current_key,
        _ignore,
        baudrate=baudrate,
        command_timeout_s=timeout_s,
        link_timeout_s=timeout_s,
    )
    try:
        await session.async_open()
    except PortUnavailable:
        raise
    except LinkError:
        if await _async_opens(device, key, baudrate, timeout_s):
            return Outcome.ALREADY
        raise LinkError(
            f"the MCU on {device} answers neither the current nor the new key "
            f"(current key {key_id(current_key)}, new key {key_id(key)})"
        ) from None
    try:
        await session.async_command(lambda seq: SetLinkKey(seq, key))
    finally:
        await session.async_close()
    if not await _async_opens(device, key, baudrate, timeout_s):
        raise LinkError(f"the MCU on {device} acknowledged the new key but does not handshake")
    return Outcome.REPLACED


async def _async_opens(device: str, key: bytes, baudrate: int, timeout_s: float) -> bool:
    """True when a handshake under `key` completes."""
    probe = McuTransport(device, key, _ignore, baudrate=baudrate, link_timeout_s=timeout_s)
    try:
        await probe.async_open()
    except LinkError:
        return False
    await probe.async_close()
    return True
