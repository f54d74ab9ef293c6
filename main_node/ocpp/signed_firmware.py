"""SignedUpdateFirmware and GetLog through the system aggregator (whitepaper 1.6 ed. 3,
"Secure firmware update" and "Security event/logging").

SignedUpdateFirmware: the signing certificate was checked against the installed
ManufacturerRootCertificates before the answer (InvalidCertificate otherwise). Then, at
retrieveDateTime, the firmware is downloaded once here and its signature (over the file's
SHA-256) verified: Downloading, Downloaded, then SignatureVerified or InvalidSignature (a security
event). A verified firmware goes to the aggregator, which fetches it, checks our bundle signature
(the board-level check, again on every board) and rolls it out; its Installing / Installed /
InstallationFailed statuses follow, each a SignedFirmwareStatusNotification with the requestId.

GetLog: the aggregator collects every board's logs (security events are lines of them, marked
`SECURITY-EVENT`) into one archive and uploads it; its statuses become LogStatusNotifications.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from ocpp.v16 import call

from chargeport.security_log import INVALID_TRANSFER_LOCATION, security_event
from main_node.ocpp.certificates import verify_firmware_signature
from main_node.ocpp.session_ops import Offline
from system_aggregator.api import StationSystem
from system_aggregator.transfer import TransferError, TransferRefused, check_location, download

__all__ = [
    "FIRMWARE_UPDATED",
    "INVALID_FIRMWARE_SIGNATURE",
    "INVALID_SIGNING_CERTIFICATE",
    "LOG_STATUS",
    "SignedFirmware",
    "log_status_for",
]

log = logging.getLogger(__name__)

INVALID_FIRMWARE_SIGNATURE = "InvalidFirmwareSignature"
INVALID_SIGNING_CERTIFICATE = "InvalidFirmwareSigningCertificate"
FIRMWARE_UPDATED = "FirmwareUpdated"

# DiagnosticsStatus of the aggregator -> UploadLogStatus (whitepaper LogStatusNotification).
LOG_STATUS = {"Uploading": "Uploading", "Uploaded": "Uploaded", "UploadFailed": "UploadFailure"}
# FirmwareStatus of the aggregator's rollout -> SignedFirmwareStatus; its own download and
# verification repeat ours and are not reported twice.
_ROLLOUT_STATUS = {
    "Installing": "Installing",
    "Installed": "Installed",
    "InstallationFailed": "InstallationFailed",
    "InvalidSignature": "InvalidSignature",
    "DownloadFailed": "DownloadFailed",
}

Send = Callable[[Any], Awaitable[None]]


def log_status_for(status: str) -> str:
    return LOG_STATUS.get(status, "UploadFailure")


class SignedFirmware:
    """One SignedUpdateFirmware request, run to its end; `report` sends each status.

    Until the rollout starts it can be cancelled (a newer SignedUpdateFirmware replaces it:
    AcceptedCanceled); once the aggregator installs, it runs to its end (the newer request is
    Rejected). `phase` says which: "pending", "rollout", "done".
    """

    def __init__(
        self,
        system: StationSystem,
        work_dir: Path,
        report: Callable[[str], Awaitable[None]],
        sleep: Callable[[float], Awaitable[None]],
        now: Callable[[], float],
    ) -> None:
        self._system = system
        self._work = work_dir
        self._report = report
        self._sleep = sleep
        self._now = now
        self.phase = "pending"
        self._cancelled = asyncio.Event()

    def cancel(self) -> bool:
        """Stop before the rollout; False once the boards are being installed."""
        if self.phase != "pending":
            return self.phase == "done"
        self._cancelled.set()
        return True

    async def _pause(self, seconds: float) -> bool:
        """Wait `seconds` of the clock; True when cancelled meanwhile."""
        if seconds > 0 and not self._cancelled.is_set():
            sleeper = asyncio.ensure_future(self._sleep(seconds))
            waiter = asyncio.ensure_future(self._cancelled.wait())
            try:
                await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (sleeper, waiter):
                    task.cancel()
                await asyncio.gather(sleeper, waiter, return_exceptions=True)
        return self._cancelled.is_set()

    async def run(
        self,
        location: str,
        retrieve: float,
        signing: x509.Certificate,
        signature: str,
        retries: int,
        retry_interval_s: float,
        install: float | None = None,
    ) -> None:
        try:
            await self._run(
                location, retrieve, signing, signature, retries, retry_interval_s, install
            )
        finally:
            self.phase = "done"

    async def _run(
        self,
        location: str,
        retrieve: float,
        signing: x509.Certificate,
        signature: str,
        retries: int,
        retry_interval_s: float,
        install: float | None,
    ) -> None:
        try:
            check_location(location)
        except TransferRefused as exc:
            security_event(INVALID_TRANSFER_LOCATION, f"signed firmware download refused: {exc}")
            await self._report("DownloadFailed")
            return
        if retrieve > self._now():
            await self._report("DownloadScheduled")
            if await self._pause(retrieve - self._now()):
                return
        await self._report("Downloading")
        self._work.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self._work, prefix="fw-check-") as tmp:
            image = Path(tmp) / "firmware"
            if not await self._download(location, image, retries, retry_interval_s):
                if not self._cancelled.is_set():
                    await self._report("DownloadFailed")
                return
            if self._cancelled.is_set():
                return
            await self._report("Downloaded")
            ok = await asyncio.to_thread(verify_firmware_signature, signing, signature, image)
        if not ok:
            security_event(
                INVALID_FIRMWARE_SIGNATURE,
                f"firmware from {location[:120]}: the signature does not verify with "
                f"{signing.subject.rfc4514_string()[:80]}",
            )
            await self._report("InvalidSignature")
            return
        await self._report("SignatureVerified")
        if install is not None and install > self._now():
            await self._report("InstallScheduled")  # installDateTime (whitepaper ed. 3)
            if await self._pause(install - self._now()):
                return
        if self._cancelled.is_set():
            return
        self.phase = "rollout"
        await self._system.update_firmware(
            location, self._now(), retries, retry_interval_s, self._rollout_status
        )

    async def _download(self, location: str, dest: Path, retries: int, interval_s: float) -> bool:
        for attempt in range(1, max(1, retries) + 1):
            try:
                await download(location, dest)
                return True
            except TransferError as exc:
                log.warning("signed firmware download attempt %d failed: %s", attempt, exc)
                if attempt < max(1, retries) and await self._pause(interval_s):
                    return False
        return False

    async def _rollout_status(self, status: str) -> None:
        mapped = _ROLLOUT_STATUS.get(status)
        if mapped is None:
            return
        if mapped == "InvalidSignature":
            security_event(INVALID_FIRMWARE_SIGNATURE, "a board refused the bundle signature")
        elif mapped == "Installed":
            security_event(FIRMWARE_UPDATED, "signed firmware installed on every board")
        await self._report(mapped)


async def send_quietly(request: Callable[[Any], Awaitable[Any]], payload: Any) -> None:
    """Send a notification; offline, it is dropped (the CSMS can trigger it again)."""
    try:
        await request(payload)
    except Offline:
        log.info("%s not sent: offline", type(payload).__name__)


def firmware_notification(status: str, request_id: int | None) -> Any:
    # requestId only once a request exists (whitepaper: not with Idle).
    return call.SignedFirmwareStatusNotification(
        status=status, request_id=request_id if status != "Idle" else None
    )


def log_notification(status: str, request_id: int | None) -> Any:
    return call.LogStatusNotification(
        status=status, request_id=request_id if status != "Idle" else None
    )
