"""Test vectors of the MCU link (docs/mcu-link.md), built with the Python codec.

`build()` is deterministic: every random value the codec asks for comes from a fixed queue and
is written into the vectors, so another implementation can replay them. The JSON file under
`hal/mculink/vectors/` and the C header under `hal/mculink/c/` are renderings of `build()`;
`scripts/gen_mcu_vectors.py` writes them and `--check` proves they are fresh.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cobs import cobs
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hal.mculink.codec import FrameCodec, Role, Transmit
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
    encode_message,
)

__all__ = [
    "C_HEADER",
    "JSON_FILE",
    "FixedRandom",
    "build",
    "handshake",
    "render_c_header",
    "render_json",
]

ROOT = Path(__file__).resolve().parent
JSON_FILE = ROOT / "vectors" / "mculink-v1.json"
C_HEADER = ROOT / "c" / "mculink_vectors.h"

KEY = bytes(range(0x80, 0xA0))  # the long-term key K of every vector
NEW_KEY = bytes(range(0x40, 0x60))  # the key PROVISION / SetLinkKey carry
HOST_RANDOM = bytes(range(0x10, 0x20))
HELLO_NONCE = bytes(range(0xA0, 0xAC))
MCU_RANDOM = bytes(range(0x20, 0x30))
HELLO_ACK_NONCE = bytes(range(0xB0, 0xBC))
INFO = b"chargeport mculink v1 session"


class FixedRandom:
    """A random source that hands out the given byte strings, in order, exactly."""

    def __init__(self, *chunks: bytes) -> None:
        self._chunks = list(chunks)

    def __call__(self, n: int) -> bytes:
        chunk = self._chunks.pop(0)
        if len(chunk) != n:
            raise AssertionError(f"asked for {n} random bytes, queued {len(chunk)}")
        return chunk


MESSAGES: list[Message] = [
    Ping(0x01020304),
    Pong(0xFFFFFFFF),
    SetCpDuty(1, 26.5),
    SetCpDuty(2, 100.0),
    SetContactor(3, True),
    SetLock(4, False),
    ResetRcd(0xFFFF),
    SetLinkKey(6, NEW_KEY),
    Ack(7, True),
    Ack(8, False),
    CpLevel(9.0, True),
    CpLevel(-12.0, False),
    ContactorFeedback(True),
    LockFeedback(False),
    Temperature(41.5),
    RcdStatus(True),
    Currents(16.0, 15.5, 0.25),
    Fault(1, True, "contactor welded"),
    Fault(1, False, ""),
]

# (payload, why it is no message); the message layer's own errors.
BAD_PAYLOADS: list[tuple[bytes, str]] = [
    (b"", "empty"),
    (b"\x7f", "unknown type 0x7f"),
    (b"\x01\x01\x02\x03", "Ping with 3 of 4 bytes"),
    (b"\x11\x03\x00\x01\x00", "SetContactor with one byte too many"),
    (b"\x30\x01\x00", "Fault shorter than code and active"),
]


def handshake(key: bytes = KEY) -> tuple[FrameCodec, FrameCodec, bytes, bytes]:
    """Host and MCU codecs after the vectors' handshake, with the HELLO and HELLO_ACK wire."""
    host = FrameCodec(key, Role.HOST, random=FixedRandom(HOST_RANDOM, HELLO_NONCE))
    mcu = FrameCodec(key, Role.MCU, random=FixedRandom(MCU_RANDOM, HELLO_ACK_NONCE))
    hello = host.start()
    reply = mcu.receive_data(hello)[0]
    assert isinstance(reply, Transmit)
    host.receive_data(reply.data)
    assert host.established and mcu.established
    return host, mcu, hello, reply.data


def _fields(msg: Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in msg.__slots__:
        value = getattr(msg, name)
        out[name] = value.hex() if isinstance(value, bytes) else value
    return out


def _message(msg: Message) -> dict[str, Any]:
    return {
        "type": type(msg).__name__,
        "fields": _fields(msg),
        "payload": encode_message(msg).hex(),
    }


def _wire(body: bytes) -> bytes:
    """A frame as a sender writes it, from its decoded body (CRC added here)."""
    return b"\x00" + bytes(cobs.encode(body + zlib.crc32(body).to_bytes(4, "big"))) + b"\x00"


def _unwire(wire: bytes) -> bytes:
    """The decoded body (without CRC) of a single well-formed frame."""
    return bytes(cobs.decode(wire.strip(b"\x00")))[:-4]


def _seal_data(session_key: bytes, direction: int, counter: int, payload: bytes) -> bytes:
    """A DATA frame with any counter (also ones the codec would never send)."""
    header = bytes([0x03, direction])
    ctr = counter.to_bytes(8, "big")
    nonce = bytes([direction, 0, 0, 0]) + ctr
    return _wire(header + ctr + ChaCha20Poly1305(session_key).encrypt(nonce, payload, header + ctr))


def _drop(counter: str) -> dict[str, Any]:
    return {"drop": counter}


def build() -> dict[str, Any]:
    """Every vector, as plain JSON-able data."""
    session_key = HKDF(hashes.SHA256(), 32, salt=HOST_RANDOM + MCU_RANDOM, info=INFO).derive(KEY)
    host, mcu, hello, hello_ack = handshake()
    frames: list[dict[str, Any]] = []
    for i, msg in enumerate(MESSAGES):
        sender, name = (host, "host") if i % 2 == 0 else (mcu, "mcu")
        wire = sender.send(msg)
        frames.append({"from": name, "payload": encode_message(msg).hex(), "wire": wire.hex()})

    prov_host = FrameCodec(KEY, Role.HOST)
    provision = prov_host.provision(NEW_KEY)
    blank = FrameCodec(None, Role.MCU)
    [_, stored_ack] = blank.receive_data(provision)
    [refused_ack] = FrameCodec(KEY, Role.MCU).receive_data(provision)
    assert isinstance(stored_ack, Transmit) and isinstance(refused_ack, Transmit)

    ping = encode_message(Ping(1))
    good = _seal_data(session_key, 0x00, 1, ping)
    body = bytearray(_unwire(good))
    body[-1] ^= 0x01  # a bit of the tag
    forged_tag = _wire(bytes(body))
    raw = bytearray(cobs.decode(good.strip(b"\x00")))
    raw[-1] ^= 0x01  # a bit of the CRC
    bad_crc = b"\x00" + cobs.encode(bytes(raw)) + b"\x00"
    other_key = FrameCodec(bytes(32), Role.HOST, random=FixedRandom(HOST_RANDOM, HELLO_NONCE))
    from_mcu = _seal_data(session_key, 0x01, 1, ping)
    msg_event = {"event": "message", "payload": ping.hex()}

    receive: list[dict[str, Any]] = [
        {
            "name": "valid DATA frame",
            "to": "mcu",
            "state": "session",
            "wire": good.hex(),
            "expect": [msg_event],
        },
        {
            "name": "frame without a leading delimiter",
            "to": "mcu",
            "state": "session",
            "wire": good[1:].hex(),
            "expect": [msg_event],
        },
        {
            "name": "the same frame twice: the second is a replay",
            "to": "mcu",
            "state": "session",
            "wire": (good + good).hex(),
            "expect": [msg_event, _drop("replayed")],
        },
        {
            "name": "counter 0 is never valid",
            "to": "mcu",
            "state": "session",
            "wire": _seal_data(session_key, 0x00, 0, ping).hex(),
            "expect": [_drop("replayed")],
        },
        {
            "name": "counters may skip (lost frames)",
            "to": "mcu",
            "state": "session",
            "wire": (_seal_data(session_key, 0x00, 5, ping) + good).hex(),
            "expect": [msg_event, _drop("replayed")],
        },
        {
            "name": "a CRC bit flipped",
            "to": "mcu",
            "state": "session",
            "wire": bad_crc.hex(),
            "expect": [_drop("crc_errors")],
        },
        {
            "name": "a tag bit flipped, CRC recomputed (forgery)",
            "to": "mcu",
            "state": "session",
            "wire": forged_tag.hex(),
            "expect": [_drop("auth_failures")],
        },
        {
            "name": "a DATA body shorter than counter and tag",
            "to": "mcu",
            "state": "session",
            "wire": _wire(bytes([0x03, 0x00]) + bytes(20)).hex(),
            "expect": [_drop("truncated")],
        },
        {
            "name": "fewer than 7 decoded bytes",
            "to": "mcu",
            "state": "session",
            "wire": "00" + cobs.encode(b"\x03\x00\x01\x02").hex() + "00",
            "expect": [_drop("truncated")],
        },
        {
            "name": "not COBS (a length code runs past the delimiter)",
            "to": "mcu",
            "state": "session",
            "wire": "0511220000",
            "expect": [_drop("garbage")],
        },
        {
            "name": "600 bytes without a delimiter, then a valid frame",
            "to": "mcu",
            "state": "session",
            "wire": (b"\x55" * 600 + good).hex(),
            "expect": [_drop("garbage"), msg_event],
        },
        {
            "name": "noise before a frame",
            "to": "mcu",
            "state": "session",
            "wire": (b"\x11\x22\x33" + good).hex(),
            "expect": [_drop("garbage"), msg_event],
        },
        {
            "name": "a host frame reflected back to the host",
            "to": "host",
            "state": "session",
            "wire": good.hex(),
            "expect": [_drop("unexpected")],
        },
        {
            "name": "an MCU frame to the host",
            "to": "host",
            "state": "session",
            "wire": from_mcu.hex(),
            "expect": [msg_event],
        },
        {
            "name": "unknown frame type 0x09",
            "to": "mcu",
            "state": "session",
            "wire": _wire(bytes([0x09, 0x00]) + bytes(40)).hex(),
            "expect": [_drop("unexpected")],
        },
        {
            "name": "authentic DATA carrying an unknown message type",
            "to": "mcu",
            "state": "session",
            "wire": _seal_data(session_key, 0x00, 1, b"\x7f").hex(),
            "expect": [_drop("bad_messages")],
        },
        {
            "name": "authentic DATA carrying a short message",
            "to": "mcu",
            "state": "session",
            "wire": _seal_data(session_key, 0x00, 1, ping[:-1]).hex(),
            "expect": [_drop("bad_messages")],
        },
        {
            "name": "DATA before any handshake",
            "to": "mcu",
            "state": "keyed",
            "wire": good.hex(),
            "expect": [_drop("unexpected")],
        },
        {
            "name": "HELLO under another key",
            "to": "mcu",
            "state": "keyed",
            "wire": other_key.start().hex(),
            "expect": [_drop("auth_failures")],
        },
        {
            "name": "HELLO to a blank MCU",
            "to": "mcu",
            "state": "blank",
            "wire": hello.hex(),
            "expect": [_drop("unexpected")],
        },
        {
            "name": "HELLO_ACK nobody asked for",
            "to": "host",
            "state": "session",
            "wire": hello_ack.hex(),
            "expect": [_drop("unexpected")],
        },
        {
            "name": "PROVISION to a blank MCU",
            "to": "mcu",
            "state": "blank",
            "wire": provision.hex(),
            "expect": [
                {"event": "key_provisioned", "key": NEW_KEY.hex()},
                {"event": "transmit", "wire": stored_ack.data.hex()},
            ],
        },
        {
            "name": "PROVISION to an MCU that holds a key",
            "to": "mcu",
            "state": "keyed",
            "wire": provision.hex(),
            "expect": [{"event": "transmit", "wire": refused_ack.data.hex()}],
        },
        {
            "name": "PROVISION_ACK nobody asked for",
            "to": "host",
            "state": "session",
            "wire": stored_ack.data.hex(),
            "expect": [_drop("unexpected")],
        },
        {
            "name": "PROVISION with a short key",
            "to": "mcu",
            "state": "blank",
            "wire": _wire(bytes([0x04, 0x00]) + NEW_KEY[:31]).hex(),
            "expect": [_drop("truncated")],
        },
    ]
    crc_inputs = [b"", b"123456789", b"\x00" * 4, bytes(range(256))]
    cobs_inputs = [b"", b"\x00", b"\x00\x00", b"\x11\x22\x00\x33", bytes(range(1, 255)), bytes(256)]
    return {
        "spec": "docs/mcu-link.md",
        "protocol_version": 1,
        "note": "hex strings; 'wire' is bytes on the UART including the 0x00 delimiters",
        "crc32": [{"data": d.hex(), "crc": f"{zlib.crc32(d):08x}"} for d in crc_inputs],
        "cobs": [{"decoded": d.hex(), "encoded": cobs.encode(d).hex()} for d in cobs_inputs],
        "messages": [_message(m) for m in MESSAGES],
        "bad_payloads": [{"payload": p.hex(), "why": why} for p, why in BAD_PAYLOADS],
        "session": {
            "key": KEY.hex(),
            "host_random": HOST_RANDOM.hex(),
            "hello_nonce": HELLO_NONCE.hex(),
            "mcu_random": MCU_RANDOM.hex(),
            "hello_ack_nonce": HELLO_ACK_NONCE.hex(),
            "hkdf_info": INFO.decode(),
            "session_key": session_key.hex(),
            "hello": hello.hex(),
            "hello_ack": hello_ack.hex(),
            "frames": frames,
        },
        "provision": {
            "new_key": NEW_KEY.hex(),
            "provision": provision.hex(),
            "ack_stored": stored_ack.data.hex(),
            "ack_refused": refused_ack.data.hex(),
        },
        "receive": receive,
    }


def render_json(vectors: dict[str, Any]) -> str:
    return json.dumps(vectors, indent=1) + "\n"


# ------------------------------------------------------------------ C header

_DROPS = {
    "garbage": "ML_DROP_GARBAGE",
    "truncated": "ML_DROP_TRUNCATED",
    "crc_errors": "ML_DROP_CRC",
    "auth_failures": "ML_DROP_AUTH",
    "replayed": "ML_DROP_REPLAYED",
    "bad_messages": "ML_DROP_BAD_MESSAGE",
    "unexpected": "ML_DROP_UNEXPECTED",
}
_EVENTS = {
    "message": "ML_EV_MESSAGE",
    "transmit": "ML_EV_TRANSMIT",
    "key_provisioned": "ML_EV_KEY_PROVISIONED",
}


def _bytes(hexstr: str) -> str:
    data = bytes.fromhex(hexstr)
    if not data:
        return '(const uint8_t *)"", 0'
    escaped = "".join(f"\\x{b:02x}" for b in data)
    return f'(const uint8_t *)"{escaped}", {len(data)}'


def _c_message(m: dict[str, Any]) -> str:
    f = m["fields"]
    nums = [v for v in f.values() if isinstance(v, float)]
    nums += [0.0] * (3 - len(nums))
    flag = next(
        (f[k] for k in ("closed", "locked", "ok", "diode_ok", "tripped", "active") if k in f), 0
    )
    text = f.get("text", "")
    key = f.get("key", "")
    return (
        f"{{ML_MSG_{_snake(m['type']).upper()}, {f.get('seq', 0)}u, "
        f"{{{', '.join(f'{x!r}f' for x in nums)}}}, {int(flag)}, {f.get('code', 0)}, "
        f"{_bytes(key)}, {json.dumps(text)}}}"
    )


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def render_c_header(vectors: dict[str, Any]) -> str:
    """The vectors as C data for `mculink_test.c` (no JSON parser needed on a board)."""
    s = vectors["session"]
    out = [
        "/* Generated by scripts/gen_mcu_vectors.py from the MCU link test vectors",
        " * (hal/mculink/vectors/mculink-v1.json); do not edit. */",
        "#ifndef MCULINK_VECTORS_H",
        "#define MCULINK_VECTORS_H",
        '#include "mculink.h"',
        "",
        "struct crc_vec { const uint8_t *data; size_t len; uint32_t crc; };",
        "static const struct crc_vec CRC_VECTORS[] = {",
    ]
    out += [f"    {{{_bytes(v['data'])}, 0x{v['crc']}u}}," for v in vectors["crc32"]]
    out += [
        "};",
        "struct cobs_vec { const uint8_t *dec; size_t dec_len;",
        "                  const uint8_t *enc; size_t enc_len; };",
        "static const struct cobs_vec COBS_VECTORS[] = {",
    ]
    out += [f"    {{{_bytes(v['decoded'])}, {_bytes(v['encoded'])}}}," for v in vectors["cobs"]]
    out += [
        "};",
        "struct msg_vec {",
        "    uint8_t type; uint32_t seq; float f[3]; uint8_t flag; uint16_t code;",
        "    const uint8_t *key; size_t key_len; const char *text;",
        "    const uint8_t *payload; size_t payload_len;",
        "};",
        "static const struct msg_vec MSG_VECTORS[] = {",
    ]
    for m in vectors["messages"]:
        out.append(f"    {{{_c_message(m)[1:-1]}, {_bytes(m['payload'])}}},")
    out += [
        "};",
        "struct bytes_vec { const uint8_t *data; size_t len; };",
        "static const struct bytes_vec BAD_PAYLOADS[] = {",
    ]
    out += [f"    {{{_bytes(v['payload'])}}}, /* {v['why']} */" for v in vectors["bad_payloads"]]
    out += ["};", ""]
    for name in ("key", "host_random", "hello_nonce", "mcu_random", "hello_ack_nonce"):
        out.append(f"static const uint8_t SESSION_{name.upper()}[] = {{{_arr(s[name])}}};")
    out.append(f"static const uint8_t SESSION_KEY_DERIVED[] = {{{_arr(s['session_key'])}}};")
    out.append(f"static const struct bytes_vec SESSION_HELLO = {{{_bytes(s['hello'])}}};")
    out.append(f"static const struct bytes_vec SESSION_HELLO_ACK = {{{_bytes(s['hello_ack'])}}};")
    out += [
        "struct frame_vec { ml_role from; const uint8_t *payload; size_t payload_len;",
        "                   const uint8_t *wire; size_t wire_len; };",
        "static const struct frame_vec SESSION_FRAMES[] = {",
    ]
    for f in s["frames"]:
        role = "ML_ROLE_HOST" if f["from"] == "host" else "ML_ROLE_MCU"
        out.append(f"    {{{role}, {_bytes(f['payload'])}, {_bytes(f['wire'])}}},")
    p = vectors["provision"]
    out += ["};", ""]
    out.append(f"static const uint8_t PROVISION_NEW_KEY[] = {{{_arr(p['new_key'])}}};")
    for name in ("provision", "ack_stored", "ack_refused"):
        out.append(
            f"static const struct bytes_vec PROVISION_{name.upper()} = {{{_bytes(p[name])}}};"
        )
    out += [
        "",
        "enum rx_state { RX_BLANK, RX_KEYED, RX_SESSION };",
        "struct expect { int kind; const uint8_t *data; size_t len; };",
        "struct rx_vec { const char *name; ml_role to; enum rx_state state;",
        "                const uint8_t *wire; size_t wire_len; size_t n; struct expect e[4]; };",
        "static const struct rx_vec RX_VECTORS[] = {",
    ]
    for v in vectors["receive"]:
        exp = []
        for e in v["expect"]:
            if "drop" in e:
                exp.append(f"{{{_DROPS[e['drop']]}, 0, 0}}")
            else:
                data = e.get("payload") or e.get("wire") or e.get("key") or ""
                exp.append(f"{{{_EVENTS[e['event']]}, {_bytes(data)}}}")
        role = "ML_ROLE_HOST" if v["to"] == "host" else "ML_ROLE_MCU"
        state = {"blank": "RX_BLANK", "keyed": "RX_KEYED", "session": "RX_SESSION"}[v["state"]]
        out.append(
            f"    {{{json.dumps(v['name'])}, {role}, {state}, {_bytes(v['wire'])}, "
            f"{len(exp)}, {{{', '.join(exp)}}}}},"
        )
    out += ["};", "", "#endif", ""]
    return "\n".join(out)


def _arr(hexstr: str) -> str:
    return ", ".join(f"0x{b:02x}" for b in bytes.fromhex(hexstr))


Renderer = Callable[[dict[str, Any]], str]
OUTPUTS: list[tuple[Path, Renderer]] = [(JSON_FILE, render_json), (C_HEADER, render_c_header)]
