"""Lay out a simulated station on one host: state folder, PKI, signing key, board configs.

Pure file generation (no processes): `chargeport sim` calls `prepare()` and then supervises
`chargeport main` and three `chargeport satellite` processes with the files it wrote.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SimLayout", "prepare", "toml_value"]

STATION_ID = "SIM-STATION"
MAIN_SERIAL = "MAIN-0001"


def toml_value(value: object) -> str:
    """A TOML literal for str/bool/int/float/list values (json strings are valid TOML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML literal for {value!r}")


def _table(name: str, values: Mapping[str, object], array: bool = False) -> str:
    head = f"[[{name}]]" if array else f"[{name}]"
    lines = [head] + [f"{k} = {toml_value(v)}" for k, v in values.items() if v is not None]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class SimLayout:
    state_dir: Path
    main_config: Path
    satellite_configs: dict[str, Path]  # serial -> config
    pki_dir: Path
    signing_key: Path
    logs: Path


def satellite_serial(index: int, run_id: str) -> str:
    return f"SAT-{index:04d}-{run_id}"


def _run_id(state_dir: Path) -> str:
    """A short id per state folder, kept with it: two sims on one host advertise different
    serials over mDNS (same serials would be reported as duplicates and cross-wired)."""
    path = state_dir / "run-id"
    if path.exists():
        return path.read_text().strip()
    run_id = secrets.token_hex(2)
    path.write_text(run_id + "\n")
    return run_id


def prepare(
    state_dir: Path,
    *,
    satellites: int,
    csms_url: str,
    dashboard_port: int,
    operator_password: str,
    scenarios: dict[int, Path],
    mqtt: tuple[str, int] | None,
    grace_period_s: float,
    sample_rate_hz: int = 10_000,
    station_id: str = STATION_ID,
    ocpp_version: str = "1.6",
) -> SimLayout:
    """Write PKI, firmware signing key and one config per board into `state_dir`."""
    from chargeport import bundle, pki
    from main_node.dashboard_auth import hash_password

    state_dir.mkdir(parents=True, exist_ok=True)
    run_id = _run_id(state_dir)
    serials = [satellite_serial(i + 1, run_id) for i in range(satellites)]
    pki_dir = state_dir / "pki"
    pki.init_pki(pki_dir, station_id, serials)  # keeps what a --state-dir already has
    fw_dir = state_dir / "firmware-keys"
    signing_key = fw_dir / "signing.key"
    if not signing_key.exists():
        fw_dir.mkdir(parents=True, exist_ok=True)
        bundle.generate_keypair(signing_key)
    public_key = signing_key.with_name(signing_key.name + ".pub")

    link = {
        "pki_dir": str(pki_dir),
        "mdns": True,
        "mdns_interfaces": ["127.0.0.1"],
        "grace_period_s": grace_period_s,
    }
    firmware = {"trusted_keys": [str(public_key)]}

    main_dir = state_dir / "main"
    main_text = _table(
        "station",
        {
            "id": station_id,
            "serial": MAIN_SERIAL,
            "state_dir": str(main_dir),
            "max_satellites": max(3, satellites),
        },
    )
    main_text += _table(
        "port",
        {
            "scenario": str(scenarios[1]) if 1 in scenarios else None,
            "sample_rate_hz": sample_rate_hz,
            "meter_signing": True,  # every board signs its own readings (OCMF), as deployed
        },
    )
    main_text += _table("link", link)
    for i, serial in enumerate(serials):
        main_text += _table("satellites", {"serial": serial, "connector": i + 2}, array=True)
    main_text += _table(
        "ocpp",
        {"csms_url": csms_url, "meter_value_sample_interval_s": 10, "version": ocpp_version},
    )
    # Only the password's hash goes into the file (the sim prints the password itself).
    password_hash = hash_password(operator_password) if operator_password else None
    main_text += _table(
        "dashboard", {"port": dashboard_port, "operator_password_hash": password_hash}
    )
    if mqtt is not None:
        # The sim is the operator's own playground: its MQTT inputs are on.
        main_text += _table(
            "mqtt", {"host": mqtt[0], "port": mqtt[1], "commands": True, "mains": True}
        )
    main_text += _table("firmware", firmware)
    main_config = state_dir / "main.toml"
    pki.write_secret(main_config, main_text)  # 0600: it may hold credentials

    satellite_configs: dict[str, Path] = {}
    for i, serial in enumerate(serials):
        connector = i + 2
        text = _table("board", {"serial": serial, "state_dir": str(state_dir / serial.lower())})
        text += _table(
            "port",
            {
                "scenario": str(scenarios[connector]) if connector in scenarios else None,
                "sample_rate_hz": sample_rate_hz,
                "meter_signing": True,
            },
        )
        text += _table("link", link)
        text += _table("agent", {"listen": "127.0.0.1:0"})
        text += _table("firmware", firmware)
        path = state_dir / f"{serial.lower()}.toml"
        path.write_text(text)
        satellite_configs[serial] = path

    return SimLayout(
        state_dir=state_dir,
        main_config=main_config,
        satellite_configs=satellite_configs,
        pki_dir=pki_dir,
        signing_key=signing_key,
        logs=state_dir / "logs",
    )
