"""OCPP 1.6 configuration keys (§9.1 Core, §9.2 LocalAuthList, §9.3 Reservation, §9.4 Smart
Charging): types, read-only flags, validation, persistence; GetConfiguration (§5.8) and
ChangeConfiguration (§5.3) answers.

Read-only keys come from the constructor (`defaults`, `number_of_connectors`) and are never
persisted; read-write keys changed by the CSMS are stored and win over defaults after a
restart.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from main_node.ocpp.db import StoreError, ensure_schema, transaction

__all__ = [
    "FEATURE_PROFILES",
    "MEASURANDS",
    "STANDARD_KEYS",
    "ChangeStatus",
    "ConfigStore",
    "KeyHook",
    "KeySpec",
]

ChangeStatus = Literal["Accepted", "Rejected", "RebootRequired", "NotSupported"]
Kind = Literal["int", "bool", "measurands", "profiles", "str"]

# §7.31 Measurand.
MEASURANDS: tuple[str, ...] = (
    "Current.Export",
    "Current.Import",
    "Current.Offered",
    "Energy.Active.Export.Register",
    "Energy.Active.Import.Register",
    "Energy.Reactive.Export.Register",
    "Energy.Reactive.Import.Register",
    "Energy.Active.Export.Interval",
    "Energy.Active.Import.Interval",
    "Energy.Reactive.Export.Interval",
    "Energy.Reactive.Import.Interval",
    "Frequency",
    "Power.Active.Export",
    "Power.Active.Import",
    "Power.Factor",
    "Power.Offered",
    "Power.Reactive.Export",
    "Power.Reactive.Import",
    "RPM",
    "SoC",
    "Temperature",
    "Voltage",
)

# §3 feature profile names as SupportedFeatureProfiles reports them.
FEATURE_PROFILES: tuple[str, ...] = (
    "Core",
    "FirmwareManagement",
    "LocalAuthListManagement",
    "Reservation",
    "SmartCharging",
    "RemoteTrigger",
)


@dataclass(frozen=True)
class KeySpec:
    """One configuration key: name, value kind, default, access, and the CSL length key."""

    name: str
    kind: Kind
    default: str
    readonly: bool = False
    reboot_required: bool = False
    max_length_key: str | None = None  # the *MaxLength key bounding a CSL value


def _rw(name: str, kind: Kind, default: str, max_length_key: str | None = None) -> KeySpec:
    return KeySpec(name, kind, default, readonly=False, max_length_key=max_length_key)


def _ro(name: str, kind: Kind, default: str) -> KeySpec:
    return KeySpec(name, kind, default, readonly=True)


STANDARD_KEYS: tuple[KeySpec, ...] = (
    # §9.1 Core
    _rw("AllowOfflineTxForUnknownId", "bool", "false"),
    _rw("AuthorizationCacheEnabled", "bool", "true"),
    _rw("AuthorizeRemoteTxRequests", "bool", "false"),
    _rw("ClockAlignedDataInterval", "int", "0"),
    _rw("ConnectionTimeOut", "int", "60"),
    _rw("ConnectorPhaseRotation", "str", "0.RST"),
    _ro("ConnectorPhaseRotationMaxLength", "int", "5"),
    _ro("GetConfigurationMaxKeys", "int", "100"),
    _rw("HeartbeatInterval", "int", "300"),
    _rw("LocalAuthorizeOffline", "bool", "true"),
    _rw("LocalPreAuthorize", "bool", "false"),
    _rw(
        "MeterValuesAlignedData",
        "measurands",
        "Energy.Active.Import.Register",
        "MeterValuesAlignedDataMaxLength",
    ),
    _ro("MeterValuesAlignedDataMaxLength", "int", "22"),
    _rw(
        "MeterValuesSampledData",
        "measurands",
        "Energy.Active.Import.Register",
        "MeterValuesSampledDataMaxLength",
    ),
    _ro("MeterValuesSampledDataMaxLength", "int", "22"),
    _rw("MeterValueSampleInterval", "int", "60"),
    _rw("MinimumStatusDuration", "int", "1"),  # §4.9: statuses held < 1 s are not sent
    _ro("NumberOfConnectors", "int", "1"),
    _rw("ResetRetries", "int", "3"),
    _rw("StopTransactionOnEVSideDisconnect", "bool", "true"),
    _rw("StopTransactionOnInvalidId", "bool", "true"),
    _rw("StopTxnAlignedData", "measurands", "", "StopTxnAlignedDataMaxLength"),
    _ro("StopTxnAlignedDataMaxLength", "int", "22"),
    _rw("StopTxnSampledData", "measurands", "", "StopTxnSampledDataMaxLength"),
    _ro("StopTxnSampledDataMaxLength", "int", "22"),
    _ro("SupportedFeatureProfiles", "profiles", ",".join(FEATURE_PROFILES)),
    _ro("SupportedFeatureProfilesMaxLength", "int", "6"),
    _rw("TransactionMessageAttempts", "int", "3"),
    _rw("TransactionMessageRetryInterval", "int", "60"),
    _rw("UnlockConnectorOnEVSideDisconnect", "bool", "true"),
    _rw("WebSocketPingInterval", "int", "60"),
    # §9.2 Local Auth List Management
    _rw("LocalAuthListEnabled", "bool", "true"),
    _ro("LocalAuthListMaxLength", "int", "1000"),
    _ro("SendLocalListMaxLength", "int", "500"),
    # §9.3 Reservation
    _ro("ReserveConnectorZeroSupported", "bool", "true"),
    # §9.4 Smart Charging
    _ro("ChargeProfileMaxStackLevel", "int", "8"),
    _ro("ChargingScheduleAllowedChargingRateUnit", "str", "Current,Power"),
    _ro("ChargingScheduleMaxPeriods", "int", "24"),
    _ro("ConnectorSwitch3to1PhaseSupported", "bool", "false"),
    _ro("MaxChargingProfilesInstalled", "int", "32"),
    # Vendor key (1.6 has none for this; 2.0.1's SampledDataCtrlr.SignReadings): send each
    # board's OCMF records as SignedData (Transaction.Begin / .End) when the board signs.
    _rw("SampledDataSignReadings", "bool", "true"),
)

_VALUE_MAX_LENGTH = 500  # §5.8 KeyValue.value is CiString500


class KeyHook(Protocol):
    """A key whose value lives elsewhere (the security extension's SecurityProfile and
    AuthorizationKey): it reads and changes it with its own rules."""

    def read(self) -> str | None:
        """The value GetConfiguration shows; None for a write-only key (no value shown)."""
        ...

    def write(self, value: str) -> ChangeStatus:
        """ChangeConfiguration of the key."""
        ...


class ConfigStore:
    """The charge point's configuration keys, persisted in the station database."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        defaults: dict[str, str] | None = None,
        *,
        number_of_connectors: int | None = None,
        measurands: Iterable[str] | None = None,
        extra_keys: Iterable[KeySpec] = (),
    ) -> None:
        ensure_schema(conn)
        self._conn = conn
        self._specs: dict[str, KeySpec] = {s.name: s for s in (*STANDARD_KEYS, *extra_keys)}
        self._measurands = frozenset(MEASURANDS if measurands is None else measurands)
        self._defaults = {s.name: s.default for s in self._specs.values()}
        merged = dict(defaults or {})
        if number_of_connectors is not None:
            merged["NumberOfConnectors"] = str(number_of_connectors)
        for key, value in merged.items():
            spec = self._specs.get(key)
            if spec is None:
                raise StoreError(f"unknown OCPP configuration key in defaults: {key!r}")
            normal = self._normalise(spec, str(value))
            if normal is None:
                raise StoreError(f"invalid default for OCPP configuration key {key}: {value!r}")
            self._defaults[key] = normal
        self._values = dict(self._defaults)
        self._hooks: dict[str, KeyHook] = {}
        for key, value in conn.execute("SELECT key, value FROM config_values"):
            spec = self._specs.get(key)
            # A stored value from an older build that no longer validates falls back silently
            # to the default rather than blocking boot.
            if spec is not None and not spec.readonly:
                normal = self._normalise(spec, value)
                if normal is not None:
                    self._values[key] = normal

    # ---------------------------------------------------------------- §5.8 / §5.3

    def get(self, keys: list[str] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
        """GetConfiguration: (configurationKey entries, unknownKey); no keys means all."""
        names = list(self._specs) if not keys else keys
        known: list[dict[str, Any]] = []
        unknown: list[str] = []
        for name in names:
            spec = self._specs.get(name)
            if spec is None:
                unknown.append(name)
            elif name in self._hooks:
                entry: dict[str, Any] = {"key": name, "readonly": spec.readonly}
                shown = self._hooks[name].read()
                if shown is not None:
                    entry["value"] = shown
                known.append(entry)
            else:
                known.append({"key": name, "readonly": spec.readonly, "value": self._values[name]})
        return known, unknown

    def change(self, key: str, value: str) -> ChangeStatus:
        """ChangeConfiguration: validate, persist, and say whether it took effect."""
        spec = self._specs.get(key)
        if spec is None:
            return "NotSupported"
        if spec.readonly:
            return "Rejected"
        hook = self._hooks.get(key)
        if hook is not None:
            if not isinstance(value, str) or len(value) > _VALUE_MAX_LENGTH:
                return "Rejected"
            return hook.write(value)
        normal = self._normalise(spec, value)
        if normal is None:
            return "Rejected"
        with transaction(self._conn):
            self._conn.execute(
                "INSERT OR REPLACE INTO config_values(key, value) VALUES (?, ?)", (key, normal)
            )
        self._values[key] = normal
        return "RebootRequired" if spec.reboot_required else "Accepted"

    def attach(self, spec: KeySpec, hook: KeyHook | None = None) -> None:
        """Add a key after construction (the security extension's); with `hook`, its value and
        changes are the hook's, otherwise it is stored like the standard keys."""
        self._specs[spec.name] = spec
        self._defaults[spec.name] = spec.default
        self._values[spec.name] = spec.default
        if hook is not None:
            self._hooks[spec.name] = hook
            return
        row = self._conn.execute(
            "SELECT value FROM config_values WHERE key = ?", (spec.name,)
        ).fetchone()
        if row is not None and not spec.readonly:
            normal = self._normalise(spec, row[0])
            if normal is not None:
                self._values[spec.name] = normal

    def value(self, key: str) -> str:
        """The raw string value of a known key."""
        hook = self._hooks.get(key)
        if hook is not None:
            return hook.read() or ""
        if key not in self._values:
            raise StoreError(f"unknown OCPP configuration key: {key!r}")
        return self._values[key]

    def spec(self, key: str) -> KeySpec | None:
        """The definition of `key`, or None when unknown."""
        return self._specs.get(key)

    # ---------------------------------------------------------------- typed accessors

    def int_value(self, key: str) -> int:
        """A key of kind int."""
        return int(self.value(key))

    def bool_value(self, key: str) -> bool:
        """A key of kind bool."""
        return self.value(key) == "true"

    def list_value(self, key: str) -> list[str]:
        """A comma-separated list key, split."""
        return [item for item in self.value(key).split(",") if item]

    def heartbeat_interval(self) -> int:
        """HeartbeatInterval, seconds (§9.1.14)."""
        return self.int_value("HeartbeatInterval")

    def meter_value_sample_interval(self) -> int:
        """MeterValueSampleInterval, seconds; 0 = no sampled data (§9.1.20)."""
        return self.int_value("MeterValueSampleInterval")

    def clock_aligned_data_interval(self) -> int:
        """ClockAlignedDataInterval, seconds; 0 = no clock-aligned data (§9.1.5)."""
        return self.int_value("ClockAlignedDataInterval")

    def meter_values_sampled_data(self) -> list[str]:
        """MeterValuesSampledData measurands."""
        return self.list_value("MeterValuesSampledData")

    def meter_values_aligned_data(self) -> list[str]:
        """MeterValuesAlignedData measurands."""
        return self.list_value("MeterValuesAlignedData")

    def stop_txn_sampled_data(self) -> list[str]:
        """StopTxnSampledData measurands."""
        return self.list_value("StopTxnSampledData")

    def stop_txn_aligned_data(self) -> list[str]:
        """StopTxnAlignedData measurands."""
        return self.list_value("StopTxnAlignedData")

    def transaction_message_attempts(self) -> int:
        """TransactionMessageAttempts (§4.10)."""
        return self.int_value("TransactionMessageAttempts")

    def transaction_message_retry_interval(self) -> int:
        """TransactionMessageRetryInterval, seconds (§4.10)."""
        return self.int_value("TransactionMessageRetryInterval")

    def authorize_remote_tx_requests(self) -> bool:
        """AuthorizeRemoteTxRequests (§5.11)."""
        return self.bool_value("AuthorizeRemoteTxRequests")

    def local_authorize_offline(self) -> bool:
        """LocalAuthorizeOffline."""
        return self.bool_value("LocalAuthorizeOffline")

    def local_pre_authorize(self) -> bool:
        """LocalPreAuthorize."""
        return self.bool_value("LocalPreAuthorize")

    def allow_offline_tx_for_unknown_id(self) -> bool:
        """AllowOfflineTxForUnknownId."""
        return self.bool_value("AllowOfflineTxForUnknownId")

    def authorization_cache_enabled(self) -> bool:
        """AuthorizationCacheEnabled."""
        return self.bool_value("AuthorizationCacheEnabled")

    def local_auth_list_enabled(self) -> bool:
        """LocalAuthListEnabled."""
        return self.bool_value("LocalAuthListEnabled")

    def local_auth_list_max_length(self) -> int:
        """LocalAuthListMaxLength."""
        return self.int_value("LocalAuthListMaxLength")

    def send_local_list_max_length(self) -> int:
        """SendLocalListMaxLength."""
        return self.int_value("SendLocalListMaxLength")

    def connection_timeout(self) -> int:
        """ConnectionTimeOut, seconds."""
        return self.int_value("ConnectionTimeOut")

    def reset_retries(self) -> int:
        """ResetRetries."""
        return self.int_value("ResetRetries")

    def stop_transaction_on_ev_side_disconnect(self) -> bool:
        """StopTransactionOnEVSideDisconnect."""
        return self.bool_value("StopTransactionOnEVSideDisconnect")

    def stop_transaction_on_invalid_id(self) -> bool:
        """StopTransactionOnInvalidId."""
        return self.bool_value("StopTransactionOnInvalidId")

    def unlock_connector_on_ev_side_disconnect(self) -> bool:
        """UnlockConnectorOnEVSideDisconnect."""
        return self.bool_value("UnlockConnectorOnEVSideDisconnect")

    def web_socket_ping_interval(self) -> int:
        """WebSocketPingInterval, seconds; 0 = no pings."""
        return self.int_value("WebSocketPingInterval")

    def minimum_status_duration(self) -> int:
        """MinimumStatusDuration, seconds."""
        return self.int_value("MinimumStatusDuration")

    def number_of_connectors(self) -> int:
        """NumberOfConnectors."""
        return self.int_value("NumberOfConnectors")

    def get_configuration_max_keys(self) -> int:
        """GetConfigurationMaxKeys."""
        return self.int_value("GetConfigurationMaxKeys")

    def reserve_connector_zero_supported(self) -> bool:
        """ReserveConnectorZeroSupported."""
        return self.bool_value("ReserveConnectorZeroSupported")

    def charge_profile_max_stack_level(self) -> int:
        """ChargeProfileMaxStackLevel."""
        return self.int_value("ChargeProfileMaxStackLevel")

    def charging_schedule_allowed_charging_rate_unit(self) -> list[str]:
        """ChargingScheduleAllowedChargingRateUnit as OCPP units ('A', 'W')."""
        names = {"Current": "A", "Power": "W"}
        return [names[u] for u in self.list_value("ChargingScheduleAllowedChargingRateUnit")]

    def charging_schedule_max_periods(self) -> int:
        """ChargingScheduleMaxPeriods."""
        return self.int_value("ChargingScheduleMaxPeriods")

    def max_charging_profiles_installed(self) -> int:
        """MaxChargingProfilesInstalled."""
        return self.int_value("MaxChargingProfilesInstalled")

    # ---------------------------------------------------------------- validation

    def _normalise(self, spec: KeySpec, value: str) -> str | None:
        """The stored form of `value` for `spec`, or None when it is not acceptable."""
        if not isinstance(value, str) or len(value) > _VALUE_MAX_LENGTH:
            return None
        text = value.strip()
        if spec.kind == "int":
            # §9.1: intervals, attempts and counts are non-negative integers.
            if not text.isdigit():
                return None
            return str(int(text))
        if spec.kind == "bool":
            lowered = text.lower()
            return lowered if lowered in ("true", "false") else None
        if spec.kind in ("measurands", "profiles"):
            items = [item.strip() for item in text.split(",")] if text else []
            allowed = self._measurands if spec.kind == "measurands" else frozenset(FEATURE_PROFILES)
            if any(item not in allowed for item in items) or len(set(items)) != len(items):
                return None
            if spec.max_length_key is not None:
                limit = self._defaults.get(spec.max_length_key)
                if limit is not None and len(items) > int(limit):
                    return None
            return ",".join(items)
        if spec.name == "ChargingScheduleAllowedChargingRateUnit":
            items = [item.strip() for item in text.split(",")]
            if not items or any(item not in ("Current", "Power") for item in items):
                return None
            return ",".join(items)
        return text
