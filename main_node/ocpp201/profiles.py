"""2.0.1 charging profiles on the shared limit engine (`main_node.ocpp.smart_charging`).

The engine evaluates 1.6-shaped profiles (one schedule, ChargePointMaxProfile, integer
transactionId); a 2.0.1 ChargingProfileType (K01) maps onto it one to one for the station's
use (the first schedule; ChargingStationMaxProfile; the string transactionId as a stable
number). The original is stored beside it for GetChargingProfiles (K09).
"""

from __future__ import annotations

import zlib
from typing import Any

__all__ = ["PURPOSE_16", "profile_to_engine", "tx_number"]

PURPOSE_16 = {"ChargingStationMaxProfile": "ChargePointMaxProfile"}


def tx_number(tx_id: str) -> int:
    """A stable 31-bit number for a 2.0.1 transactionId (the engine keys TxProfiles by one)."""
    return zlib.crc32(tx_id.encode()) & 0x7FFFFFFF


def profile_to_engine(profile: dict[str, Any]) -> dict[str, Any]:
    """A 2.0.1 ChargingProfileType -> the shared engine's (1.6-shaped) profile."""
    schedule = dict(profile["chargingSchedule"][0])
    schedule.pop("id", None)
    schedule.pop("salesTariff", None)
    out: dict[str, Any] = {
        "chargingProfileId": profile["id"],
        "stackLevel": profile["stackLevel"],
        "chargingProfilePurpose": PURPOSE_16.get(
            profile["chargingProfilePurpose"], profile["chargingProfilePurpose"]
        ),
        "chargingProfileKind": profile["chargingProfileKind"],
        "chargingSchedule": schedule,
    }
    for key in ("recurrencyKind", "validFrom", "validTo"):
        if key in profile:
            out[key] = profile[key]
    if profile.get("transactionId") is not None:
        out["transactionId"] = tx_number(str(profile["transactionId"]))
    return out
