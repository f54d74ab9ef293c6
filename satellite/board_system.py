"""This board's BoardSystem: A/B firmware slots, time-stamped rotating logs, clock offset, reset.

Theory of operation (slots)
    state_dir/firmware/{A,B}/ hold payload.bin + manifest.json; state_dir/firmware/state.json
    says which slot is active. `install` streams a signed bundle into the *inactive* slot,
    verifying as it goes (the running slot is never touched). `activate` makes the new slot
    active but *tentative* and restarts; `confirm` makes it permanent; `rollback` goes back to
    the previous slot. A tentative slot that is booted a second time without being confirmed
    rolls back by itself, so a firmware that cannot come up is never kept.
    The transitions are pure functions on `SlotState`; `LocalBoardSystem` does the file I/O.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import logging.handlers
import os
import shutil
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from chargeport.board import (
    BoardInfo,
    FirmwareAction,
    FirmwareProgress,
    FirmwareRejected,
    FirmwareStage,
    LogChunk,
    ResetKind,
)
from chargeport.bundle import (
    BundleError,
    Downgrade,
    InvalidSignature,
    StreamingVerifier,
    load_trusted_keys,
)
from chargeport.clock import Clock, RealClock
from chargeport.security_log import (
    FIRMWARE_DOWNGRADE_REFUSED,
    INVALID_BOARD_TIME,
    security_event,
)
from satellite.errors import SatelliteError

__all__ = [
    "RESTART_EXIT_CODE",
    "BoardLogHandler",
    "LocalBoardSystem",
    "SlotState",
    "check_board_time",
    "read_log_window",
]


# The satellite/main process exits with this code after activate/reset so that its supervisor
# starts it again (into the newly active slot). EX_TEMPFAIL from sysexits.h.
RESTART_EXIT_CODE = 75
SLOTS = ("A", "B")
LOG_CHUNK = 64 * 1024
PROGRESS_EVERY = 4 * 1024 * 1024  # bytes between Receiving progress reports

# A board time outside this window is a broken or hostile peer, not a clock to follow.
EARLIEST_TIME = 1_577_836_800.0  # 2020-01-01T00:00:00Z
LATEST_TIME = 4_102_444_800.0  # 2100-01-01T00:00:00Z

# OCPP 2.0.1 BootReasonEnumType values (the closest standard vocabulary; 1.6 has none).
BOOT_POWER_UP = "PowerUp"
BOOT_FIRMWARE = "FirmwareUpdate"
BOOT_REMOTE_RESET = "RemoteReset"


@dataclass(frozen=True)
class SlotState:
    """The persisted slot table; every method returns the next state (no I/O)."""

    active: str = "A"
    versions: dict[str, str] = field(default_factory=dict)  # slot -> installed version
    staged: bool = False  # the inactive slot holds a verified image awaiting activate
    tentative: bool = False
    tentative_boots: int = 0
    previous: str = ""
    pending_boot_reason: str = ""
    boot_reason: str = BOOT_POWER_UP
    boot_id: str = ""

    @property
    def inactive(self) -> str:
        return SLOTS[1 - SLOTS.index(self.active)]

    def version(self, default: str) -> str:
        """The running version: the active slot's, or the factory `default` when empty."""
        return self.versions.get(self.active, default)

    def install_started(self) -> SlotState:
        """The inactive slot is about to be overwritten: it no longer holds a valid image."""
        if self.tentative:
            raise FirmwareRejected(FirmwareStage.FAILED, "confirm or roll back first")
        versions = {k: v for k, v in self.versions.items() if k != self.inactive}
        return dataclasses.replace(self, versions=versions, staged=False)

    def install_done(self, version: str) -> SlotState:
        return dataclasses.replace(
            self, versions={**self.versions, self.inactive: version}, staged=True
        )

    def activate(self) -> SlotState:
        if not self.staged:
            raise FirmwareRejected(FirmwareStage.FAILED, "no verified firmware is staged")
        return dataclasses.replace(
            self,
            active=self.inactive,
            previous=self.active,
            staged=False,
            tentative=True,
            tentative_boots=0,
            pending_boot_reason=BOOT_FIRMWARE,
        )

    def confirm(self) -> SlotState:
        if not self.tentative:
            raise FirmwareRejected(FirmwareStage.FAILED, "nothing to confirm")
        return dataclasses.replace(self, tentative=False, tentative_boots=0)

    def rollback(self) -> tuple[SlotState, bool]:
        """Back to the previous slot; returns (state, whether a restart is needed)."""
        if self.tentative:
            back = dataclasses.replace(
                self,
                active=self.previous if self.previous in SLOTS else self.inactive,
                previous="",
                tentative=False,
                tentative_boots=0,
                pending_boot_reason=BOOT_FIRMWARE,
            )
            return back, True
        # Installed but never activated: just forget the staged image.
        return dataclasses.replace(self, staged=False), False

    def boot(self, boot_id: str) -> SlotState:
        """A (re)start; a tentative slot gets exactly one boot to be confirmed."""
        state = self
        if state.tentative and state.tentative_boots >= 1:
            state, _ = state.rollback()
        elif state.tentative:
            state = dataclasses.replace(state, tentative_boots=state.tentative_boots + 1)
        reason = state.pending_boot_reason or BOOT_POWER_UP
        return dataclasses.replace(
            state, boot_reason=reason, pending_boot_reason="", boot_id=boot_id
        )


def check_board_time(unix_time: float) -> None:
    """`ValueError` (one line) unless `unix_time` is finite and within 2020..2100."""
    if not isinstance(unix_time, (int, float)) or not EARLIEST_TIME <= unix_time < LATEST_TIME:
        # NaN fails both comparisons, +-inf and 1e18 fail one: all refused here.
        raise ValueError(
            f"board time {unix_time!r} refused: must be unix seconds between 2020 and 2100"
        )


class BoardLogHandler(logging.handlers.RotatingFileHandler):
    """Rotating log files whose every line starts with the board-clock unix time."""

    def __init__(
        self,
        log_dir: Path,
        offset: Callable[[], float] = lambda: 0.0,
        max_bytes: int = 1024 * 1024,
        backups: int = 5,
    ) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(log_dir / "board.log", maxBytes=max_bytes, backupCount=backups)
        self._offset = offset

    def format(self, record: logging.LogRecord) -> str:
        t = record.created + self._offset()
        text = f"{record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        # Continuation lines are indented so they stay with their time-stamped first line.
        return f"{t:.3f} " + text.replace("\n", "\n    ")


def _line_time(line: bytes) -> float | None:
    head = line.split(b" ", 1)[0]
    try:
        return float(head)
    except ValueError:
        return None  # a continuation line: belongs to the record above


def read_log_window(
    log_dir: Path, start: float | None, stop: float | None
) -> Iterator[tuple[str, bytes]]:
    """Yield (file name, block) of the log lines inside [start, stop], oldest file first."""
    files = sorted(
        (p for p in log_dir.glob("board.log*") if p.is_file()),
        key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0,
    )
    for path in files:
        keep = False
        block = bytearray()
        try:
            f = path.open("rb")
        except OSError:
            continue  # rotated away while we looked
        with f:
            for line in f:
                t = _line_time(line)
                if t is not None:
                    keep = (start is None or t >= start) and (stop is None or t <= stop)
                if keep:
                    block += line
                    if len(block) >= LOG_CHUNK:
                        yield path.name, bytes(block)
                        block.clear()
        if block:
            yield path.name, bytes(block)


class LocalBoardSystem:
    """The BoardSystem of the board this process runs on."""

    def __init__(
        self,
        serial: str,
        role: str,
        state_dir: str | Path,
        trusted_keys: Sequence[Ed25519PublicKey | str | Path],
        target: str,
        *,
        version: str = "0.0.0",
        clock: Clock | None = None,
        on_restart: Callable[[], Awaitable[None]] | None = None,
        new_boot_id: Callable[[], str] = lambda: uuid.uuid4().hex,
        boot: bool = True,
    ) -> None:
        self.serial = serial
        self.role = role
        # Named after the role, not this module: the main's firmware lines were logged as
        # "satellite.board_system", which sent operators to the wrong board.
        self._log = logging.getLogger(f"{'main_node' if role == 'main' else 'satellite'}.board")
        self._dir = Path(state_dir)
        self._fw = self._dir / "firmware"
        self._log_dir = self._dir / "logs"
        self._keys = load_trusted_keys(trusted_keys)
        self._target = target
        self._default_version = version
        self._clock: Clock = clock or RealClock()
        self._on_restart = on_restart
        self._new_boot_id = new_boot_id
        self._offset = 0.0
        self._lock = asyncio.Lock()
        self._state = self._load()
        if boot:
            self._set_state(self._state.boot(new_boot_id()))

    # ------------------------------------------------------------------ state file

    @property
    def state(self) -> SlotState:
        return self._state

    @property
    def firmware_version(self) -> str:
        """The version running from the active slot (the configured one before any install)."""
        return self._state.version(self._default_version)

    @property
    def log_dir(self) -> Path:
        return self._log_dir

    def _load(self) -> SlotState:
        path = self._fw / "state.json"
        try:
            raw = json.loads(path.read_text())
            return SlotState(**raw)
        except FileNotFoundError:
            return SlotState()
        except (ValueError, TypeError) as exc:
            # A damaged state file must not brick the board: boot the factory slot A.
            self._log.error("firmware state %s unreadable (%s); starting from slot A", path, exc)
            return SlotState()

    def _set_state(self, state: SlotState) -> None:
        self._fw.mkdir(parents=True, exist_ok=True)
        tmp = self._fw / "state.json.tmp"
        tmp.write_text(json.dumps(dataclasses.asdict(state), indent=1))
        os.replace(tmp, self._fw / "state.json")  # atomic: a power cut leaves old or new
        self._state = state

    def make_log_handler(self) -> BoardLogHandler:
        """A handler writing this board's logs; the owner attaches it and closes it."""
        return BoardLogHandler(self._log_dir, offset=lambda: self._offset)

    # ------------------------------------------------------------------ BoardSystem

    def now(self) -> float:
        """The board clock (host clock plus the offset set by `set_time`)."""
        return self._clock.time() + self._offset

    async def info(self) -> BoardInfo:
        return BoardInfo(
            serial=self.serial,
            role=self.role,
            firmware_version=self.firmware_version,
            boot_id=self._state.boot_id,
            boot_reason=self._state.boot_reason,
            active_slot=self._state.active,
            time=self.now(),
        )

    async def install_firmware(
        self, bundle: AsyncIterable[bytes], total_size: int
    ) -> AsyncIterator[FirmwareProgress]:
        """Verify while writing into the inactive slot; memory stays at two chunks."""
        if self._lock.locked():
            raise FirmwareRejected(FirmwareStage.FAILED, "another installation is running")
        async with self._lock:
            self._set_state(self._state.install_started())
            slot = self._fw / self._state.inactive
            shutil.rmtree(slot, ignore_errors=True)
            slot.mkdir(parents=True)
            part = slot / "payload.part"
            # Anti-rollback: the board compares against what it runs, whatever the main says.
            verifier = StreamingVerifier(self._keys, self._target, self.firmware_version)
            reported = 0
            loop = asyncio.get_running_loop()
            # Hashing and writing run on a worker thread (hashlib and file writes release the
            # GIL) while the loop receives the next chunk: at most one chunk in flight.
            busy: asyncio.Future[None] | None = None

            def absorb(chunk: bytes, out: BinaryIO) -> None:
                out.write(verifier.feed(chunk))

            try:
                with part.open("wb") as out:
                    try:
                        async for chunk in bundle:
                            if busy is not None:
                                await busy
                            busy = loop.run_in_executor(None, absorb, chunk, out)
                            if verifier.received - reported >= PROGRESS_EVERY:
                                reported = verifier.received
                                yield FirmwareProgress(
                                    FirmwareStage.RECEIVING, reported, total_size
                                )
                        if busy is not None:
                            await busy
                    finally:
                        if busy is not None:
                            # Never close the file under the thread; a failure already raised
                            # (or superseded by cancellation) is collected, not re-raised.
                            await asyncio.wait([busy])
                            if not busy.cancelled():
                                busy.exception()
                yield FirmwareProgress(FirmwareStage.VERIFYING, verifier.received, total_size)
                manifest = verifier.finish()
                if total_size and verifier.received != total_size:
                    raise BoardBundleSize(verifier.received, total_size)
            except InvalidSignature as exc:
                shutil.rmtree(slot, ignore_errors=True)
                raise FirmwareRejected(FirmwareStage.INVALID_SIGNATURE, str(exc)) from None
            except Downgrade as exc:
                shutil.rmtree(slot, ignore_errors=True)
                security_event(FIRMWARE_DOWNGRADE_REFUSED, f"board {self.serial}: {exc}")
                raise FirmwareRejected(FirmwareStage.FAILED, str(exc)) from None
            except (BundleError, OSError) as exc:
                shutil.rmtree(slot, ignore_errors=True)
                raise FirmwareRejected(FirmwareStage.FAILED, str(exc)) from None
            except BaseException:
                shutil.rmtree(slot, ignore_errors=True)  # cancelled mid-stream: slot is junk
                raise
            yield FirmwareProgress(
                FirmwareStage.INSTALLING, verifier.received, total_size, manifest.version
            )
            os.replace(part, slot / "payload.bin")
            (slot / "manifest.json").write_bytes(manifest.to_bytes())
            self._set_state(self._state.install_done(manifest.version))
            self._log.info("firmware %s installed in slot %s", manifest.version, slot.name)
            yield FirmwareProgress(
                FirmwareStage.INSTALLED, verifier.received, total_size, manifest.version
            )

    async def firmware_control(self, action: FirmwareAction) -> FirmwareProgress:
        if self._lock.locked():
            raise FirmwareRejected(FirmwareStage.FAILED, "an installation is running")
        if action is FirmwareAction.ACTIVATE:
            self._set_state(self._state.activate())
            self._log.info("activating slot %s (tentative)", self._state.active)
            await self._restart()
            return FirmwareProgress(FirmwareStage.ACTIVATED, version=self.firmware_version)
        if action is FirmwareAction.CONFIRM:
            self._set_state(self._state.confirm())
            self._log.info("firmware %s confirmed", self.firmware_version)
            return FirmwareProgress(FirmwareStage.CONFIRMED, version=self.firmware_version)
        state, restart = self._state.rollback()
        self._set_state(state)
        self._log.warning("firmware rolled back to slot %s", state.active)
        if restart:
            await self._restart()
        return FirmwareProgress(FirmwareStage.ROLLED_BACK, version=self.firmware_version)

    async def fetch_logs(self, start: float | None, stop: float | None) -> AsyncIterator[LogChunk]:
        """Stream the log lines of the window; each file's last chunk is flagged."""
        blocks = read_log_window(self._log_dir, start, stop)
        pending: tuple[str, bytes] | None = None
        while True:
            item = await asyncio.to_thread(next, blocks, None)
            if pending is not None:
                ends = item is None or item[0] != pending[0]
                yield LogChunk(pending[0], pending[1], ends)
            if item is None:
                return
            pending = item

    async def reset(self, kind: ResetKind) -> None:
        self._log.warning("%s reset requested", kind.value)
        self._set_state(dataclasses.replace(self._state, pending_boot_reason=BOOT_REMOTE_RESET))
        await self._restart()

    async def set_time(self, unix_time: float) -> float:
        """Board-local offset only: the host clock is never changed (sim and tests share it).
        `ValueError` for a time that is not finite or outside 2020..2100."""
        try:
            check_board_time(unix_time)
        except ValueError as exc:
            security_event(INVALID_BOARD_TIME, f"board {self.serial}: {exc}")
            raise
        before = self.now() - unix_time
        self._offset = unix_time - self._clock.time()
        return before

    async def _restart(self) -> None:
        if self._on_restart is not None:
            await self._on_restart()
            return
        # No supervisor (sim, tests): reboot in place with a new boot id.
        self._set_state(self._state.boot(self._new_boot_id()))


class BoardBundleSize(SatelliteError, BundleError):
    """The stream's length differs from the size announced for it."""

    def __init__(self, received: int, announced: int) -> None:
        super().__init__(f"received {received} bytes but {announced} were announced")
