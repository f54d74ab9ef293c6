"""Configuration keys: OCPP 1.6 §5.8 GetConfiguration, §5.3 ChangeConfiguration, §9 keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from main_node.ocpp.config_keys import STANDARD_KEYS, ConfigStore
from main_node.ocpp.db import StoreError, open_db


@pytest.fixture
def store(tmp_path: Path) -> ConfigStore:
    return ConfigStore(open_db(tmp_path / "s.db"), number_of_connectors=4)


def test_get_all_keys_5_8(store: ConfigStore) -> None:
    """§5.8: no key requested = every key, with readonly flags; §9.1 required keys present."""
    known, unknown = store.get(None)
    assert unknown == []
    by_key = {k["key"]: k for k in known}
    assert len(by_key) == len(STANDARD_KEYS)
    for key in (
        "HeartbeatInterval",
        "MeterValueSampleInterval",
        "ClockAlignedDataInterval",
        "MeterValuesSampledData",
        "MeterValuesAlignedData",
        "StopTxnSampledData",
        "TransactionMessageAttempts",
        "TransactionMessageRetryInterval",
        "AuthorizeRemoteTxRequests",
        "LocalAuthorizeOffline",
        "LocalPreAuthorize",
        "ConnectionTimeOut",
        "ResetRetries",
        "WebSocketPingInterval",
        "LocalAuthListEnabled",
        "ChargeProfileMaxStackLevel",
    ):
        assert by_key[key]["readonly"] is False or key == "ChargeProfileMaxStackLevel"
    assert by_key["NumberOfConnectors"] == {
        "key": "NumberOfConnectors",
        "readonly": True,
        "value": "4",
    }
    assert by_key["SupportedFeatureProfiles"]["readonly"] is True
    assert "SmartCharging" in by_key["SupportedFeatureProfiles"]["value"].split(",")


def test_get_some_keys_reports_unknown_5_8(store: ConfigStore) -> None:
    """§5.8: requested keys that are not known go to unknownKey."""
    known, unknown = store.get(["HeartbeatInterval", "NoSuchKey"])
    assert [k["key"] for k in known] == ["HeartbeatInterval"]
    assert unknown == ["NoSuchKey"]


@pytest.mark.parametrize(
    ("key", "value", "status", "stored"),
    [
        ("HeartbeatInterval", "60", "Accepted", "60"),
        ("HeartbeatInterval", "0060", "Accepted", "60"),
        ("HeartbeatInterval", "-1", "Rejected", "300"),
        ("HeartbeatInterval", "1.5", "Rejected", "300"),
        ("HeartbeatInterval", "abc", "Rejected", "300"),
        ("TransactionMessageAttempts", "5", "Accepted", "5"),
        ("LocalAuthorizeOffline", "FALSE", "Accepted", "false"),
        ("LocalAuthorizeOffline", "yes", "Rejected", "true"),
        (
            "MeterValuesSampledData",
            "Energy.Active.Import.Register,Voltage",
            "Accepted",
            "Energy.Active.Import.Register,Voltage",
        ),
        (
            "MeterValuesSampledData",
            "Energy.Active.Import.Register, Current.Import",
            "Accepted",
            "Energy.Active.Import.Register,Current.Import",
        ),
        ("MeterValuesSampledData", "Voltage,Bogus", "Rejected", "Energy.Active.Import.Register"),
        ("MeterValuesSampledData", "Voltage,Voltage", "Rejected", "Energy.Active.Import.Register"),
        ("StopTxnSampledData", "", "Accepted", ""),
        # §5.3: read-only keys are Rejected, unknown keys NotSupported.
        ("NumberOfConnectors", "8", "Rejected", "4"),
        ("SupportedFeatureProfiles", "Core", "Rejected", None),
        ("NoSuchKey", "1", "NotSupported", None),
    ],
)
def test_change_configuration_5_3(
    tmp_path: Path, key: str, value: str, status: str, stored: str | None
) -> None:
    """§5.3 ChangeConfiguration: validation, and the value kept across a restart."""
    path = tmp_path / "s.db"
    assert ConfigStore(open_db(path), number_of_connectors=4).change(key, value) == status
    known, _ = ConfigStore(open_db(path), number_of_connectors=4).get([key])
    if stored is not None:
        assert known[0]["value"] == stored


def test_measurands_restricted_to_what_the_meter_has(tmp_path: Path) -> None:
    """Measurand lists are checked against what the ports can measure."""
    store = ConfigStore(
        open_db(tmp_path / "s.db"), measurands=["Energy.Active.Import.Register", "Voltage"]
    )
    assert store.change("MeterValuesAlignedData", "Voltage") == "Accepted"
    assert store.change("MeterValuesAlignedData", "SoC") == "Rejected"


def test_defaults_and_typed_accessors(tmp_path: Path) -> None:
    """Constructor defaults (from the TOML config) seed the keys; accessors are typed."""
    path = tmp_path / "s.db"
    store = ConfigStore(open_db(path), {"HeartbeatInterval": "120", "LocalPreAuthorize": "true"})
    assert store.heartbeat_interval() == 120
    assert store.local_pre_authorize() is True
    assert store.meter_values_sampled_data() == ["Energy.Active.Import.Register"]
    assert store.transaction_message_attempts() == 3
    assert store.charging_schedule_allowed_charging_rate_unit() == ["A", "W"]
    # A value changed by the CSMS wins over the default after a restart.
    store.change("HeartbeatInterval", "30")
    assert ConfigStore(open_db(path), {"HeartbeatInterval": "120"}).heartbeat_interval() == 30


@pytest.mark.parametrize("defaults", [{"NoSuchKey": "1"}, {"HeartbeatInterval": "soon"}])
def test_bad_defaults_are_refused(tmp_path: Path, defaults: dict[str, str]) -> None:
    """A typo or bad value in the defaults is an error, not a silent fallback."""
    with pytest.raises(StoreError):
        ConfigStore(open_db(tmp_path / "s.db"), defaults)
