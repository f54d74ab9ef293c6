"""Signed readings in the board's runtime: OCMF records of this board's own register.

`reading_for` decides (pure) which session events are signed and how: the register when the
transaction started (TX=B) and when it finished (TX=E, or L/R/P/A for the stop reason, OCMF
Table 7). `BoardSigning` signs those readings and on-demand ones through the board's
`SigningMeter`, off the event loop because the page counters are fsynced before a record is
released, and keeps the records of the last transactions for whoever carries them to the CSMS.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

from chargeport.config import ConfigError, PortConfig
from chargeport.port import SessionEvent, SessionEventType, StopReason, TransactionData
from evse.meter_key import MeterKeyError, SigningMeter
from evse.ocmf import (
    MeterIdentity,
    Reading,
    ReadingReason,
    SignedRecord,
    TimeStatus,
    UserAssignment,
)

__all__ = ["BoardSigning", "TransactionRecords", "end_reason", "open_signing", "reading_for"]

log = logging.getLogger(__name__)

_END_REASON = {
    StopReason.LOCAL: ReadingReason.END_LOCAL,
    StopReason.REMOTE: ReadingReason.END_REMOTE,
    StopReason.POWER_LOSS: ReadingReason.END_POWER_FAILURE,
    StopReason.EMERGENCY_STOP: ReadingReason.END_ABORT,
}


def end_reason(stop: StopReason | None) -> ReadingReason:
    """Table 7 TX for a finished transaction: the precise code where OCPP's reason gives one."""
    return _END_REASON.get(stop, ReadingReason.END) if stop is not None else ReadingReason.END


def reading_for(
    event: SessionEvent, now: float, time_status: TimeStatus
) -> tuple[Reading, UserAssignment] | None:
    """The reading to sign for a session event, or None (only begin and end are signed)."""
    tx = event.transaction
    if tx is None:
        return None
    if event.type is SessionEventType.TRANSACTION_STARTED:
        reason = ReadingReason.BEGIN
    elif event.type is SessionEventType.TRANSACTION_FINISHED:
        reason = end_reason(tx.stop_reason)
    else:
        return None
    reading = Reading(now, max(tx.meter_wh, 0.0), reason, time_status=time_status)
    return reading, UserAssignment.from_id_tag(tx.id_tag)


@dataclass(frozen=True, slots=True)
class TransactionRecords:
    begin: SignedRecord | None = None
    end: SignedRecord | None = None


class BoardSigning:
    """This board's signing meter as the runtime uses it."""

    def __init__(
        self,
        meter: SigningMeter,
        *,
        time_status: TimeStatus = TimeStatus.UNKNOWN,
        keep: int = 32,
    ) -> None:
        self._meter = meter
        self.time_status = time_status  # "S" once the board's clock is known to be synchronized
        self._keep = keep
        self._records: OrderedDict[str, TransactionRecords] = OrderedDict()
        self.last: SignedRecord | None = None

    @classmethod
    def open(
        cls, state_dir: str | Path, *, serial: str, firmware_version: str, meter: str = "internal"
    ) -> BoardSigning:
        """Load (or on the first start make) the key and counters in the board's state dir."""
        identity = MeterIdentity(
            gateway_id="chargeport",
            gateway_serial=serial,
            gateway_version=firmware_version,
            meter_vendor="chargeport",
            meter_model=meter,
            meter_serial=serial,
        )
        return cls(SigningMeter.open(state_dir, identity))

    @property
    def public_key_hex(self) -> str:
        return self._meter.public_key_hex

    def records(self, transaction_id: str) -> TransactionRecords | None:
        """The signed begin/end of one of the last transactions."""
        return self._records.get(transaction_id)

    async def on_session_event(self, event: SessionEvent, now: float) -> SignedRecord | None:
        """Sign the register if `event` begins or ends a transaction; errors are logged."""
        decided = reading_for(event, now, self.time_status)
        if decided is None or event.transaction is None:
            return None
        rec = await self._sign(*decided)
        if rec is not None:
            self._remember(event.transaction.transaction_id, rec)
        return rec

    async def on_demand(
        self, now: float, energy_wh: float, transaction: TransactionData | None
    ) -> SignedRecord | None:
        """A reading now: TX=C within a transaction (page T), else fiscal (page F)."""
        if transaction is None:
            return await self._sign(Reading(now, energy_wh, time_status=self.time_status), None)
        reading = Reading(now, energy_wh, ReadingReason.CHARGING, time_status=self.time_status)
        return await self._sign(reading, UserAssignment.from_id_tag(transaction.id_tag))

    async def _sign(self, reading: Reading, user: UserAssignment | None) -> SignedRecord | None:
        try:
            rec = await asyncio.to_thread(self._meter.record, reading, user)
        except Exception:  # a signing failure must never stop a session; it is logged
            log.exception("OCMF: could not sign the %s reading", reading.reason or "fiscal")
            return None
        self.last = rec
        return rec

    def _remember(self, transaction_id: str, rec: SignedRecord) -> None:
        have = self._records.pop(transaction_id, TransactionRecords())
        if rec.reading.reason is ReadingReason.BEGIN:
            have = replace(have, begin=rec)
        else:
            have = replace(have, end=rec)
        self._records[transaction_id] = have
        while len(self._records) > self._keep:
            self._records.popitem(last=False)


def open_signing(
    port: PortConfig, state_dir: str | Path, *, serial: str, firmware_version: str
) -> BoardSigning | None:
    """The board's signing meter when `port.meter_signing` is on (key made on first start)."""
    if not port.meter_signing:
        return None
    try:
        signing = BoardSigning.open(
            state_dir, serial=serial, firmware_version=firmware_version, meter=port.meter
        )
    except MeterKeyError as exc:
        raise ConfigError(f"port.meter_signing: {exc}") from None
    log.info("OCMF signing on; metering public key %s", signing.public_key_hex)
    return signing
