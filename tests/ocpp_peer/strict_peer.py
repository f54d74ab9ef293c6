"""Drive the independent strict central system (`peer/csms.js`, npm `ocpp-rpc` in strictMode).

`StrictPeer` runs `node peer/csms.js` as a child process, reads its JSON-lines report (every
frame, every CALL, every schema failure in either direction) and sends it commands: CALLs to
the station, raw frames, the answers to give to Authorize and BootNotification.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["PEER_DIR", "CallFailed", "StrictPeer", "peer_ready"]

PEER_DIR = Path(__file__).resolve().parent / "peer"


def peer_ready() -> str | None:
    """Why the peer cannot run here (None when it can): node and `npm ci` are needed."""
    if shutil.which("node") is None:
        return "node is not installed (scripts/bootstrap.sh --test installs it)"
    if not (PEER_DIR / "node_modules" / "ocpp-rpc").is_dir():
        return f"ocpp-rpc missing: run `npm ci` in {PEER_DIR} (scripts/bootstrap.sh --test does)"
    return None


class CallFailed(Exception):
    """The station answered a CALL with a CALLERROR (or the call failed in the peer)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class StrictPeer:
    """One running `csms.js`; use as `async with StrictPeer() as peer`."""

    def __init__(self, protocol: str = "ocpp1.6", port: int = 0) -> None:
        self.protocol = protocol  # "ocpp2.0.1": the peer validates against the 2.0.1 schemas
        self.events: list[dict[str, Any]] = []
        self.port = 0
        self._listen_port = port  # 0: any free port
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._refs = itertools.count(1)
        self._answers: dict[int, asyncio.Future[dict[str, Any]]] = {}

    async def __aenter__(self) -> StrictPeer:
        self._proc = await asyncio.create_subprocess_exec(
            "node",
            str(PEER_DIR / "csms.js"),
            "--protocol",
            self.protocol,
            "--port",
            str(self._listen_port),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=PEER_DIR,
        )
        self._reader = asyncio.create_task(self._read())
        await self.wait_for(lambda: self.port > 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is not None and proc.stdin is not None:
            proc.stdin.close()
            try:
                async with asyncio.timeout(5):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    @property
    def url(self) -> str:
        """The URL to give the station; it appends its own id (the peer's identity)."""
        return f"ws://127.0.0.1:{self.port}/ocpp"

    # ------------------------------------------------------------ the report

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while line := await self._proc.stdout.readline():
            event = json.loads(line)
            self.events.append(event)
            kind = event.get("event")
            if kind == "listening":
                self.port = int(event["port"])
            elif kind in ("result", "error", "ack") and event.get("ref") in self._answers:
                future = self._answers.pop(event["ref"])
                if not future.done():
                    future.set_result(event)
            self._changed.set()

    async def wait_for(self, predicate: Callable[[], object], within_s: float = 10.0) -> None:
        """Wait until `predicate()` holds, re-checking at every report line."""
        async with asyncio.timeout(within_s):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == kind]

    @property
    def schema_failures(self) -> list[dict[str, Any]]:
        """Every strictValidationFailure the peer reported, in either direction."""
        return self.of("strictValidationFailure")

    def calls(self, action: str) -> list[dict[str, Any]]:
        """The params of every `action` CALL the station sent, in order."""
        return [e["params"] for e in self.of("call") if e["action"] == action]

    def statuses(self, connector_id: int) -> list[str]:
        """The statuses sent for one connector, in order."""
        return [
            p["status"]
            for p in self.calls("StatusNotification")
            if p["connectorId"] == connector_id
        ]

    def last_status(self, connector_id: int) -> str | None:
        seen = self.statuses(connector_id)
        return seen[-1] if seen else None

    def received_frames(self) -> list[Any]:
        """Every frame the station sent, parsed (raw text when it is not JSON)."""
        out: list[Any] = []
        for e in self.of("message"):
            if not e["outbound"]:
                try:
                    out.append(json.loads(e["message"]))
                except ValueError:
                    out.append(e["message"])
        return out

    # ------------------------------------------------------------ commands

    async def _command(self, body: dict[str, Any]) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdin is not None
        ref = next(self._refs)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._answers[ref] = future
        self._proc.stdin.write((json.dumps({**body, "ref": ref}) + "\n").encode())
        await self._proc.stdin.drain()
        async with asyncio.timeout(15):
            return await future

    async def call(self, identity: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send a CALL to the station; its CALLRESULT payload, or `CallFailed`."""
        answer = await self._command(
            {"cmd": "call", "identity": identity, "method": method, "params": params}
        )
        if answer["event"] == "error":
            raise CallFailed(str(answer["code"]), str(answer.get("message", "")))
        result: dict[str, Any] = answer["result"]
        return result

    async def send_raw(self, identity: str, frame: str) -> None:
        """Send one text frame as is (malformed frames)."""
        await self._command({"cmd": "raw", "identity": identity, "frame": frame})

    async def answer_authorize(self, id_tag: str, info: dict[str, Any]) -> None:
        """What Authorize.conf / StartTransaction.conf answer for `id_tag` from now on."""
        await self._command({"cmd": "authorize", "idTag": id_tag, "idTagInfo": info})

    def connected(self, identity: str) -> bool:
        return any(e["identity"] == identity for e in self.of("connected"))
