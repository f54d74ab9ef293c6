"""Build the 2.0.1 session from the station config (`ocpp.version = "2.0.1"`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping

from chargeport.clock import Clock
from chargeport.config import MainConfig
from chargeport.port import ChargePort
from main_node.ocpp201.session import Options201, Session201
from system_aggregator.api import StationSystem

__all__ = ["session_from_config"]


def session_from_config(
    config: MainConfig,
    ports: Mapping[int, ChargePort],
    conn: sqlite3.Connection,
    *,
    system: StationSystem | None,
    limit_sink: Callable[[int, float | None], None],
    clock: Clock,
    on_connection: Callable[[bool], None],
    firmware_version: str,
) -> Session201:
    """The 2.0.1 edge over the same ports, database file and energy manager as 1.6."""
    ocpp = config.ocpp
    return Session201(
        Options201(
            url=ocpp.csms_url,
            station_id=config.station.id,
            vendor=ocpp.vendor,
            model=ocpp.model,
            serial=config.station.serial,
            firmware_version=firmware_version,
            basic_auth_password=ocpp.basic_auth_password,
            ca_file=ocpp.ca_file,
            backoff_max_s=ocpp.reconnect_max_backoff_s,
            heartbeat_interval_s=ocpp.heartbeat_interval_s,
            meter_value_sample_interval_s=ocpp.meter_value_sample_interval_s,
        ),
        ports,
        conn,
        system=system,
        limit_sink=limit_sink,
        clock=clock,
        on_connection=on_connection,
    )
