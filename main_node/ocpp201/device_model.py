"""The OCPP 2.0.1 device model: standard components and variables, persisted (Part 1 / Part 2
section B "Provisioning", appendix "Referenced Components and Variables").

Theory of operation: `catalog()` lists every variable the station reports, as data (component,
EVSE/connector, variable, instance, type, mutability, default). `DeviceModel` answers
GetVariables / SetVariables (B06 / B05) and builds base reports (B07): a value the CSMS set is
kept in SQLite and wins over the default; a few read-only values are live facts (AvailabilityState,
list entries) supplied by a callback. Pure apart from its own table; no I/O besides SQLite.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from main_node.ocpp.db import transaction

__all__ = [
    "MEASURANDS",
    "TX_POINTS",
    "DeviceModel",
    "VarKey",
    "VarSpec",
    "catalog",
]

Kind = Literal[
    "integer", "decimal", "boolean", "string", "MemberList", "OptionList", "SequenceList"
]
SetStatus = Literal[
    "Accepted", "Rejected", "UnknownComponent", "UnknownVariable", "NotSupportedAttributeType"
]

MEASURANDS = (
    "Energy.Active.Import.Register",
    "Power.Active.Import",
    "Current.Import",
    "Voltage",
    "Frequency",
    "Temperature",
    "Power.Factor",
)
# TxStartPoint / TxStopPoint values this station can detect (E01, 2.0.1 Part 2 section E).
TX_POINTS = ("EVConnected", "Authorized", "PowerPathClosed", "EnergyTransfer")


@dataclass(frozen=True)
class VarKey:
    """Which variable: component (+ EVSE / connector) and variable (+ instance)."""

    component: str
    variable: str
    evse: int | None = None
    connector: int | None = None
    instance: str | None = None


@dataclass(frozen=True)
class VarSpec:
    key: VarKey
    kind: Kind
    default: str
    writable: bool = False
    values: tuple[str, ...] = ()  # OptionList / MemberList choices
    unit: str | None = None
    minimum: int = 0
    write_only: bool = False  # never read back (BasicAuthPassword)


def _rw(comp: str, var: str, kind: Kind, default: str, **kw: Any) -> VarSpec:
    instance = kw.pop("instance", None)
    return VarSpec(VarKey(comp, var, instance=instance), kind, default, True, **kw)


def _ro(comp: str, var: str, kind: Kind, default: str, **kw: Any) -> VarSpec:
    instance = kw.pop("instance", None)
    return VarSpec(VarKey(comp, var, instance=instance), kind, default, False, **kw)


def catalog(
    evses: Iterable[int],
    *,
    heartbeat_s: int = 300,
    sample_s: int = 60,
    security_profile: int = 0,
    station_id: str = "",
    vendor: str = "",
    model: str = "",
) -> list[VarSpec]:
    """Every variable the station reports; defaults from the station config."""
    m = ",".join(MEASURANDS[:4])
    energy = MEASURANDS[0]
    specs = [
        # Part 2 appendix 2: OCPPCommCtrlr
        _rw("OCPPCommCtrlr", "HeartbeatInterval", "integer", str(heartbeat_s), unit="s"),
        _ro("OCPPCommCtrlr", "MessageTimeout", "integer", "30", instance="Default", unit="s"),
        _rw("OCPPCommCtrlr", "MessageAttempts", "integer", "3", instance="TransactionEvent"),
        _rw(
            "OCPPCommCtrlr",
            "MessageAttemptInterval",
            "integer",
            "60",
            instance="TransactionEvent",
            unit="s",
        ),
        _ro("OCPPCommCtrlr", "NetworkConfigurationPriority", "SequenceList", "0"),
        _rw("OCPPCommCtrlr", "NetworkProfileConnectionAttempts", "integer", "3"),
        _rw("OCPPCommCtrlr", "OfflineThreshold", "integer", "60", unit="s"),
        _rw("OCPPCommCtrlr", "ResetRetries", "integer", "2"),
        _ro("OCPPCommCtrlr", "FileTransferProtocols", "MemberList", "HTTP,HTTPS,FTP"),
        _rw("OCPPCommCtrlr", "UnlockOnEVSideDisconnect", "boolean", "true"),
        _rw("OCPPCommCtrlr", "WebSocketPingInterval", "integer", "60", unit="s"),
        # TxCtrlr (E)
        _rw("TxCtrlr", "EVConnectionTimeOut", "integer", "60", unit="s"),
        _rw("TxCtrlr", "StopTxOnEVSideDisconnect", "boolean", "true"),
        _rw("TxCtrlr", "StopTxOnInvalidId", "boolean", "true"),
        _rw("TxCtrlr", "TxStartPoint", "MemberList", "PowerPathClosed", values=TX_POINTS),
        _rw("TxCtrlr", "TxStopPoint", "MemberList", "EVConnected,Authorized", values=TX_POINTS),
        # SampledDataCtrlr (J02)
        _rw("SampledDataCtrlr", "Enabled", "boolean", "true"),
        _rw("SampledDataCtrlr", "TxStartedMeasurands", "MemberList", energy, values=MEASURANDS),
        _rw("SampledDataCtrlr", "TxUpdatedMeasurands", "MemberList", m, values=MEASURANDS),
        _rw("SampledDataCtrlr", "TxUpdatedInterval", "integer", str(sample_s), unit="s"),
        _rw("SampledDataCtrlr", "TxEndedMeasurands", "MemberList", energy, values=MEASURANDS),
        _rw("SampledDataCtrlr", "TxEndedInterval", "integer", "0", unit="s"),
        # AlignedDataCtrlr (J01)
        _rw("AlignedDataCtrlr", "Enabled", "boolean", "true"),
        _rw("AlignedDataCtrlr", "Measurands", "MemberList", energy, values=MEASURANDS),
        _rw("AlignedDataCtrlr", "Interval", "integer", "0", unit="s"),
        _rw("AlignedDataCtrlr", "TxEndedMeasurands", "MemberList", energy, values=MEASURANDS),
        _rw("AlignedDataCtrlr", "TxEndedInterval", "integer", "0", unit="s"),
        # AuthCtrlr (C)
        _rw("AuthCtrlr", "Enabled", "boolean", "true"),
        _rw("AuthCtrlr", "AuthorizeRemoteStart", "boolean", "false"),
        _rw("AuthCtrlr", "LocalAuthorizeOffline", "boolean", "true"),
        _rw("AuthCtrlr", "LocalPreAuthorize", "boolean", "true"),
        _rw("AuthCtrlr", "OfflineTxForUnknownIdEnabled", "boolean", "false"),
        _rw("AuthCacheCtrlr", "Enabled", "boolean", "true"),
        # LocalAuthListCtrlr (D)
        _rw("LocalAuthListCtrlr", "Enabled", "boolean", "true"),
        _ro("LocalAuthListCtrlr", "Entries", "integer", "0"),
        _ro("LocalAuthListCtrlr", "ItemsPerMessage", "integer", "500"),
        _ro("LocalAuthListCtrlr", "BytesPerMessage", "integer", "65536"),
        # SmartChargingCtrlr (K)
        _rw("SmartChargingCtrlr", "Enabled", "boolean", "true"),
        _ro("SmartChargingCtrlr", "Entries", "integer", "0", instance="ChargingProfiles"),
        _rw("SmartChargingCtrlr", "LimitChangeSignificance", "decimal", "0.1"),
        _ro("SmartChargingCtrlr", "PeriodsPerSchedule", "integer", "24"),
        _ro("SmartChargingCtrlr", "ProfileStackLevel", "integer", "8"),
        _ro("SmartChargingCtrlr", "RateUnit", "MemberList", "A,W"),
        # SecurityCtrlr (A)
        # SecurityProfile and BasicAuthPassword are written through the shared profile core
        # (`Security201`, the `write` callback); SecurityProfile and the entries are live.
        _rw("SecurityCtrlr", "SecurityProfile", "integer", str(security_profile)),
        _rw("SecurityCtrlr", "BasicAuthPassword", "string", "", write_only=True),
        _ro("SecurityCtrlr", "Identity", "string", station_id),
        _rw("SecurityCtrlr", "OrganizationName", "string", vendor),
        _ro("SecurityCtrlr", "CertificateEntries", "integer", "0"),
        _ro("SecurityCtrlr", "MaxCertificateChainSize", "integer", "10000"),
        _rw("SecurityCtrlr", "CertSigningWaitMinimum", "integer", "60", unit="s"),
        _rw("SecurityCtrlr", "CertSigningRepeatTimes", "integer", "3"),
        # DeviceDataCtrlr (B)
        _ro("DeviceDataCtrlr", "ItemsPerMessage", "integer", "50", instance="GetReport"),
        _ro("DeviceDataCtrlr", "ItemsPerMessage", "integer", "50", instance="GetVariables"),
        _ro("DeviceDataCtrlr", "ItemsPerMessage", "integer", "50", instance="SetVariables"),
        _ro("DeviceDataCtrlr", "BytesPerMessage", "integer", "65536", instance="GetReport"),
        _ro("DeviceDataCtrlr", "BytesPerMessage", "integer", "65536", instance="GetVariables"),
        _ro("DeviceDataCtrlr", "BytesPerMessage", "integer", "65536", instance="SetVariables"),
        # ChargingStation
        _ro("ChargingStation", "AvailabilityState", "OptionList", "Available"),
        _ro("ChargingStation", "Model", "string", model),
        _ro("ChargingStation", "VendorName", "string", vendor),
    ]
    for evse in sorted(evses):
        specs.append(VarSpec(VarKey("EVSE", "AvailabilityState", evse), "OptionList", "Available"))
        specs.append(VarSpec(VarKey("EVSE", "Available", evse), "boolean", "true"))
        specs.append(
            VarSpec(VarKey("Connector", "AvailabilityState", evse, 1), "OptionList", "Available")
        )
        specs.append(VarSpec(VarKey("Connector", "ConnectorType", evse, 1), "string", "cType2"))
    return specs


_TABLE = """
CREATE TABLE IF NOT EXISTS ocpp201_variables (
    component TEXT NOT NULL,
    evse INTEGER NOT NULL,
    connector INTEGER NOT NULL,
    variable TEXT NOT NULL,
    instance TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (component, evse, connector, variable, instance)
)
"""


def _row_key(key: VarKey) -> tuple[str, int, int, str, str]:
    return (key.component, key.evse or 0, key.connector or 0, key.variable, key.instance or "")


def normalise(spec: VarSpec, value: str) -> str | None:
    """The value as stored, or None when it is no value of the variable's type."""
    text = value.strip()
    if spec.kind == "integer":
        try:
            number = int(text)
        except ValueError:
            return None
        return str(number) if spec.minimum <= number <= 2**31 - 1 else None
    if spec.kind == "decimal":
        try:
            decimal = float(text)
        except ValueError:
            return None
        return text if 0 <= decimal < 1e9 else None
    if spec.kind == "boolean":
        lowered = text.lower()
        return lowered if lowered in ("true", "false") else None
    if spec.kind in ("MemberList", "SequenceList"):
        items = [i.strip() for i in text.split(",") if i.strip()]
        if not items or (spec.values and any(i not in spec.values for i in items)):
            return None
        return ",".join(items)
    if spec.kind == "OptionList":
        return text if not spec.values or text in spec.values else None
    return text if len(text) <= 1000 else None


class DeviceModel:
    """The variables, their persisted values and the live facts (B05, B06, B07)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        specs: Iterable[VarSpec],
        live: Callable[[VarKey], str | None] = lambda _key: None,
        write: Callable[[VarKey, str], SetStatus | None] = lambda _key, _value: None,
    ) -> None:
        self._conn = conn
        with transaction(conn):
            conn.execute(_TABLE)
        self._specs = {s.key: s for s in specs}
        self._components = {(k.component, k.evse, k.connector) for k in self._specs}
        self._names = {k.component for k in self._specs}
        self._live = live
        self._write = write  # a variable another part owns: its status, else None
        self._values: dict[VarKey, str] = {}
        for comp, evse, conn_id, var, inst, value in conn.execute(
            "SELECT component, evse, connector, variable, instance, value FROM ocpp201_variables"
        ):
            key = VarKey(comp, var, evse or None, conn_id or None, inst or None)
            if key in self._specs:
                self._values[key] = str(value)

    def spec(self, key: VarKey) -> VarSpec | None:
        return self._specs.get(key)

    def value(self, key: VarKey) -> str:
        """The Actual value (a live fact, the persisted value, else the default)."""
        live = self._live(key)
        if live is not None:
            return live
        stored = self._values.get(key)
        return stored if stored is not None else self._specs[key].default

    def int_value(self, component: str, variable: str, instance: str | None = None) -> int:
        return int(float(self.value(VarKey(component, variable, instance=instance))))

    def bool_value(self, component: str, variable: str) -> bool:
        return self.value(VarKey(component, variable)) == "true"

    def list_value(self, component: str, variable: str) -> list[str]:
        text = self.value(VarKey(component, variable))
        return [i for i in text.split(",") if i]

    def _unknown(self, key: VarKey) -> str | None:
        if key in self._specs:
            return None
        if (key.component, key.evse, key.connector) not in self._components:
            return "UnknownComponent"
        return "UnknownVariable"

    def get(self, key: VarKey, attribute: str = "Actual") -> tuple[str, str | None]:
        """GetVariables (B06): (attributeStatus, value)."""
        unknown = self._unknown(key)
        if unknown is not None:
            return unknown, None
        if attribute != "Actual":
            return "NotSupportedAttributeType", None
        if self._specs[key].write_only:
            return "Rejected", None  # B06: a WriteOnly variable is never read back
        return "Accepted", self.value(key)

    def set(self, key: VarKey, value: str, attribute: str = "Actual") -> SetStatus:
        """SetVariables (B05): persist a writable variable's new value."""
        unknown = self._unknown(key)
        if unknown == "UnknownComponent":
            return "UnknownComponent"
        if unknown == "UnknownVariable":
            return "UnknownVariable"
        if attribute != "Actual":
            return "NotSupportedAttributeType"
        spec = self._specs[key]
        owned = self._write(key, value) if spec.writable else None
        if owned is not None:
            return owned
        stored = normalise(spec, value) if spec.writable else None
        if stored is None:
            return "Rejected"
        with transaction(self._conn):
            self._conn.execute(
                "INSERT OR REPLACE INTO ocpp201_variables VALUES (?,?,?,?,?,?)",
                (*_row_key(key), stored),
            )
        self._values[key] = stored
        return "Accepted"

    def report(self, base: str) -> Iterator[dict[str, Any]]:
        """ReportDataType entries for GetBaseReport (B07): Full, Configuration or Summary."""
        for key, spec in self._specs.items():
            if base == "ConfigurationInventory" and not spec.writable:
                continue
            if base == "SummaryInventory" and key.variable != "AvailabilityState":
                continue
            component: dict[str, Any] = {"name": key.component}
            if key.evse is not None:
                evse: dict[str, Any] = {"id": key.evse}
                if key.connector is not None:
                    evse["connectorId"] = key.connector
                component["evse"] = evse
            variable: dict[str, Any] = {"name": key.variable}
            if key.instance is not None:
                variable["instance"] = key.instance
            characteristics: dict[str, Any] = {"dataType": spec.kind, "supportsMonitoring": False}
            if spec.values:
                characteristics["valuesList"] = ",".join(spec.values)
            if spec.unit:
                characteristics["unit"] = spec.unit
            attribute: dict[str, Any] = {"type": "Actual"}
            if spec.write_only:
                attribute["mutability"] = "WriteOnly"  # B07: no value reported
            else:
                attribute["value"] = self.value(key)[:2500]
                attribute["mutability"] = "ReadWrite" if spec.writable else "ReadOnly"
            attribute.update(persistent=True, constant=False)
            yield {
                "component": component,
                "variable": variable,
                "variableAttribute": [attribute],
                "variableCharacteristics": characteristics,
            }
