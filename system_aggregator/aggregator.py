"""The station as one system: firmware rollout, diagnostics, reset and time over N boards.

Firmware (OCPP 1.6 §5.19 UpdateFirmware, §4.5 FirmwareStatusNotification)
    1. wait for retrieveDate, download the bundle ONCE to a temp file (with retries),
       verify it (signature, target, size, sha256) — Downloading, then Downloaded;
    2. Installing: stream it from disk to every board concurrently (the slowest board paces the
       reader, so memory stays at a few chunks); each board verifies again into its inactive slot;
    3. activate the satellites, wait until each is back with a new boot id running the new
       version, then activate the local board (which may restart this process: a pending file
       lets `resume_pending_firmware` finish the job after the restart);
    4. confirm every board — Installed. Any failure after step 2 started rolls *every* board back,
       so the station ends on one version everywhere.

Diagnostics (OCPP 1.6 §5.9 GetDiagnostics): see system_aggregator/diagnostics.py; uploaded with
retries, statuses Uploading then Uploaded | UploadFailed, each once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from chargeport.board import (
    BoardError,
    BoardInfo,
    BoardSystem,
    FirmwareAction,
    FirmwareRejected,
    FirmwareStage,
    ResetKind,
)
from chargeport.bundle import (
    BundleError,
    Downgrade,
    InvalidSignature,
    Manifest,
    WrongTarget,
    load_trusted_keys,
    verify_file,
)
from chargeport.clock import Clock, RealClock
from chargeport.security_log import (
    FIRMWARE_DOWNGRADE_REFUSED,
    INVALID_TRANSFER_LOCATION,
    security_event,
)
from chargeport.tasks import OwnedTasks
from system_aggregator.api import StatusCallback
from system_aggregator.diagnostics import archive_name, board_serial, collect_archive
from system_aggregator.errors import AggregatorError
from system_aggregator.transfer import (
    TransferError,
    TransferRefused,
    check_location,
    download,
    upload,
)

__all__ = [
    "OnceReporter",
    "RolloutFailed",
    "SystemAggregator",
    "download_status",
    "drifted",
    "install_status",
]

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]
CHUNK = 1024 * 1024  # fewer, larger gRPC messages: per-message cost dominates (bench/firmware.py)
QUEUE_DEPTH = 4  # chunks queued per board; chunks are shared: about 4 MiB (bench: ~15 MiB peak)
PENDING_FILE = "firmware-pending.json"
TERMINAL = {
    "Installed", "DownloadFailed", "InstallationFailed", "InvalidSignature", "Uploaded",
    "UploadFailed",
}  # fmt: skip


class RolloutFailed(AggregatorError):
    """The rollout failed and every board was sent back; `status` is the OCPP status."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


def download_status(exc: Exception) -> str:
    """OCPP FirmwareStatus for a failed download/verify: a refused signature is
    InvalidSignature (OCPP 1.6 security whitepaper), a bundle for another board type or older
    than the installed firmware is InstallationFailed (it downloaded fine but must not be
    installed), the rest DownloadFailed."""
    if isinstance(exc, InvalidSignature):
        return "InvalidSignature"
    if isinstance(exc, (WrongTarget, Downgrade)):
        return "InstallationFailed"
    return "DownloadFailed"


def install_status(errors: Sequence[BaseException]) -> str:
    """A board refusing the signature wins; any other board failure is InstallationFailed."""
    for exc in errors:
        if isinstance(exc, FirmwareRejected) and exc.stage is FirmwareStage.INVALID_SIGNATURE:
            return "InvalidSignature"
    return "InstallationFailed"


def drifted(offsets: dict[str, float], threshold_s: float) -> list[str]:
    """Serials whose clock was off by more than `threshold_s` before setting."""
    return sorted(
        s for s, off in offsets.items() if not math.isfinite(off) or abs(off) > threshold_s
    )


def _location_allowed(location: str, what: str) -> bool:
    """False, with one security-event log line, for a location the CSMS must not use."""
    try:
        check_location(location)
    except TransferRefused as exc:
        security_event(INVALID_TRANSFER_LOCATION, f"{what} refused: {exc}")
        return False
    return True


class OnceReporter:
    """Forwards each status at most once and nothing after a terminal one (no flood)."""

    def __init__(self, callback: StatusCallback) -> None:
        self._callback = callback
        self.sent: list[str] = []

    async def __call__(self, status: str) -> None:
        if status in self.sent or (self.sent and self.sent[-1] in TERMINAL):
            return
        self.sent.append(status)
        try:
            await self._callback(status)
        except Exception:  # the CSMS link is main_node's: a failed notify must not stop us
            log.exception("status callback failed for %s", status)


class SystemAggregator:
    """The station's StationSystem over the local board and the satellites."""

    def __init__(
        self,
        local: BoardSystem,
        satellites: Sequence[BoardSystem],
        *,
        trusted_keys: Sequence[Ed25519PublicKey | str | Path],
        target: str,
        work_dir: str | Path,
        station_id: str = "station",
        clock: Clock | None = None,
        stop_transactions: Callable[[], Awaitable[None]] | None = None,
        drift_threshold_s: float = 2.0,
        restart_timeout_s: float = 120.0,
        poll_s: float = 0.5,
        board_timeout_s: float = 120.0,
    ) -> None:
        self.local = local
        self.satellites = list(satellites)
        self._keys = load_trusted_keys(trusted_keys)
        self._target = target
        self._work = Path(work_dir)
        self._station = station_id
        self._clock: Clock = clock or RealClock()
        self._stop_transactions = stop_transactions
        self.drift_threshold_s = drift_threshold_s
        self._restart_timeout = restart_timeout_s
        self._poll = poll_s
        self._board_timeout = board_timeout_s
        self._fw_lock = asyncio.Lock()
        self._tasks = OwnedTasks(log)
        self.last_drift: list[str] = []

    @property
    def boards(self) -> list[BoardSystem]:
        """Satellites first, the local board last (it may restart this process)."""
        return [*self.satellites, self.local]

    async def aclose(self) -> None:
        """Cancel and await background diagnostics uploads."""
        await self._tasks.cancel_all()

    # ------------------------------------------------------------------ firmware

    async def update_firmware(
        self,
        location: str,
        retrieve_date: float,
        retries: int,
        retry_interval_s: float,
        on_status: StatusCallback,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        """UpdateFirmware end to end; statuses go to `on_status`, each once."""
        report = OnceReporter(on_status)
        if not _location_allowed(location, "firmware download"):
            await report("DownloadFailed")  # before any I/O, and without waiting for the date
            return
        async with self._fw_lock:
            await self._clock.sleep(retrieve_date - self._clock.time())
            await report("Downloading")
            self._work.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=self._work, prefix="fw-") as tmp:
                bundle = Path(tmp) / "bundle"
                try:
                    installed = (await self.local.info()).firmware_version
                    manifest = await self._download_verified(
                        location, bundle, retries, retry_interval_s, installed
                    )
                except (BundleError, TransferError, BoardError) as exc:
                    if isinstance(exc, Downgrade):
                        security_event(FIRMWARE_DOWNGRADE_REFUSED, f"station: {exc}")
                    log.error("firmware download refused: %s", exc)
                    await report(download_status(exc))
                    return
                await report("Downloaded")
                await report("Installing")
                try:
                    await self.rollout(bundle, manifest, on_progress)
                except RolloutFailed as exc:
                    log.error("firmware rollout failed: %s", exc)
                    await report(exc.status)
                    return
            await report("Installed")

    async def _download_verified(
        self, location: str, dest: Path, retries: int, retry_interval_s: float, installed: str
    ) -> Manifest:
        # OCPP 1.6 §6.49: retries = how many times to try before giving up.
        attempts = max(1, retries)
        for attempt in range(1, attempts + 1):
            try:
                await download(location, dest)
                return await asyncio.to_thread(
                    verify_file, dest, self._keys, self._target, installed
                )
            except (InvalidSignature, WrongTarget, Downgrade, TransferRefused):
                raise  # the same bytes (or the same location) will be refused again
            except (BundleError, TransferError) as exc:
                if attempt == attempts:
                    raise
                log.warning("firmware download attempt %d failed: %s", attempt, exc)
                await self._clock.sleep(retry_interval_s)
        raise AssertionError("unreachable")

    async def rollout(
        self, bundle: Path, manifest: Manifest, on_progress: ProgressCallback | None = None
    ) -> None:
        """Install, activate and confirm `bundle` on every board, or roll every board back."""
        boards = self.boards
        try:
            before = await asyncio.gather(*(b.info() for b in boards))
        except BoardError as exc:
            raise RolloutFailed("InstallationFailed", f"a board is unreachable: {exc}") from None
        try:
            await self._stream_all(boards, bundle, on_progress)
        except* BoardError as group:
            await self._rollback_all(boards, before, [])
            errors = list(group.exceptions)
            raise RolloutFailed(install_status(errors), str(errors[0])) from None
        activated: list[BoardSystem] = []
        try:
            for board, info in zip(self.satellites, before, strict=False):
                activated.append(board)
                await board.firmware_control(FirmwareAction.ACTIVATE)
                await self._await_running(board, info, manifest.version)
            self._write_pending(manifest.version, before)
            activated.append(self.local)
            await self.local.firmware_control(FirmwareAction.ACTIVATE)
            # Only reached when the local restart is simulated (no supervisor restart).
            await self._await_running(self.local, before[-1], manifest.version)
            await self._confirm_all(boards)
        except BoardError as exc:
            await self._rollback_all(boards, before, activated)
            self._clear_pending()
            raise RolloutFailed("InstallationFailed", str(exc)) from None
        # No `finally`: when the local activation stops this process, the task is cancelled
        # and the pending file must survive for `resume_pending_firmware` after the restart.
        self._clear_pending()
        log.info("firmware %s running and confirmed on %d boards", manifest.version, len(boards))

    async def resume_pending_firmware(self, on_status: StatusCallback) -> None:
        """After this board restarted into new firmware mid-rollout: confirm or roll back all."""
        path = self._work / PENDING_FILE
        try:
            pending = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        report = OnceReporter(on_status)
        version = str(pending["version"])
        try:
            info = await self.local.info()
            if info.firmware_version != version:
                raise BoardError(f"this board came back on {info.firmware_version}")
            for i, board in enumerate(self.satellites):
                found = await self._await_reachable(board)
                if found.firmware_version != version:
                    raise BoardError(
                        f"board {board_serial(board, i)} runs {found.firmware_version}, "
                        f"not {version}"
                    )
            await self._confirm_all(self.boards)
        except BoardError as exc:
            log.error("firmware %s not confirmed after restart: %s", version, exc)
            await asyncio.gather(
                *(b.firmware_control(FirmwareAction.ROLLBACK) for b in self.boards),
                return_exceptions=True,
            )
            self._clear_pending()
            await report("InstallationFailed")
            return
        self._clear_pending()
        await report("Installed")

    async def _stream_all(
        self,
        boards: Sequence[BoardSystem],
        bundle: Path,
        on_progress: ProgressCallback | None,
    ) -> None:
        total = (await asyncio.to_thread(bundle.stat)).st_size
        queues = [asyncio.Queue[bytes | None](QUEUE_DEPTH) for _ in boards]
        sent = [0] * len(boards)
        last_pct = -1

        async def chunks(i: int) -> AsyncIterator[bytes]:
            nonlocal last_pct
            while (chunk := await queues[i].get()) is not None:
                sent[i] += len(chunk)
                yield chunk
                pct = min(sent) * 100 // max(total, 1)
                if pct != last_pct:
                    last_pct = pct
                    if on_progress is not None:
                        on_progress(min(sent), total)

        async def feed() -> None:
            with bundle.open("rb") as f:
                while chunk := await asyncio.to_thread(f.read, CHUNK):
                    for q in queues:
                        await q.put(chunk)
            for q in queues:
                await q.put(None)

        async def install(i: int, board: BoardSystem) -> None:
            last = None
            async for progress in board.install_firmware(chunks(i), total):
                last = progress
            if last is None or last.stage is not FirmwareStage.INSTALLED:
                raise BoardError(f"board {board_serial(board, i)} did not finish installing")

        async with asyncio.TaskGroup() as tg:
            tg.create_task(feed())
            for i, board in enumerate(boards):
                tg.create_task(install(i, board))

    async def _await_reachable(self, board: BoardSystem) -> BoardInfo:
        """Poll until the board answers: after this process restarted, satellites are found
        again (mDNS) only some time after start-up."""
        deadline = self._clock.monotonic() + self._restart_timeout
        while True:
            try:
                return await board.info()
            except BoardError:
                if self._clock.monotonic() > deadline:
                    raise
            await self._clock.sleep(self._poll)

    async def _await_running(self, board: BoardSystem, before: BoardInfo, version: str) -> None:
        """Poll until the board is back with a new boot id; it must run `version`.

        A board whose service manager does not restart it would be waited for in silence:
        say what is awaited every few seconds, and at the deadline fail with the reason."""
        start = self._clock.monotonic()
        deadline = start + self._restart_timeout
        every = min(10.0, self._restart_timeout / 4)
        next_note = start + every
        why = "no answer yet"
        while True:
            try:
                info = await board.info()
            except BoardError as exc:
                why = f"unreachable: {exc}"
            else:
                if info.boot_id != before.boot_id:
                    if info.firmware_version != version:
                        raise BoardError(
                            f"board {info.serial} restarted on {info.firmware_version}, "
                            f"not {version}"
                        )
                    return
                why = "still running its old boot"
            now = self._clock.monotonic()
            if now > deadline:
                raise BoardError(
                    f"board {before.serial} did not restart into {version} within "
                    f"{self._restart_timeout:g} s ({why}); check that its service manager "
                    "(systemd) restarts it after exit 75"
                )
            if now >= next_note:
                log.warning(
                    "waiting for %s to restart into %s (%.0f s of %.0f s; %s)",
                    before.serial,
                    version,
                    now - start,
                    self._restart_timeout,
                    why,
                )
                next_note += every
            await self._clock.sleep(self._poll)

    async def _confirm_all(self, boards: Sequence[BoardSystem]) -> None:
        for board in boards:
            await board.firmware_control(FirmwareAction.CONFIRM)

    async def _rollback_all(
        self,
        boards: Sequence[BoardSystem],
        before: Sequence[BoardInfo],
        activated: Sequence[BoardSystem],
    ) -> None:
        """Every board back on the slot it ran before; best effort, each board separately."""
        results = await asyncio.gather(
            *(b.firmware_control(FirmwareAction.ROLLBACK) for b in boards), return_exceptions=True
        )
        for board, info, result in zip(boards, before, results, strict=True):
            if isinstance(result, BaseException):
                log.error("rollback on %s failed: %s", info.serial, result)
            elif any(board is a for a in activated):
                # It restarts into its old slot: wait so the station really ends on one version.
                try:
                    await self._await_running(board, info, info.firmware_version)
                except BoardError as exc:
                    log.error("board %s after rollback: %s", info.serial, exc)

    def _write_pending(self, version: str, before: Sequence[BoardInfo]) -> None:
        data = {"version": version, "previous": {i.serial: i.firmware_version for i in before}}
        self._work.mkdir(parents=True, exist_ok=True)
        (self._work / PENDING_FILE).write_text(json.dumps(data))

    def _clear_pending(self) -> None:
        (self._work / PENDING_FILE).unlink(missing_ok=True)

    # ------------------------------------------------------------------ diagnostics

    async def get_diagnostics(
        self,
        location: str,
        start: float | None,
        stop: float | None,
        retries: int,
        retry_interval_s: float,
        on_status: StatusCallback,
    ) -> str:
        """Start collecting + uploading in the background; returns the file name at once."""
        name = archive_name(self._station, self._clock.time())
        self._tasks.spawn(
            self._diagnostics(name, location, start, stop, retries, retry_interval_s, on_status),
            f"diagnostics-{name}",
        )
        return name

    async def wait_idle(self) -> None:
        """Wait for background diagnostics uploads to finish (tests, shutdown)."""
        await self._tasks.wait()

    async def collect_diagnostics(
        self, out: Path, start: float | None, stop: float | None
    ) -> dict[str, Any]:
        """Build the archive at `out`; returns its manifest."""
        self._work.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self._work, prefix="diag-") as tmp:
            return await collect_archive(
                self.boards, out, station=self._station, created=self._clock.time(),
                start=start, stop=stop, staging=Path(tmp), timeout_s=self._board_timeout,
            )  # fmt: skip

    async def _diagnostics(
        self,
        name: str,
        location: str,
        start: float | None,
        stop: float | None,
        retries: int,
        retry_interval_s: float,
        on_status: StatusCallback,
    ) -> None:
        report = OnceReporter(on_status)
        if not _location_allowed(location, "diagnostics upload"):
            await report("UploadFailed")  # before any I/O: no board log is even read
            return
        await report("Uploading")
        self._work.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self._work, prefix="diag-out-") as tmp:
            archive = Path(tmp) / name
            try:
                await self.collect_diagnostics(archive, start, stop)
            except OSError as exc:
                log.error("diagnostics archive failed: %s", exc)
                await report("UploadFailed")
                return
            attempts = max(1, retries)  # OCPP 1.6 §6.31: tries before giving up
            for attempt in range(1, attempts + 1):
                try:
                    where = await upload(location, archive, name)
                except TransferError as exc:
                    log.warning("diagnostics upload attempt %d failed: %s", attempt, exc)
                    if attempt < attempts:
                        await self._clock.sleep(retry_interval_s)
                    continue
                log.info("diagnostics uploaded to %s", where)
                await report("Uploaded")
                return
        await report("UploadFailed")

    # ------------------------------------------------------------------ reset and time

    async def reset(self, kind: ResetKind) -> None:
        """Satellites first (concurrently), then the local board; soft waits for sessions."""
        if kind is ResetKind.SOFT and self._stop_transactions is not None:
            await self._stop_transactions()
        results = await asyncio.gather(
            *(s.reset(kind) for s in self.satellites), return_exceptions=True
        )
        for i, (board, result) in enumerate(zip(self.satellites, results, strict=True)):
            if isinstance(result, BaseException):
                log.error("reset of %s failed: %s", board_serial(board, i), result)
        await self.local.reset(kind)

    async def set_time(self, unix_time: float) -> dict[str, float]:
        """Set every board's clock; returns serial -> offset before; drifted boards are logged."""
        boards = self.boards
        results = await asyncio.gather(
            *(b.set_time(unix_time) for b in boards), return_exceptions=True
        )
        offsets: dict[str, float] = {}
        for i, (board, result) in enumerate(zip(boards, results, strict=True)):
            if isinstance(result, BaseException):
                log.error("set_time on %s failed: %s", board_serial(board, i), result)
            else:
                offsets[board_serial(board, i)] = result
        self.last_drift = drifted(offsets, self.drift_threshold_s)
        for serial in self.last_drift:
            log.warning("board %s clock was off by %.3f s", serial, offsets[serial])
        return offsets
