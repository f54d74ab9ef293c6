"""Security events as log records with one stable marker, for the audit and the CSMS.

Every refusal that an audit asks about (a firmware downgrade, a forbidden transfer location, a
refused MQTT command, a failed dashboard login, an implausible board time) is logged through
`security_event`: one line `SECURITY-EVENT <kind>: <detail>` at WARNING (or ERROR) on the
`chargeport.security` logger, with the kind in `record.security_event`. A handler on that logger
can forward the events (OCA "Improved security for OCPP 1.6-J" SecurityEventNotification) without
parsing text; `grep SECURITY-EVENT` finds them in any board's log.

Kinds use the whitepaper's names where it has one (Appendix 1: `InvalidFirmwareSignature`,
`SettingSystemTime`, ...); ours are CamelCase the same way.
"""

from __future__ import annotations

import logging

__all__ = [
    "DASHBOARD_LOGIN_FAILED",
    "FIRMWARE_DOWNGRADE_REFUSED",
    "INVALID_BOARD_TIME",
    "INVALID_TRANSFER_LOCATION",
    "LOGGER_NAME",
    "MARKER",
    "MQTT_COMMAND_REFUSED",
    "MQTT_MAINS_REFUSED",
    "security_event",
]

LOGGER_NAME = "chargeport.security"
MARKER = "SECURITY-EVENT"

FIRMWARE_DOWNGRADE_REFUSED = "FirmwareDowngradeRefused"
INVALID_TRANSFER_LOCATION = "InvalidTransferLocation"
MQTT_COMMAND_REFUSED = "MqttCommandRefused"
MQTT_MAINS_REFUSED = "MqttMainsReadingRefused"
DASHBOARD_LOGIN_FAILED = "DashboardLoginFailed"
INVALID_BOARD_TIME = "InvalidBoardTime"

_log = logging.getLogger(LOGGER_NAME)


def security_event(kind: str, detail: str, *, level: int = logging.WARNING) -> None:
    """Log one security event: `SECURITY-EVENT <kind>: <detail>`, kind in `security_event`."""
    _log.log(level, "%s %s: %s", MARKER, kind, detail, extra={"security_event": kind})
