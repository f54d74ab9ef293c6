"""Charging profiles: OCPP 1.6 §3.13 Smart Charging, §5.16, §5.5, §5.7, §7.8 to §7.10."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from ocpp.messages import get_validator

from main_node.ocpp.db import format_datetime, open_db
from main_node.ocpp.smart_charging import ProfileStore

T0 = 1_700_006_400.0  # 2023-11-15T00:00:00Z, a Wednesday
MIDNIGHT = format_datetime(T0)
HOUR = 3600.0


def profile(
    pid: int,
    purpose: str,
    periods: Sequence[tuple[float, ...]],
    *,
    stack: int = 0,
    kind: str = "Absolute",
    unit: str = "A",
    **extra: Any,
) -> dict[str, Any]:
    schedule: dict[str, Any] = {
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": [
            {"startPeriod": p[0], "limit": p[1], **({"numberPhases": p[2]} if len(p) > 2 else {})}
            for p in periods
        ],
    }
    for key in ("duration", "startSchedule"):
        if key in extra:
            schedule[key] = extra.pop(key)
    if kind == "Absolute" and "startSchedule" not in schedule:
        schedule["startSchedule"] = MIDNIGHT
    return {
        "chargingProfileId": pid,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": schedule,
        **extra,
    }


@pytest.fixture
def store(tmp_path: Path) -> ProfileStore:
    return ProfileStore(
        open_db(tmp_path / "s.db"), active_tx=lambda c: c == 1, number_of_connectors=3
    )


@pytest.mark.parametrize(
    ("connector", "prof", "status"),
    [
        (0, profile(1, "ChargePointMaxProfile", [(0, 32)]), "Accepted"),
        # §3.13.1: ChargePointMaxProfile only on connector 0.
        (1, profile(1, "ChargePointMaxProfile", [(0, 32)]), "Rejected"),
        (0, profile(1, "TxDefaultProfile", [(0, 16)]), "Accepted"),
        (2, profile(1, "TxDefaultProfile", [(0, 16)]), "Accepted"),
        # §3.13.2: TxProfile only on a connector with an active transaction.
        (1, profile(1, "TxProfile", [(0, 16)]), "Accepted"),
        (2, profile(1, "TxProfile", [(0, 16)]), "Rejected"),
        (0, profile(1, "TxProfile", [(0, 16)]), "Rejected"),
        (4, profile(1, "TxDefaultProfile", [(0, 16)]), "Rejected"),  # no connector 4
        (1, profile(1, "TxDefaultProfile", [(0, 16)], stack=9), "Rejected"),  # > max level 8
        (1, profile(1, "TxDefaultProfile", [(5, 16)]), "Rejected"),  # §7.9 first period at 0
        (1, profile(1, "TxDefaultProfile", [(0, 16), (0, 8)]), "Rejected"),  # not increasing
        (1, profile(1, "TxDefaultProfile", [(0, -1)]), "Rejected"),
        (1, profile(1, "TxDefaultProfile", [(0, 16, 4)]), "Rejected"),  # numberPhases 1..3
        (1, profile(1, "TxDefaultProfile", [(i * 60, 16) for i in range(25)]), "Rejected"),
        (1, profile(1, "TxDefaultProfile", [(0, 16)], kind="Recurring"), "Rejected"),
        (1, profile(1, "TxDefaultProfile", [(0, 16)], unit="kW"), "Rejected"),
        (1, {"chargingProfileId": 1}, "Rejected"),
    ],
)
def test_set_charging_profile_rules_5_16(
    store: ProfileStore, connector: int, prof: dict[str, Any], status: str
) -> None:
    """§5.16 SetChargingProfile acceptance rules."""
    assert store.set(connector, prof, T0) == status
    assert len(store.profiles()) == (1 if status == "Accepted" else 0)


def test_unit_not_allowed_is_rejected_9_4(tmp_path: Path) -> None:
    """§9.4 ChargingScheduleAllowedChargingRateUnit limits the units accepted."""
    store = ProfileStore(open_db(tmp_path / "s.db"), allowed_units=["A"])
    assert store.set(0, profile(1, "TxDefaultProfile", [(0, 11000)], unit="W"), T0) == "Rejected"


def test_replacement_by_id_and_by_stack_level_purpose_5_16(store: ProfileStore) -> None:
    """§5.16: same id, or same stackLevel + purpose, replaces the installed profile."""
    store.set(1, profile(1, "TxDefaultProfile", [(0, 10)], stack=1), T0)
    store.set(1, profile(2, "TxDefaultProfile", [(0, 12)], stack=1), T0)  # same level+purpose
    assert [p["chargingProfileId"] for p in store.profiles()] == [2]
    store.set(2, profile(2, "TxDefaultProfile", [(0, 14)], stack=3), T0)  # same id, elsewhere
    assert [(p["connectorId"], p["stackLevel"]) for p in store.profiles()] == [(2, 3)]


def test_max_profiles_installed_9_4(tmp_path: Path) -> None:
    """§9.4 MaxChargingProfilesInstalled: one more is Rejected, a replacement is not."""
    store = ProfileStore(open_db(tmp_path / "s.db"), max_profiles=2)
    assert store.set(0, profile(1, "TxDefaultProfile", [(0, 10)], stack=1), T0) == "Accepted"
    assert store.set(0, profile(2, "TxDefaultProfile", [(0, 10)], stack=2), T0) == "Accepted"
    assert store.set(0, profile(3, "TxDefaultProfile", [(0, 10)], stack=3), T0) == "Rejected"
    assert store.set(0, profile(3, "TxDefaultProfile", [(0, 10)], stack=2), T0) == "Accepted"


@pytest.mark.parametrize(
    ("profiles", "at", "tx_start", "amps"),
    [
        # W become A over 230 V * numberPhases (3 when absent, §7.10).
        ([(1, profile(1, "TxDefaultProfile", [(0, 11040)], unit="W"))], 0, None, 16.0),
        ([(1, profile(1, "TxDefaultProfile", [(0, 3680, 1)], unit="W"))], 0, None, 16.0),
        # Absolute schedule periods, and the end of its duration.
        (
            [(1, profile(1, "TxDefaultProfile", [(0, 10), (3600, 20)], duration=7200))],
            1800,
            None,
            10,
        ),
        (
            [(1, profile(1, "TxDefaultProfile", [(0, 10), (3600, 20)], duration=7200))],
            3600,
            None,
            20,
        ),
        (
            [(1, profile(1, "TxDefaultProfile", [(0, 10), (3600, 20)], duration=7200))],
            7200,
            None,
            None,
        ),
        # §3.13.2: TxProfile beats TxDefaultProfile.
        (
            [
                (1, profile(1, "TxDefaultProfile", [(0, 10)])),
                (1, profile(2, "TxProfile", [(0, 8)])),
            ],
            0,
            None,
            8,
        ),
        (
            [
                (1, profile(1, "TxDefaultProfile", [(0, 8)])),
                (1, profile(2, "TxProfile", [(0, 20)])),
            ],
            0,
            None,
            20,
        ),
        # §3.13.1: capped by ChargePointMaxProfile.
        (
            [
                (0, profile(1, "ChargePointMaxProfile", [(0, 12)])),
                (1, profile(2, "TxProfile", [(0, 20)])),
            ],
            0,
            None,
            12,
        ),
        ([(0, profile(1, "ChargePointMaxProfile", [(0, 12)]))], 0, None, 12),
        # Higher stackLevel wins while it has a period; lower one after its duration.
        (
            [
                (1, profile(1, "TxDefaultProfile", [(0, 16)], stack=0)),
                (1, profile(2, "TxDefaultProfile", [(0, 6)], stack=5, duration=600)),
            ],
            300,
            None,
            6,
        ),
        (
            [
                (1, profile(1, "TxDefaultProfile", [(0, 16)], stack=0)),
                (1, profile(2, "TxDefaultProfile", [(0, 6)], stack=5, duration=600)),
            ],
            600,
            None,
            16,
        ),
        # A connector's own TxDefaultProfile overrides connector 0's.
        (
            [
                (0, profile(1, "TxDefaultProfile", [(0, 16)], stack=5)),
                (1, profile(2, "TxDefaultProfile", [(0, 7)])),
            ],
            0,
            None,
            7,
        ),
        ([(0, profile(1, "TxDefaultProfile", [(0, 16)]))], 0, None, 16),
        # validFrom / validTo.
        (
            [(1, profile(1, "TxDefaultProfile", [(0, 9)], validFrom=format_datetime(T0 + HOUR)))],
            0,
            None,
            None,
        ),
        (
            [(1, profile(1, "TxDefaultProfile", [(0, 9)], validTo=format_datetime(T0 + HOUR)))],
            HOUR,
            None,
            None,
        ),
        # Relative: periods count from the transaction start.
        ([(1, profile(1, "TxProfile", [(0, 6), (600, 16)], kind="Relative"))], 900, T0 + 600, 6),
        ([(1, profile(1, "TxProfile", [(0, 6), (600, 16)], kind="Relative"))], 900, T0, 16),
        # Recurring Daily: 08:00-18:00 at 10 A, night 32 A, any later day.
        (
            [
                (
                    1,
                    profile(
                        1,
                        "TxDefaultProfile",
                        [(0, 32), (8 * 3600, 10), (18 * 3600, 32)],
                        kind="Recurring",
                        recurrencyKind="Daily",
                        startSchedule=MIDNIGHT,
                    ),
                )
            ],
            5 * 86400 + 9 * HOUR,
            None,
            10,
        ),
        (
            [
                (
                    1,
                    profile(
                        1,
                        "TxDefaultProfile",
                        [(0, 32), (8 * 3600, 10), (18 * 3600, 32)],
                        kind="Recurring",
                        recurrencyKind="Daily",
                        startSchedule=MIDNIGHT,
                    ),
                )
            ],
            5 * 86400 + 19 * HOUR,
            None,
            32,
        ),
        # Recurring Weekly: Wednesdays only for 24 h.
        (
            [
                (
                    1,
                    profile(
                        1,
                        "TxDefaultProfile",
                        [(0, 6)],
                        kind="Recurring",
                        recurrencyKind="Weekly",
                        startSchedule=MIDNIGHT,
                        duration=86400,
                    ),
                )
            ],
            7 * 86400 + 12 * HOUR,
            None,
            6,
        ),
        (
            [
                (
                    1,
                    profile(
                        1,
                        "TxDefaultProfile",
                        [(0, 6)],
                        kind="Recurring",
                        recurrencyKind="Weekly",
                        startSchedule=MIDNIGHT,
                        duration=86400,
                    ),
                )
            ],
            8 * 86400 + 12 * HOUR,
            None,
            None,
        ),
    ],
)
def test_limit_precedence_and_kinds_3_13(
    store: ProfileStore,
    profiles: list[tuple[int, dict[str, Any]]],
    at: float,
    tx_start: float | None,
    amps: float | None,
) -> None:
    """§3.13: the connector limit from stacking, purposes, kinds and validity."""
    for connector, prof in profiles:
        assert store.set(connector, prof, T0) == "Accepted"
    assert store.limit(1, T0 + at, tx_start) == (None if amps is None else pytest.approx(amps))


def test_absolute_without_start_schedule_starts_when_received(store: ProfileStore) -> None:
    """An Absolute profile with no startSchedule is anchored at its installation time."""
    prof = profile(1, "TxDefaultProfile", [(0, 6), (600, 20)])
    del prof["chargingSchedule"]["startSchedule"]
    store.set(1, prof, T0 + 1000)
    assert store.limit(1, T0 + 1500) == 6
    assert store.limit(1, T0 + 1600) == 20


def test_station_limit_and_next_change(store: ProfileStore) -> None:
    """station_limit is the ChargePointMaxProfile; next_change says when to look again."""
    store.set(0, profile(1, "ChargePointMaxProfile", [(0, 40), (3600, 25)]), T0)
    assert store.station_limit(T0) == 40
    assert store.station_limit(T0 + HOUR) == 25
    assert store.next_change(1, T0 + 10) == T0 + HOUR


def test_ocpp_package_snake_case_and_decimal(store: ProfileStore) -> None:
    """The ocpp package hands snake_case keys and Decimal limits; both are accepted."""
    prof = {
        "charging_profile_id": 1,
        "stack_level": 0,
        "charging_profile_purpose": "TxDefaultProfile",
        "charging_profile_kind": "Relative",
        "charging_schedule": {
            "charging_rate_unit": "A",
            "charging_schedule_period": [{"start_period": 0, "limit": Decimal("13.2")}],
        },
    }
    assert store.set(1, prof, T0) == "Accepted"
    assert store.limit(1, T0) == pytest.approx(13.2)


@pytest.mark.parametrize(
    ("criteria", "status", "left"),
    [
        ({"profile_id": 2}, "Accepted", [1, 3]),
        ({"profile_id": 9}, "Unknown", [1, 2, 3]),
        ({"connector_id": 1}, "Accepted", [3]),
        ({"purpose": "TxDefaultProfile", "stack_level": 2}, "Accepted", [1, 3]),
        ({"connector_id": 0, "purpose": "TxProfile"}, "Unknown", [1, 2, 3]),
        ({}, "Accepted", []),
    ],
)
def test_clear_charging_profile_5_5(
    store: ProfileStore, criteria: dict[str, Any], status: str, left: list[int]
) -> None:
    """§5.5 ClearChargingProfile: by id, or by the criteria given; nothing matched = Unknown."""
    store.set(1, profile(1, "TxDefaultProfile", [(0, 10)], stack=1), T0)
    store.set(1, profile(2, "TxDefaultProfile", [(0, 10)], stack=2), T0)
    store.set(0, profile(3, "ChargePointMaxProfile", [(0, 10)]), T0)
    assert store.clear(**criteria) == status
    assert [p["chargingProfileId"] for p in store.profiles()] == left


def test_tx_profile_ends_with_transaction_and_profiles_persist(tmp_path: Path) -> None:
    """§3.13.2 TxProfile lives as long as its transaction; the others survive a restart."""
    path = tmp_path / "s.db"
    store = ProfileStore(open_db(path), active_tx=lambda c: True)
    store.set(1, profile(1, "TxProfile", [(0, 8)]), T0)
    store.set(0, profile(2, "TxDefaultProfile", [(0, 16)]), T0)
    store = ProfileStore(open_db(path))
    assert store.limit(1, T0) == 8
    assert store.transaction_ended(1) == 1
    assert store.limit(1, T0) == 16
    assert ProfileStore(open_db(path)).limit(1, T0) == 16


def test_prune_drops_profiles_past_valid_to(store: ProfileStore) -> None:
    """Profiles past validTo are dead weight and can be pruned."""
    store.set(1, profile(1, "TxDefaultProfile", [(0, 8)], validTo=format_datetime(T0 + 60)), T0)
    assert store.prune(T0 + 30) == 0
    assert store.prune(T0 + 60) == 1


def _validate_composite(schedule: dict[str, Any]) -> None:
    validator = get_validator(3, "GetCompositeSchedule", "1.6", parse_float=Decimal)
    payload = {"status": "Accepted", "connectorId": 1, "chargingSchedule": schedule}
    validator.validate(json_round_trip(payload))


def json_round_trip(payload: dict[str, Any]) -> Any:
    return json.loads(json.dumps(payload), parse_float=Decimal)


def test_composite_schedule_5_7(store: ProfileStore) -> None:
    """§5.7: the combined limit over the requested duration, valid against the 1.6 schema."""
    store.set(0, profile(1, "ChargePointMaxProfile", [(0, 20), (1800, 14)]), T0)
    store.set(1, profile(2, "TxDefaultProfile", [(0, 11040), (3600, 22080)], unit="W"), T0)
    store.set(1, profile(3, "TxProfile", [(0, 10)], duration=600, stack=1), T0)
    schedule = store.composite_schedule(1, 7200, T0, "A")
    assert schedule is not None
    _validate_composite(schedule)
    assert schedule["startSchedule"] == MIDNIGHT
    assert schedule["duration"] == 7200
    assert [(p["startPeriod"], p["limit"]) for p in schedule["chargingSchedulePeriod"]] == [
        (0, 10),  # TxProfile for its 600 s
        (600, 16),  # TxDefaultProfile: 11040 W = 16 A, under the 20 A cap
        (1800, 14),  # the cap drops to 14 A; at 3600 s 32 A is still capped: merged
    ]
    watts = store.composite_schedule(1, 7200, T0, "W")
    assert watts is not None
    _validate_composite(watts)
    assert watts["chargingSchedulePeriod"][0]["limit"] == pytest.approx(10 * 230 * 3)


def test_composite_schedule_edges_5_7(store: ProfileStore) -> None:
    """No profile: None (Rejected); connector 0 is the station maximum; bad unit: None."""
    assert store.composite_schedule(1, 3600, T0) is None
    store.set(0, profile(1, "ChargePointMaxProfile", [(0, 40)], duration=1800), T0)
    store.set(1, profile(2, "TxDefaultProfile", [(0, 16)]), T0)
    station = store.composite_schedule(0, 3600, T0 + 0.4)
    assert station is not None
    _validate_composite(station)
    # After the station profile's duration nothing limits: the port maximum is reported.
    assert [(p["startPeriod"], p["limit"]) for p in station["chargingSchedulePeriod"]] == [
        (0, 40),
        (1800, 32),
    ]
    assert store.composite_schedule(1, 3600, T0, "kW") is None
    assert store.composite_schedule(9, 3600, T0) is None
