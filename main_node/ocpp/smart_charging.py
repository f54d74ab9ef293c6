"""Charging profiles (OCPP 1.6 §3.13 Smart Charging, §5.16, §5.5, §5.7), persisted.

Theory of operation: a profile is a schedule of limits anchored in time by its kind —
Absolute (startSchedule, else the moment it was installed), Recurring (startSchedule repeated
every day or week) or Relative (the transaction start). At a moment t a profile either gives
a limit (inside validFrom/validTo, after its start, before start + duration) or nothing.
Within one purpose the highest stackLevel that gives a limit wins (§3.13.2). For a connector
the TxProfile wins over the TxDefaultProfile (connector-specific before connector 0), and the
result is capped by the ChargePointMaxProfile (§3.13.1). Limits are returned in amps per
phase; W become A with `voltage` * numberPhases (3 when absent, §7.10).

The composite schedule evaluates that rule at every instant where any profile may change
(its breakpoints) and merges equal neighbours into periods.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from main_node.ocpp.db import (
    ensure_schema,
    format_datetime,
    parse_datetime,
    to_wire,
    transaction,
)

__all__ = ["PURPOSES", "ProfileStore", "parse_profile"]

PURPOSES = ("ChargePointMaxProfile", "TxDefaultProfile", "TxProfile")
_KINDS = ("Absolute", "Recurring", "Relative")
_RECURRENCY = {"Daily": 86_400.0, "Weekly": 7 * 86_400.0}
_DEFAULT_PHASES = 3  # §7.10 ChargingSchedulePeriod.numberPhases

Status = Literal["Accepted", "Rejected"]
_Value = tuple[float, int]  # (amps, phases)


@dataclass(frozen=True)
class _Profile:
    """A validated profile in seconds and amps-or-watts, ready to evaluate."""

    id: int
    connector_id: int
    purpose: str
    stack_level: int
    kind: str
    period_s: float | None  # recurrence period for Recurring
    valid_from: float | None
    valid_to: float | None
    start_schedule: float | None
    duration: float | None
    unit: str
    periods: tuple[tuple[float, float, int], ...]  # (startPeriod, limit, numberPhases)
    received_at: float
    transaction_id: int | None = None  # a TxProfile's transactionId, when it names one

    def start(self, t: float, anchor: float) -> float:
        """When the schedule occurrence covering `t` starts."""
        if self.kind == "Relative":
            return anchor
        base = self.start_schedule if self.start_schedule is not None else self.received_at
        if self.period_s is None:
            return base
        return base + math.floor((t - base) / self.period_s) * self.period_s

    def value(self, t: float, anchor: float, voltage: float) -> _Value | None:
        """(amps, phases) this profile imposes at `t`, or None."""
        if self.valid_from is not None and t < self.valid_from:
            return None
        if self.valid_to is not None and t >= self.valid_to:
            return None
        offset = t - self.start(t, anchor)
        duration = self.duration
        if self.period_s is not None:
            duration = self.period_s if duration is None else min(duration, self.period_s)
        if offset < 0 or (duration is not None and offset >= duration):
            return None
        chosen = None
        for start, limit, phases in self.periods:
            if start <= offset:
                chosen = (limit, phases)
        if chosen is None:
            return None
        limit, phases = chosen
        amps = limit if self.unit == "A" else limit / (voltage * phases)
        return amps, phases

    def breakpoints(self, begin: float, end: float, anchor: float) -> Iterable[float]:
        """Instants in (begin, end) where this profile's value may change."""
        points = [p for p in (self.valid_from, self.valid_to) if p is not None]
        starts = [self.start(begin, anchor)]
        if self.period_s is not None:
            while starts[-1] + self.period_s < end:
                starts.append(starts[-1] + self.period_s)
        for start in starts:
            points.append(start)
            points.extend(start + p[0] for p in self.periods)
            if self.duration is not None:
                points.append(start + self.duration)
        return (p for p in points if begin < p < end)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _opt_time(profile: dict[str, Any], key: str) -> float | None:
    text = profile.get(key)
    return None if text is None else parse_datetime(text)


def parse_profile(
    connector_id: int, profile: dict[str, Any], received_at: float
) -> _Profile | None:
    """Validate a csChargingProfiles dict (§7.8 ChargingProfile); None when malformed."""
    try:
        p = to_wire(profile)
        schedule = p["chargingSchedule"]
        ident, stack = p["chargingProfileId"], p["stackLevel"]
        purpose, kind = p["chargingProfilePurpose"], p["chargingProfileKind"]
        if not (isinstance(ident, int) and isinstance(stack, int) and stack >= 0):
            return None
        transaction_id = p.get("transactionId")
        if transaction_id is not None and (
            isinstance(transaction_id, bool) or not isinstance(transaction_id, int)
        ):
            return None
        if purpose not in PURPOSES or kind not in _KINDS:
            return None
        period_s = None
        if kind == "Recurring":
            period_s = _RECURRENCY.get(p.get("recurrencyKind", ""))
            if period_s is None:
                return None
        unit = schedule["chargingRateUnit"]
        if unit not in ("A", "W"):
            return None
        periods: list[tuple[float, float, int]] = []
        for item in schedule["chargingSchedulePeriod"]:
            start, limit = _number(item["startPeriod"]), _number(item["limit"])
            phases = item.get("numberPhases", _DEFAULT_PHASES)
            if start is None or limit is None or limit < 0 or phases not in (1, 2, 3):
                return None
            if (periods and start <= periods[-1][0]) or (not periods and start != 0):
                # §7.9: the first period starts at 0, and startPeriods increase.
                return None
            periods.append((start, limit, phases))
        duration = None if schedule.get("duration") is None else _number(schedule["duration"])
        if not periods or (duration is not None and duration <= 0):
            return None
        return _Profile(
            id=ident,
            connector_id=connector_id,
            purpose=purpose,
            stack_level=stack,
            kind=kind,
            period_s=period_s,
            valid_from=_opt_time(p, "validFrom"),
            valid_to=_opt_time(p, "validTo"),
            start_schedule=_opt_time(schedule, "startSchedule"),
            duration=duration,
            unit=unit,
            periods=tuple(periods),
            received_at=received_at,
            transaction_id=transaction_id,
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _floor_tenth(value: float) -> float:
    # §7.9 limit has multipleOf 0.1; round down so the reported limit is never exceeded.
    return math.floor(value * 10 + 1e-6) / 10


class ProfileStore:
    """Installed charging profiles and the limits they impose."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        active_tx: Callable[[int], bool] = lambda _connector: False,
        *,
        number_of_connectors: int | None = None,
        voltage: float = 230.0,
        max_stack_level: int = 8,
        max_periods: int = 24,
        max_profiles: int = 32,
        allowed_units: Iterable[str] = ("A", "W"),
        max_current_a: float = 32.0,
        transaction_of: Callable[[int], int | None] | None = None,
    ) -> None:
        ensure_schema(conn)
        self._conn = conn
        self.active_tx = active_tx
        # The CSMS's transactionId of the transaction on a connector (None while unknown).
        self.transaction_of = transaction_of
        self.number_of_connectors = number_of_connectors
        self.voltage = voltage
        self.max_stack_level = max_stack_level
        self.max_periods = max_periods
        self.max_profiles = max_profiles
        self.allowed_units = frozenset(allowed_units)
        # Reported in a composite schedule where no profile limits the connector.
        self.max_current_a = max_current_a
        self._profiles = self._load()

    # ---------------------------------------------------------------- §5.16 / §5.5

    def set(self, connector_id: int, profile: dict[str, Any], now: float) -> Status:
        """SetChargingProfile: install (replacing by id or stackLevel+purpose) or reject."""
        parsed = parse_profile(connector_id, profile, now)
        if parsed is None or not self._acceptable(parsed):
            return "Rejected"
        # §5.16: same chargingProfileId, or same stackLevel and purpose (on this connector),
        # replaces the installed profile.
        replaced = [
            p.id
            for p in self._profiles
            if p.id == parsed.id
            or (
                p.connector_id == connector_id
                and p.purpose == parsed.purpose
                and p.stack_level == parsed.stack_level
            )
        ]
        if len(self._profiles) - len(replaced) + 1 > self.max_profiles:
            return "Rejected"  # MaxChargingProfilesInstalled (§9.4)
        with transaction(self._conn):
            self._conn.executemany(
                "DELETE FROM charging_profiles WHERE profile_id = ?", [(i,) for i in replaced]
            )
            self._conn.execute(
                "INSERT INTO charging_profiles VALUES (?,?,?,?,?,?)",
                (
                    parsed.id,
                    connector_id,
                    parsed.purpose,
                    parsed.stack_level,
                    json.dumps(to_wire(profile)),
                    now,
                ),
            )
        self._profiles = [p for p in self._profiles if p.id not in replaced] + [parsed]
        return "Accepted"

    def clear(
        self,
        profile_id: int | None = None,
        connector_id: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
    ) -> Literal["Accepted", "Unknown"]:
        """ClearChargingProfile (§5.5): by id, else by every criterion given; none = all."""
        if profile_id is not None:
            doomed = [p.id for p in self._profiles if p.id == profile_id]
        else:
            doomed = [
                p.id
                for p in self._profiles
                if (connector_id is None or p.connector_id == connector_id)
                and (purpose is None or p.purpose == purpose)
                and (stack_level is None or p.stack_level == stack_level)
            ]
        if not doomed:
            return "Unknown"
        self._delete(doomed)
        return "Accepted"

    def transaction_ended(self, connector_id: int) -> int:
        """Drop the connector's TxProfiles: they live only as long as the transaction (§3.13.2)."""
        doomed = [
            p.id
            for p in self._profiles
            if p.purpose == "TxProfile" and p.connector_id == connector_id
        ]
        self._delete(doomed)
        return len(doomed)

    def prune(self, now: float) -> int:
        """Delete profiles whose validTo has passed; returns how many."""
        doomed = [p.id for p in self._profiles if p.valid_to is not None and p.valid_to <= now]
        self._delete(doomed)
        return len(doomed)

    def profiles(self, connector_id: int | None = None) -> list[dict[str, Any]]:
        """Installed profiles in wire form, with 'connectorId' added, by id."""
        query = "SELECT connector_id, profile FROM charging_profiles"
        args: tuple[int, ...] = ()
        if connector_id is not None:
            query, args = query + " WHERE connector_id = ?", (connector_id,)
        rows = self._conn.execute(query + " ORDER BY profile_id", args).fetchall()
        return [{"connectorId": c, **json.loads(text)} for c, text in rows]

    # ---------------------------------------------------------------- limits

    def limit(self, connector_id: int, now: float, tx_start: float | None = None) -> float | None:
        """The connector's limit in amps at `now` (None = no profile limits it).

        Relative profiles count from `tx_start`, or from `now` when no transaction runs.
        """
        value = self._value(connector_id, now, now if tx_start is None else tx_start)
        return None if value is None else value[0]

    def station_limit(self, now: float) -> float | None:
        """The ChargePointMaxProfile limit in amps at `now` (§3.13.1)."""
        value = self._best("ChargePointMaxProfile", 0, now, now)
        return None if value is None else value[0]

    def next_change(
        self,
        connector_id: int,
        now: float,
        tx_start: float | None = None,
        horizon_s: float = 7 * 86_400,
    ) -> float | None:
        """The next instant after `now` at which the connector's limit may change."""
        anchor = now if tx_start is None else tx_start
        points = self._breakpoints(connector_id, now, now + horizon_s, anchor)
        return min(points, default=None)

    def composite_schedule(
        self,
        connector_id: int,
        duration_s: int,
        now: float,
        unit: str | None = None,
        tx_start: float | None = None,
    ) -> dict[str, Any] | None:
        """GetCompositeSchedule.conf chargingSchedule (§5.7) from `now`, or None.

        Connector 0 reports the ChargePointMaxProfile (the grid connection, §5.7).
        """
        unit = unit or "A"
        if unit not in ("A", "W") or duration_s <= 0:
            return None
        if self.number_of_connectors is not None and connector_id > self.number_of_connectors:
            return None
        anchor = now if tx_start is None else tx_start
        end = now + duration_s
        offsets = {0} | {
            math.ceil(p - now) for p in self._breakpoints(connector_id, now, end, anchor)
        }
        periods: list[dict[str, Any]] = []
        limited = False
        for offset in sorted(o for o in offsets if o < duration_s):
            value = self._value(connector_id, now + offset, anchor)
            limited = limited or value is not None
            amps, phases = value or (self.max_current_a, _DEFAULT_PHASES)
            limit = amps if unit == "A" else amps * self.voltage * phases
            period = {"startPeriod": offset, "limit": _floor_tenth(limit), "numberPhases": phases}
            if not periods or {**periods[-1], "startPeriod": offset} != period:
                periods.append(period)
        if not limited:
            return None
        return {
            "duration": duration_s,
            "startSchedule": format_datetime(now),
            "chargingRateUnit": unit,
            "chargingSchedulePeriod": periods,
        }

    # ---------------------------------------------------------------- internals

    def _acceptable(self, p: _Profile) -> bool:
        if p.connector_id < 0 or (
            self.number_of_connectors is not None and p.connector_id > self.number_of_connectors
        ):
            return False
        if p.purpose == "ChargePointMaxProfile" and p.connector_id != 0:
            return False  # §3.13.1: only on connector 0
        if p.purpose == "TxProfile" and (p.connector_id == 0 or not self.active_tx(p.connector_id)):
            return False  # §3.13.2: only with an active transaction on that connector
        if (
            p.purpose == "TxProfile"
            and p.transaction_id is not None
            and self.transaction_of is not None
            and self.transaction_of(p.connector_id) != p.transaction_id
        ):
            return False  # §3.13.4: a TxProfile naming another transaction is Rejected
        return (
            p.stack_level <= self.max_stack_level
            and p.unit in self.allowed_units
            and len(p.periods) <= self.max_periods
        )

    def _best(self, purpose: str, connector_id: int, t: float, anchor: float) -> _Value | None:
        candidates = sorted(
            (p for p in self._profiles if p.purpose == purpose and p.connector_id == connector_id),
            key=lambda p: -p.stack_level,
        )
        for profile in candidates:
            value = profile.value(t, anchor, self.voltage)
            if value is not None:
                return value
        return None

    def _value(self, connector_id: int, t: float, anchor: float) -> _Value | None:
        cap = self._best("ChargePointMaxProfile", 0, t, anchor)
        if connector_id == 0:
            return cap
        tx = (
            self._best("TxProfile", connector_id, t, anchor)
            or self._best("TxDefaultProfile", connector_id, t, anchor)
            or self._best("TxDefaultProfile", 0, t, anchor)
        )
        if tx is None or cap is None:
            return tx or cap
        return tx if tx[0] <= cap[0] else cap

    def _breakpoints(
        self, connector_id: int, begin: float, end: float, anchor: float
    ) -> frozenset[float]:
        relevant = (
            p
            for p in self._profiles
            if p.connector_id in (0, connector_id)
            and (connector_id != 0 or p.purpose == "ChargePointMaxProfile")
        )
        return frozenset(t for p in relevant for t in p.breakpoints(begin, end, anchor))

    def _delete(self, ids: list[int]) -> None:
        if not ids:
            return
        with transaction(self._conn):
            self._conn.executemany(
                "DELETE FROM charging_profiles WHERE profile_id = ?", [(i,) for i in ids]
            )
        self._profiles = [p for p in self._profiles if p.id not in ids]

    def _load(self) -> list[_Profile]:
        loaded = []
        for connector_id, text, received_at in self._conn.execute(
            "SELECT connector_id, profile, received_at FROM charging_profiles ORDER BY profile_id"
        ):
            parsed = parse_profile(connector_id, json.loads(text), received_at)
            if parsed is not None:
                loaded.append(parsed)
        return loaded
