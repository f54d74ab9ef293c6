"""TOML configuration for main and satellite boards, validated on load.

Every section is a frozen dataclass; `load_config` walks the TOML against the dataclass
annotations and raises `ConfigError` with one line naming the file, the key and what is
expected. Unknown keys are errors too (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import enum
import importlib.metadata
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from chargeport.errors import ChargeportError

__all__ = [
    "AgentConfig",
    "BoardConfig",
    "ConfigError",
    "DashboardConfig",
    "EnergyConfig",
    "FirmwareConfig",
    "LinkConfig",
    "MainConfig",
    "MqttConfig",
    "OcppConfig",
    "PortConfig",
    "SatelliteConfig",
    "SatelliteEntry",
    "StationConfig",
    "from_dict",
    "load_config",
    "parse_host_port",
    "prepare_state_dir",
]

T = TypeVar("T")


class ConfigError(ChargeportError):
    """A configuration problem, phrased as one line that says what to fix."""


def parse_host_port(text: str, *, allow_any_port: bool = False) -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port); ValueError with a readable message.

    `allow_any_port`: port 0 means "any free port" (a listen address announced over mDNS)."""
    host, sep, port = text.rpartition(":")
    lowest = 0 if allow_any_port else 1
    if not sep or not host or not port.isdigit() or not lowest <= int(port) < 65536:
        raise ValueError(f"expected 'host:port', got {text!r}")
    return host.strip("[]"), int(port)


# ------------------------------------------------------------------ sections


@dataclass(frozen=True)
class PortConfig:
    """The board's own charge port (same on main and satellites)."""

    connector_type: str = "Type2Socket"
    max_current_a: float = 32.0
    phases: int = 3
    hal: str = "sim"  # "sim", "serial", or a driver installed for entry points "chargeport.hal"
    serial_device: str = ""  # MCU link device when hal = "serial"
    link_key_file: str = ""  # 32-byte AEAD key for the MCU link (hex), when hal = "serial"
    meter: Literal["internal", "modbus"] = "internal"
    meter_device: str = ""
    meter_unit: int = 1
    meter_model: str = "sdm630"  # register map: sdm630, sdm72, abb_b23, or a map file's path
    rfid_device: str = ""  # serial device of a PN532 RFID reader (HSU mode); empty = none
    sample_rate_hz: int = 10_000
    meter_interval_s: float = 1.0
    scenario: str = ""  # simulated EV scenario file (sim hal only)
    plugin_timeout_s: float = 120.0
    fallback_current_a: float = 0.0  # limit once a set_limit's valid_for has expired
    free_vend: bool = False  # charge without authorization
    meter_signing: bool = False  # OCMF-signed begin/end readings; key in the board's state_dir


@dataclass(frozen=True)
class LinkConfig:
    """The main <-> satellite link, both sides.

    Link timers are real (wall) seconds, never simulated ones: `keepalive_s`, the handshake
    timeout and `grace_period_s` measure a network, which `sim --speed N` does not speed up
    (the grace timers undo a ScaledClock's speed). `grace_period_s`: how long a satellite keeps
    charging without its main before its fail-safe stops the charge; the main waits as long
    before closing that port's session. It must cover a keepalive detection plus a reconnect,
    hence at least 2 x `keepalive_s`.
    """

    insecure: bool = False
    pki_dir: str = "pki"
    keepalive_s: float = 1.0
    grace_period_s: float = 10.0  # real seconds, >= 2 x keepalive_s (see above)
    # Heartbeat silence (real seconds) after which either side declares the other down; the
    # main's value is used by both (it travels in Hello). A SIGSTOPped peer is caught by this.
    liveness_s: float = 2.0
    handshake_timeout_s: float = 5.0
    mdns: bool = True
    mdns_interfaces: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    event_ring: int = 4096
    # Main only (issue 16): past the grace, a lost satellite's StopTransaction waits up to this
    # long (real seconds) for the board's own journaled end register and signed record instead
    # of going out with the last reading the main saw (a sent StopTransaction cannot be
    # corrected, OCPP 1.6 4.10); 0 = close at the grace.
    lost_stop_hold_s: float = 86400.0


@dataclass(frozen=True)
class SatelliteEntry:
    serial: str
    connector: int
    address: str = ""  # static "host:port" fallback; empty = mDNS only


@dataclass(frozen=True)
class StationConfig:
    id: str = "chargeport-station"
    serial: str = "MAIN-0001"
    firmware_version: str = "1.0.0"
    state_dir: str = "/var/lib/chargeport"
    max_satellites: int = 3
    local_connector: int = 1
    # Seconds after start during which a satellite not linked yet is booting, not lost: its
    # connector's status is held until it links or this ends (OCPP 1.6 section 4.9).
    boot_window_s: float = 30.0
    # A local Enable (MQTT, dashboard) may override the central system's Inoperative
    # (main_node/local_availability.py has the precedence). Off: the CSMS's word stands.
    local_enable_overrides_csms: bool = False


OCPP_VERSIONS = ("1.6", "2.0.1")


@dataclass(frozen=True)
class OcppConfig:
    csms_url: str = ""  # empty = no CSMS; the station connects to <csms_url>/<station.id>
    basic_auth_password: str = ""
    ca_file: str = ""
    vendor: str = "chargeport"
    model: str = "chargeport-4"
    heartbeat_interval_s: int = 300
    meter_value_sample_interval_s: int = 60
    reconnect_max_backoff_s: float = 30.0
    version: str = "1.6"  # "1.6" (OCPP 1.6J) or "2.0.1"


@dataclass(frozen=True)
class EnergyConfig:
    site_limit_a: float = 63.0
    min_current_a: float = 6.0
    refresh_s: float = 5.0  # re-send limits this often (they expire on the port)
    # A mains reading (MQTT or meter) older than `mains_max_age_s` is stale: the ports then
    # share `mains_fallback_a` (what the fuse allows with the building load unknown).
    mains_max_age_s: float = 30.0
    mains_fallback_a: float = 6.0
    mains_required: bool = False  # a mains meter is installed: no reading yet = stale
    # Sharing below 6 A x the guns that want current (no gun starved, no relay chatter):
    rotation_s: float = 600.0  # a paused gun takes a running gun's turn after this wait
    min_on_s: float = 300.0  # rotation never pauses a gun that ran less than this
    min_pause_s: float = 120.0  # a paused gun stays off this long (and the budget must hold)
    hysteresis_a: float = 1.0  # a paused gun resumes only with this much above the minimum
    priority: list[int] = field(default_factory=list)  # connectors served first, best first
    # PV surplus mode: the ports share what the site exports (signed grid power readings);
    # a stale or missing reading means no surplus. Phases (1 or 3) follow the surplus.
    pv_surplus: bool = False
    pv_margin_w: float = 100.0  # kept flowing to the grid so that noise does not import
    phase_switching: bool = False  # the boards have a 1/3-phase relay (hal phase_switch)
    phase_switch_min_s: float = 600.0  # at most one 1 <-> 3 phase switch per this period
    # A Modbus meter at the grid connection (the building's load, our ports included); empty
    # = none (MQTT may feed readings instead). Its register map as for port.meter_model.
    mains_meter_device: str = ""
    mains_meter_model: str = "sdm630"
    mains_meter_unit: int = 1
    mains_meter_interval_s: float = 1.0


@dataclass(frozen=True)
class MqttConfig:
    host: str = ""  # empty = no MQTT
    port: int = 1883  # 8883 is the usual port with tls = true
    prefix: str = "chargeport"
    username: str = ""  # empty = anonymous
    password: str = ""
    tls: bool = False
    ca_file: str = ""  # PEM; empty = the system's CAs (with tls = true)
    cert_file: str = ""  # optional client certificate (PEM) ...
    key_file: str = ""  # ... and its key
    tls_insecure: bool = False  # skip the broker hostname check (never in production)
    commands: bool = False  # accept connector/<n>/cmd/* (enable, disable, limit)
    mains: bool = False  # accept building mains readings on <prefix>/<station>/mains
    mains_max_a: float = 0.0  # plausible reading per phase; 0 = 2 x energy.site_limit_a


@dataclass(frozen=True)
class DashboardConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    operator_password: str = ""  # empty = read-only; prefer operator_password_hash
    # scrypt hash (`python -m main_node.dashboard_auth` prints one); the password itself is
    # then nowhere on the board
    operator_password_hash: str = ""
    tls_cert_file: str = ""  # PEM; with tls_key_file the dashboard serves https only
    tls_key_file: str = ""


@dataclass(frozen=True)
class FirmwareConfig:
    trusted_keys: list[str] = field(default_factory=list)  # ed25519 public key files (PEM)
    target: str = "chargeport-board"


@dataclass(frozen=True)
class MainConfig:
    station: StationConfig = field(default_factory=StationConfig)
    port: PortConfig = field(default_factory=PortConfig)
    link: LinkConfig = field(default_factory=LinkConfig)
    satellites: list[SatelliteEntry] = field(default_factory=list)
    ocpp: OcppConfig = field(default_factory=OcppConfig)
    energy: EnergyConfig = field(default_factory=EnergyConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    firmware: FirmwareConfig = field(default_factory=FirmwareConfig)


@dataclass(frozen=True)
class BoardConfig:
    serial: str = "SAT-0001"
    firmware_version: str = "1.0.0"
    state_dir: str = "/var/lib/chargeport"


@dataclass(frozen=True)
class AgentConfig:
    listen: str = "0.0.0.0:50051"
    advertise: bool = True


@dataclass(frozen=True)
class SatelliteConfig:
    board: BoardConfig = field(default_factory=BoardConfig)
    port: PortConfig = field(default_factory=PortConfig)
    link: LinkConfig = field(default_factory=LinkConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    firmware: FirmwareConfig = field(default_factory=FirmwareConfig)


# ------------------------------------------------------------------ validation


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if dataclasses.is_dataclass(tp):
        return "a table"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        tp, str(tp)
    )


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is type(None) and value is None:
                return None
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(value, args[0], key)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")  # type: ignore[arg-type]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}") from None
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (str, int, float, bool):
        if type(value) is not tp:
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {tp!r}")  # a bug in a section definition


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass `cls` from a TOML table, checking every key and type."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{prefix}{key}: unknown key (expected one of: {known})")
    missing = [
        name
        for name, f in fields.items()
        if name not in data
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{prefix}{missing[0]}: required key is missing")
    kwargs = {name: _convert(data[name], hints[name], f"{prefix}{name}") for name in data}
    return cls(**kwargs)


def load_config(path: str | Path, cls: type[T]) -> T:
    """Read and validate a TOML file; every problem is one `ConfigError` line naming the file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory; give the path of the .toml file") from None
    except PermissionError:
        raise ConfigError(f"{path}: not readable by this user; check its owner and mode") from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} on line {line}); "
            "save the file as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        config = from_dict(cls, data)
        _check(config)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return config


def _hal_drivers() -> set[str]:
    """Board drivers other packages offer (docs/hal-drivers.md; loaded by hal.drivers)."""
    return {ep.name for ep in importlib.metadata.entry_points(group="chargeport.hal")}


def _check(config: object) -> None:
    """Value checks that types alone cannot express."""
    _check_deployment(config)
    if isinstance(config, MainConfig | SatelliteConfig):
        port = config.port
        if not 6.0 <= port.max_current_a <= 80.0:
            raise ConfigError(
                f"port.max_current_a: expected 6 to 80 A (IEC 61851-1), got {port.max_current_a}"
            )
        if port.phases not in (1, 3):
            raise ConfigError(f"port.phases: expected 1 or 3, got {port.phases}")
        if port.hal not in ("sim", "serial") and port.hal not in _hal_drivers():
            raise ConfigError(
                f"port.hal: expected one of 'sim', 'serial' or an installed HAL driver "
                f"({', '.join(sorted(_hal_drivers())) or 'none installed'}), got {port.hal!r}"
            )
        if port.hal == "serial" and not port.serial_device:
            raise ConfigError("port.serial_device: required when port.hal = 'serial'")
        if port.meter == "modbus" and not port.meter_device:
            raise ConfigError("port.meter_device: required when port.meter = 'modbus'")
    if isinstance(config, MainConfig | SatelliteConfig):
        link = config.link
        if not 0.2 <= link.liveness_s <= 3600:
            raise ConfigError(f"link.liveness_s: expected 0.2 to 3600 s, got {link.liveness_s:g}")
        if link.grace_period_s < 2 * link.keepalive_s:
            raise ConfigError(
                f"link.grace_period_s: expected >= 2 x link.keepalive_s = "
                f"{2 * link.keepalive_s:g} s (real seconds), got {link.grace_period_s:g}"
            )
        if link.lost_stop_hold_s < 0:
            raise ConfigError(
                f"link.lost_stop_hold_s: expected >= 0 s (0 = close at the grace), "
                f"got {link.lost_stop_hold_s:g}"
            )
    if isinstance(config, MainConfig):
        _check_energy(config.energy)
        _check_mqtt(config.mqtt)
        _check_dashboard(config.dashboard)
        if not config.station.boot_window_s >= 0:
            raise ConfigError(
                f"station.boot_window_s: expected >= 0 s, got {config.station.boot_window_s}"
            )
        seen: dict[int, str] = {config.station.local_connector: "the local port"}
        serials: set[str] = set()
        if len(config.satellites) > config.station.max_satellites:
            raise ConfigError(
                f"satellites: {len(config.satellites)} configured but station.max_satellites = "
                f"{config.station.max_satellites}; raise max_satellites or remove some"
            )
        for i, sat in enumerate(config.satellites):
            if sat.connector < 1:
                raise ConfigError(f"satellites[{i}].connector: expected >= 1, got {sat.connector}")
            if sat.connector in seen:
                raise ConfigError(
                    f"satellites[{i}].connector: {sat.connector} is already used by "
                    f"{seen[sat.connector]}"
                )
            seen[sat.connector] = f"satellite {sat.serial}"
            if sat.serial in serials:
                raise ConfigError(f"satellites[{i}].serial: {sat.serial!r} is listed twice")
            serials.add(sat.serial)
            if sat.address:
                try:
                    parse_host_port(sat.address)
                except ValueError as exc:
                    raise ConfigError(f"satellites[{i}].address: {exc}") from None
            elif not config.link.mdns:
                raise ConfigError(f"satellites[{i}].address: required when link.mdns = false")
    if isinstance(config, SatelliteConfig):
        try:
            parse_host_port(config.agent.listen, allow_any_port=True)
        except ValueError as exc:
            raise ConfigError(f"agent.listen: {exc}") from None


def _check_deployment(config: object) -> None:
    """What a newcomer gets wrong first: names, URLs and the state folder's key."""
    if isinstance(config, MainConfig):
        url = config.ocpp.csms_url
        if url and not url.startswith(("ws://", "wss://")):
            raise ConfigError(
                f"ocpp.csms_url: expected a ws:// or wss:// URL (OCPP-J runs over WebSocket), "
                f"got {url!r}"
            )
        if config.ocpp.version not in OCPP_VERSIONS:
            raise ConfigError(
                f"ocpp.version: expected one of {', '.join(OCPP_VERSIONS)}, "
                f"got {config.ocpp.version!r}"
            )
        if not config.station.state_dir:
            raise ConfigError("station.state_dir: empty; give a folder the station can write")
        for i, sat in enumerate(config.satellites):
            if not sat.serial.strip():
                raise ConfigError(
                    f"satellites[{i}].serial: empty; give the serial on the board's sticker"
                )
    if isinstance(config, SatelliteConfig):
        if not config.board.serial.strip():
            raise ConfigError("board.serial: empty; give the serial on the board's sticker")
        if not config.board.state_dir:
            raise ConfigError("board.state_dir: empty; give a folder the board can write")


def prepare_state_dir(path: str | Path, key: str) -> Path:
    """Create the state folder `path` (config key `key`) and check it is a writable folder.

    A file in its place, a read-only disk or a foreign owner is a `ConfigError` naming the key
    (the CLI exits with EX_CONFIG), not a traceback from the first write much later.
    """
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(
            f"{key}: {folder} is a file, not a folder; point {key} at a folder"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"{key}: cannot create {folder} ({exc.strerror}); create it for this user or "
            f"point {key} elsewhere"
        ) from None
    probe = folder / f".write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"{key}: {folder} is not writable ({exc.strerror}); give this user write access "
            f"(chown/chmod) or point {key} elsewhere"
        ) from None
    return folder


def _check_mqtt(mqtt: MqttConfig) -> None:
    """TLS files only with tls = true; a password only with a user; a key only with a cert."""
    if not mqtt.tls:
        for key in ("ca_file", "cert_file", "key_file"):
            if getattr(mqtt, key):
                raise ConfigError(f"mqtt.{key}: only used with mqtt.tls = true")
        if mqtt.tls_insecure:
            raise ConfigError("mqtt.tls_insecure: only meaningful with mqtt.tls = true")
    if mqtt.password and not mqtt.username:
        raise ConfigError("mqtt.password: set mqtt.username too")
    if mqtt.key_file and not mqtt.cert_file:
        raise ConfigError("mqtt.key_file: set mqtt.cert_file (the client certificate) too")
    if mqtt.mains_max_a < 0:
        raise ConfigError(f"mqtt.mains_max_a: expected >= 0 A, got {mqtt.mains_max_a:g}")


def _check_dashboard(dashboard: DashboardConfig) -> None:
    if dashboard.operator_password and dashboard.operator_password_hash:
        raise ConfigError(
            "dashboard.operator_password: remove it when operator_password_hash is set"
        )
    if dashboard.operator_password_hash and not dashboard.operator_password_hash.startswith(
        "scrypt$"
    ):
        raise ConfigError("dashboard.operator_password_hash: expected scrypt$N$r$p$salt$hash")
    if bool(dashboard.tls_cert_file) != bool(dashboard.tls_key_file):
        raise ConfigError("dashboard.tls_cert_file and tls_key_file: set both or neither")


def _check_energy(energy: EnergyConfig) -> None:
    """[energy] values that types alone cannot express."""
    for name in ("mains_max_age_s", "refresh_s", "mains_meter_interval_s"):
        if not getattr(energy, name) > 0:
            raise ConfigError(f"energy.{name}: expected > 0 s, got {getattr(energy, name)}")
    for name in (
        "mains_fallback_a",
        "hysteresis_a",
        "rotation_s",
        "min_on_s",
        "min_pause_s",
        "pv_margin_w",
        "phase_switch_min_s",
    ):
        if not getattr(energy, name) >= 0:
            raise ConfigError(f"energy.{name}: expected >= 0, got {getattr(energy, name)}")
    if len(set(energy.priority)) != len(energy.priority):
        raise ConfigError(f"energy.priority: a connector is listed twice in {energy.priority}")
