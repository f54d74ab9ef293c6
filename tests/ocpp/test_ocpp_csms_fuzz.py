"""Fuzz of the CSMS -> station direction (issue 12): frames drawn from the OCPP 1.6 schemas,
valid-shaped with absurd values and broken in every layer, sent raw by a real central system.
The session never drops, and every CALL (a frame that starts [2,"<id>") gets exactly one
answer (OCPP-J 1.6 sections 4.1.3, 4.2.3)."""

from __future__ import annotations

import asyncio
import collections
import os
import re
import tempfile
from pathlib import Path

from csms_frames import frames
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ocpp_station_fixture import running_station, until

from simulation.csms import CentralSystem

FRAMES_PER_EXAMPLE = 25
# 300 frames by default; CHARGEPORT_FUZZ_EXAMPLES=400 sends 10,000.
EXAMPLES = int(os.environ.get("CHARGEPORT_FUZZ_EXAMPLES", "12"))
CLEAN = os.environ.get("CHARGEPORT_FUZZ_CLEAN") == "1"

CALL_ID = re.compile(r'\s*\[\s*2\s*,\s*"(f\d+)"')


async def _exchange(batch: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            CentralSystem() as csms,
            running_station(Path(tmp) / "db.sqlite", csms.url) as st_,
        ):
            await until(lambda: st_.session.online)
            conn = await csms.connection()
            expected = set()
            for frame in batch:
                head = CALL_ID.match(frame)
                if head:
                    expected.add(head.group(1))
                await conn.ws.send(frame)

            def answered() -> collections.Counter[str]:
                return collections.Counter(
                    uid for kind, uid in csms.frames if kind in ("CALLRESULT", "CALLERROR")
                )

            await until(lambda: expected <= set(answered()), within_s=20.0)
            # One more round trip: any duplicate answer would have arrived before it.
            assert await csms.change_configuration("HeartbeatInterval", "300") == "Accepted"
            counts = answered()
            twice = {uid: n for uid, n in counts.items() if uid.startswith("f") and n > 1}
            assert not twice, f"answered more than once: {twice}"
            assert csms.connects == 1, "the session dropped its connection"
            assert st_.session.online


@st.composite
def batches(draw: st.DrawFn) -> list[str]:
    if CLEAN:  # bench/csms_fuzz.py's baseline: the same sessions, well-formed CALLs only
        return [f'[2,"f{n}","GetConfiguration",{{}}]' for n in range(FRAMES_PER_EXAMPLE)]
    return [draw(frames(f"f{n}")) for n in range(FRAMES_PER_EXAMPLE)]


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(batch=batches())
def test_fuzzed_csms_frames_never_drop_the_session_and_each_call_gets_one_answer(
    batch: list[str],
) -> None:
    asyncio.run(_exchange(batch))
