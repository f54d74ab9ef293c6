"""Storage faults (issue 12): a SQLite write that fails (disk full, read-only, I/O error) loses
no StartTransaction / StopTransaction; they wait in memory, the operator sees the fault once
(log at ERROR, connector 0 StatusNotification OtherError), and when the disk takes writes
again the journal catches up in order (OCPP 1.6 section 4.10). First through a seam on the
connection, then with a real full tmpfs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from ocpp_station_fixture import make_ports, options, until

from chargeport.fake_port import FakePort
from main_node.ocpp.client import OcppSession
from main_node.ocpp.db import open_db
from main_node.view import StationView
from simulation.csms import CentralSystem

WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class FailingDisk:
    """The station's connection with a switch: while `fails(sql)` holds, that statement fails
    the way SQLite fails on a full disk (SQLITE_FULL: OperationalError)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.fails: Callable[[str], bool] | None = None
        self.refused = 0

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        if self.fails is not None and self.fails(sql):
            self.refused += 1
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def full(sql: str) -> bool:
    return sql.lstrip().upper().startswith(WRITES)


@contextlib.asynccontextmanager
async def station(
    conn: Any,
    url: str,
    ports: dict[int, FakePort],
    on_storage_fault: Callable[[str | None], None] | None = None,
) -> AsyncIterator[OcppSession]:
    session = OcppSession(
        options(url, storage_retry_s=0.05), ports, conn, on_storage_fault=on_storage_fault
    )
    task = asyncio.create_task(session.run())
    try:
        yield session
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _charge(ports: dict[int, FakePort], cids: list[int]) -> None:
    for cid in cids:
        await ports[cid].authorize("TAG-OK")
        ports[cid].plug_in()
        ports[cid].meter(1000.0 * cid)
        ports[cid].unplug()
    await asyncio.sleep(0)


def _tx_order(csms: CentralSystem) -> list[tuple[str, int]]:
    return [
        (a, p.get("connector_id") or csms.transactions[p["transaction_id"]].connector_id)
        for a, p in csms.messages
        if a in ("StartTransaction", "StopTransaction")
    ]


async def test_full_disk_keeps_transactions_in_memory_then_catches_up_in_order_ocpp16_4_10(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="main_node.ocpp.client")
    real = open_db(tmp_path / "db.sqlite")
    disk = FailingDisk(real)
    ports = make_ports()
    view = StationView("CP-1", [p.info for p in ports.values()])
    try:
        async with (
            CentralSystem() as csms,
            station(disk, csms.url, ports, view.set_storage_fault) as session,
        ):
            await until(lambda: session.online)
            await csms.wait_for(lambda: len(csms.statuses) >= 5)
            assert view.snapshot()["storage_fault"] is None
            disk.fails = full
            await _charge(ports, [1, 2, 3])
            # Nothing lost, nothing sent out of order: six writes wait in memory, in order.
            assert [w.split()[0] for w in session.backlog.waiting()] == [
                "StartTransaction",
                "StopTransaction",
            ] * 3
            fault = await csms.wait_for(
                lambda: [s for s in csms.statuses if s[0] == 0 and s[2] == "OtherError"]
            )
            assert fault[0][1] == "Available"  # the station still charges; it reports the fault
            errors = [r for r in caplog.records if "storage fault" in r.getMessage()]
            assert len(errors) == 1 and errors[0].levelno == logging.ERROR
            assert csms.actions("StartTransaction") == []
            assert "disk is full" in view.snapshot()["storage_fault"]  # the station status
            # The disk takes writes again: the journal catches up, in order, each message once.
            disk.fails = None
            await csms.wait_for(lambda: len(csms.actions("StopTransaction")) == 3)
            await until(lambda: session.journal.pending_count() == 0)
            assert _tx_order(csms) == [
                ("StartTransaction", 1),
                ("StopTransaction", 1),
                ("StartTransaction", 2),
                ("StopTransaction", 2),
                ("StartTransaction", 3),
                ("StopTransaction", 3),
            ]
            assert sorted(t.meter_stop or 0 for t in csms.transactions.values()) == [
                1000,
                2000,
                3000,
            ]
            await csms.wait_for(lambda: csms.statuses[-1][:3] == (0, "Available", "NoError"))
            assert session.backlog.fault is None
            assert view.snapshot()["storage_fault"] is None
    finally:
        real.close()


async def test_a_delivery_that_cannot_be_marked_is_never_sent_twice(tmp_path: Path) -> None:
    """StartTransaction reached the CSMS but deleting it from the journal fails: it must not go
    out again (a second StartTransaction would open a second transaction at the CSMS)."""
    real = open_db(tmp_path / "db.sqlite")
    disk = FailingDisk(real)
    ports = make_ports()
    try:
        async with CentralSystem() as csms, station(disk, csms.url, ports) as session:
            await until(lambda: session.online)
            disk.fails = lambda sql: "DELETE FROM tx_journal" in sql
            await ports[1].authorize("TAG-OK")
            ports[1].plug_in()
            await csms.wait_for(lambda: csms.actions("StartTransaction"))
            await until(lambda: session.backlog.fault is not None)
            ports[1].meter(4200.0)
            ports[1].unplug()
            # A heartbeat round trip: the sender is live, and still has not repeated the Start.
            assert await csms.trigger("Heartbeat") == "Accepted"
            await csms.wait_for(lambda: csms.actions("Heartbeat"))
            assert len(csms.actions("StartTransaction")) == 1
            disk.fails = None
            stop = await csms.wait_for(lambda: csms.actions("StopTransaction"))
            assert stop[0]["transaction_id"] == next(iter(csms.transactions))
            assert stop[0]["meter_stop"] == 4200
            await until(lambda: session.journal.pending_count() == 0)
            assert len(csms.actions("StartTransaction")) == 1
    finally:
        real.close()


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str) -> Any:
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not root'})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the file system is full; returns it (delete it to free the space)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 16, 1 << 12, 1 << 9, 1):  # smaller and smaller, to the last byte
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
async def test_state_dir_on_a_full_tmpfs_loses_no_transaction_message(tmp_path: Path) -> None:
    """Issue 12's field case: the state dir on a 2 MB tmpfs that fills up."""
    with small_tmpfs(tmp_path / "state", "2m") as state:
        conn = open_db(state / "ocpp.sqlite")
        ports = make_ports()
        try:
            async with CentralSystem() as csms, station(conn, csms.url, ports) as session:
                await until(lambda: session.online)
                await csms.wait_for(lambda: len(csms.statuses) >= 5)
                # The WAL must grow to take a write (a reused WAL needs no new space).
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                filler = fill(state)
                await _charge(ports, [1, 2, 3, 4])
                await until(lambda: session.backlog.fault is not None)
                assert "full" in (session.backlog.fault or "")
                filler.unlink()
                await csms.wait_for(lambda: len(csms.actions("StopTransaction")) == 4)
                await until(lambda: session.journal.pending_count() == 0)
                assert [a for a, _ in _tx_order(csms)] == [
                    "StartTransaction",
                    "StopTransaction",
                ] * 4
                assert len(csms.transactions) == 4
                assert all(t.meter_stop is not None for t in csms.transactions.values())
        finally:
            conn.close()
