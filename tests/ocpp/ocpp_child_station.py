"""The main's OCPP session alone in a process, for the kill -9 test (not a test module).

`python ocpp_child_station.py DB URL` runs an `OcppSession` on FakePorts against URL with its
journal in DB. It prints `pending N` at start, `online` / `offline` as the CSMS connection
comes and goes, and answers stdin lines:

    start C WH   authorize TAG-OK on connector C, meter WH, plug in (a transaction starts)
    stop C WH    meter WH, unplug (the transaction stops)
    pending      print `pending N` (journal entries not yet delivered)

`start` and `stop` answer `pending N` once the message is journaled. EOF ends the process.
"""

from __future__ import annotations

import asyncio
import sys

from ocpp_station_fixture import make_ports, options
from waiting import until

from main_node.ocpp.client import OcppSession
from main_node.ocpp.db import open_db

__all__: list[str] = []


def _say(text: str) -> None:
    print(text, flush=True)


async def _lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def _main(db: str, url: str) -> None:
    ports = make_ports()
    conn = open_db(db)
    session = OcppSession(
        # No sampled MeterValues: the test counts Start/Stop exactly.
        options(url, meter_value_sample_interval_s=0),
        ports,
        conn,
        on_connection=lambda up: _say("online" if up else "offline"),
    )
    _say(f"pending {session.journal.pending_count()}")
    reader = await _lines()
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(session.run())
        while line := (await reader.readline()).decode():
            words = line.split()
            if words[0] == "start":
                cid, wh = int(words[1]), float(words[2])
                await ports[cid].authorize("TAG-OK")
                ports[cid].meter(wh)
                ports[cid].plug_in()
                await until(lambda c=cid: c in session.active_tx)
            elif words[0] == "stop":
                cid, wh = int(words[1]), float(words[2])
                ports[cid].meter(wh)
                ports[cid].unplug()
                await until(lambda c=cid: c not in session.active_tx)
            _say(f"pending {session.journal.pending_count()}")
        task.cancel()
    conn.close()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], sys.argv[2]))
