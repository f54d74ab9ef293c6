"""MQTT API: retained per-connector state and meter topics, station status, commands.

Topics under `<prefix>/<station>/`:
  status                     retained "online" / "offline" (the last will)
  connector/<n>/state        retained JSON (the StationView gun without meter fields)
  connector/<n>/meter        retained JSON (energy, power, current and voltage per phase,
                             frequency, temperature)
  energy                     retained JSON energy manager snapshot (allocation per connector)
  connector/<n>/cmd/enable   command, payload ignored          (only with `commands = true`)
  connector/<n>/cmd/disable  command, payload ignored          (only with `commands = true`)
  connector/<n>/cmd/enabled  command, payload ON | OFF          (idem; Home Assistant's switch)
  connector/<n>/cmd/charging command, payload ON | OFF: OFF pauses (limit 0, the transaction
                             stays open), ON allows charging again at the last cmd/limit
                             (evcc's enable; idem)
  connector/<n>/cmd/limit    command, JSON {"amps": A | null, "phases": 1 | 3}   (idem)
  mains                      JSON {"currents_a": [l1, l2, l3]} and/or {"grid_power_w": W}
                             (signed, > 0 import; PV surplus mode): live building meter reading
                             (only with `mains = true`)
  ack                        JSON {"topic", "result": "accepted" | "refused", "reason"} for
                             every command and mains reading the station received
  error                      JSON {"topic", "error", "payload"} for every rejected command

Home Assistant MQTT discovery (issue 19): on every connect the station publishes retained
`<discovery_prefix>/<component>/<station>_<gun>_<what>/config` documents (`discovery_configs`,
pure) for one device per gun: sensors for state, power, energy, session energy, current and
voltage per phase, frequency and temperature; with `commands = true` also a switch (enabled)
and a number (current limit). Every entity is available only while the station's status says
"online" (the last will) and the gun's link is up. Without `commands` the command entities'
configs are cleared (empty retained payload), so Home Assistant removes them.

Security (issue 14): the broker login (username/password) and TLS (CA, optional client
certificate; the broker's hostname is checked unless `tls_insecure`) come from [mqtt]. Inputs
are off by default: the station subscribes to command topics only with `commands = true` and to
the mains topic only with `mains = true`, so on a shared broker nobody can steer it unless the
operator opted in (and the broker's ACL limits who may publish there). A mains reading must be
plausible (`check_mains`): finite, 0..`mains_max_a` per phase, and not below what this
station's own guns draw (the meter sees them too), so a spoofed `[0, 0, 0]` while guns charge
is refused. The energy manager never lets a reading raise the site limit above the
configured one, and treats a reading older than `energy.mains_max_age_s` as stale.

paho runs its network loop (and reconnects with backoff) on its own thread; its callbacks only
hop into the event loop with `call_soon_threadsafe`. Commands are parsed by the pure
`parse_command` and executed one at a time, in arrival order, by an owned worker task.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import ssl
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from chargeport.config import MqttConfig
from chargeport.port import (
    ChargePort,
    LinkChanged,
    MeterValue,
    PortError,
    PortEvent,
    PortInfo,
)
from chargeport.security_log import MQTT_COMMAND_REFUSED, MQTT_MAINS_REFUSED, security_event
from chargeport.tasks import OwnedTasks
from main_node.energy import EnergyManager, EnergySnapshot
from main_node.errors import MainNodeError
from main_node.view import StationView

__all__ = [
    "Command",
    "CommandRejected",
    "Disable",
    "Enable",
    "Mains",
    "MqttApi",
    "MqttConfigError",
    "MqttTls",
    "SetCharging",
    "SetLimit",
    "Topics",
    "check_mains",
    "discovery_configs",
    "parse_command",
]

log = logging.getLogger(__name__)

MAX_PAYLOAD = 1024  # commands are tiny; anything bigger is a mistake or an attack
MAX_MAINS_A = 10_000.0
# A mains meter and the guns' own meters disagree a little (sampling instants, accuracy class):
# a reading may sit this far below the guns' own draw (absolute A, or share of it) and pass.
MAINS_OWN_TOLERANCE_A = 2.0
MAINS_OWN_TOLERANCE = 0.1
CHARGING_STATES = frozenset({"Charging", "SuspendedEV"})
METER_KEYS = ("energy_wh", "session_energy_wh", "power_w", "current_a", "temperature_c")
DISCOVERY_PREFIX = "homeassistant"
_ON, _OFF = {"on", "true", "1", "enable"}, {"off", "false", "0", "disable"}


class MqttConfigError(MainNodeError):
    """The MQTT settings cannot work (e.g. a wildcard in the prefix)."""


class CommandRejected(MainNodeError):
    """A command from the broker is invalid; the message says why (sent on the error topic)."""


# ------------------------------------------------------------------ pure: topics and commands


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names for one station."""

    prefix: str
    station: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.station}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def error(self) -> str:
        return f"{self.base}/error"

    @property
    def energy(self) -> str:
        return f"{self.base}/energy"

    @property
    def mains(self) -> str:
        return f"{self.base}/mains"

    @property
    def ack(self) -> str:
        return f"{self.base}/ack"

    @property
    def commands(self) -> str:
        return f"{self.base}/connector/+/cmd/+"

    def state(self, connector: int) -> str:
        return f"{self.base}/connector/{connector}/state"

    def meter(self, connector: int) -> str:
        return f"{self.base}/connector/{connector}/meter"

    def cmd(self, connector: int, verb: str) -> str:
        return f"{self.base}/connector/{connector}/cmd/{verb}"


@dataclass(frozen=True, slots=True)
class Enable:
    connector: int


@dataclass(frozen=True, slots=True)
class Disable:
    connector: int


@dataclass(frozen=True, slots=True)
class SetLimit:
    connector: int
    amps: float | None  # None: clear the operator limit
    phases: int


@dataclass(frozen=True, slots=True)
class SetCharging:
    """Pause (False) or allow (True) charging, the transaction kept (evcc's enable)."""

    connector: int
    allowed: bool


@dataclass(frozen=True, slots=True)
class Mains:
    currents_a: tuple[float, float, float] | None
    grid_power_w: float | None = None  # signed, > 0 import (PV surplus mode)


Command = Enable | Disable | SetLimit | SetCharging | Mains


def _json_object(payload: bytes) -> dict[str, Any]:
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CommandRejected("payload is not valid JSON") from None
    if not isinstance(data, dict):
        raise CommandRejected("payload must be a JSON object")
    return data


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def check_mains(currents_a: Sequence[float], own_a: Sequence[float], charging: bool) -> None:
    """`CommandRejected` for a mains reading that cannot be true given this station's own draw.

    The mains meter sits at the grid connection, upstream of our guns: per phase it reads at
    least what the guns draw (less a small tolerance). All zeros while a gun is charging is
    the spoof of issue 14 even when the guns' meters are not reporting yet."""
    if charging and not any(currents_a):
        raise CommandRejected("implausible mains reading: 0 A on every phase while guns charge")
    for phase, (mains, own) in enumerate(zip(currents_a, [*own_a, 0.0, 0.0, 0.0], strict=False)):
        if mains + max(MAINS_OWN_TOLERANCE_A, MAINS_OWN_TOLERANCE * own) < own:
            raise CommandRejected(
                f"implausible mains reading: L{phase + 1} {mains:g} A is below the "
                f"{own:g} A this station's guns draw"
            )


def parse_command(
    topics: Topics,
    topic: str,
    payload: bytes,
    ports: Mapping[int, PortInfo],
    min_current_a: float = 6.0,
    mains_max_a: float = MAX_MAINS_A,
) -> Command:
    """Validate one incoming message; raise `CommandRejected` with a one-line reason."""
    if len(payload) > MAX_PAYLOAD:
        raise CommandRejected(f"payload larger than {MAX_PAYLOAD} bytes")
    if topic == topics.mains:
        body = _json_object(payload)
        grid: float | None = None
        if "grid_power_w" in body:
            grid = _number(body["grid_power_w"])
            # Three phases at 250 V and the plausible current: a bound no real site exceeds.
            if grid is None or abs(grid) > 3 * 250.0 * mains_max_a:
                raise CommandRejected(
                    f"grid_power_w: expected a finite power within +-{3 * 250 * mains_max_a:g} W"
                )
            if "currents_a" not in body:
                return Mains(None, float(grid))
        currents = body.get("currents_a")
        values = [_number(c) for c in currents] if isinstance(currents, list) else []
        if len(values) != 3 or any(v is None or not 0 <= v <= mains_max_a for v in values):
            raise CommandRejected(
                f'expected {{"currents_a": [l1, l2, l3]}} with finite 0..{mains_max_a:g} A each'
                ', and/or {"grid_power_w": W}'
            )
        l1, l2, l3 = (float(v or 0.0) for v in values)
        return Mains((l1, l2, l3), grid)
    parts = topic.removeprefix(topics.base + "/").split("/")
    if len(parts) != 4 or parts[0] != "connector" or parts[2] != "cmd":
        raise CommandRejected("unknown topic")
    if not parts[1].isdigit() or int(parts[1]) not in ports:
        known = ", ".join(str(c) for c in sorted(ports))
        raise CommandRejected(f"unknown connector {parts[1]!r} (this station has {known})")
    connector, verb = int(parts[1]), parts[3]
    if verb == "enable":
        return Enable(connector)
    if verb == "disable":
        return Disable(connector)
    if verb in ("enabled", "charging"):  # ON/OFF on one topic, as a switch sends it
        word = payload.decode("utf-8", "replace").strip().lower()
        if word not in _ON | _OFF:
            raise CommandRejected(f"{verb} expects ON or OFF (or true/false), got {word[:20]!r}")
        on = word in _ON
        if verb == "charging":
            return SetCharging(connector, on)
        return Enable(connector) if on else Disable(connector)
    if verb != "limit":
        raise CommandRejected(
            f"unknown command {verb!r} (expected enable, disable, enabled, charging or limit)"
        )
    info = ports[connector]
    data = _json_object(payload)
    if "amps" not in data:
        raise CommandRejected('limit needs "amps" (a number, or null to clear)')
    phases = data.get("phases", info.phases)
    if phases not in (1, 3) or isinstance(phases, bool) or phases > info.phases:
        raise CommandRejected(f"phases must be 1 or {info.phases} for this connector")
    phases = int(phases)
    if data["amps"] is None:
        return SetLimit(connector, None, phases)
    amps = _number(data["amps"])
    # IEC 61851-1 A.8: PWM cannot signal less than 6 A; 0 pauses.
    if amps is None or not (amps == 0.0 or min_current_a <= amps <= info.max_current_a):
        raise CommandRejected(
            f"amps must be 0 or {min_current_a:g}..{info.max_current_a:g}, got {data['amps']!r}"
        )
    return SetLimit(connector, amps, phases)


# ------------------------------------------------------------------ pure: Home Assistant discovery


def _object_id(text: str) -> str:
    """Home Assistant object ids: letters, digits, '_' and '-' only."""
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in text)


@dataclass(frozen=True, slots=True)
class _Sensor:
    what: str
    name: str
    topic: str  # "state" or "meter"
    template: str
    unit: str = ""
    device_class: str = ""
    state_class: str = ""
    precision: int | None = None


def _phase(key: str, phase: int) -> str:
    # An idle or unlinked gun reports []: pad so the template never fails.
    return f"{{{{ (value_json.{key} + [0, 0, 0])[{phase}] }}}}"


def _sensors() -> list[_Sensor]:
    sensors = [
        _Sensor("state", "State", "state", "{{ value_json.state }}"),
        _Sensor("power", "Power", "meter", "{{ value_json.power_w }}", "W", "power",
                "measurement", 0),
        _Sensor("energy", "Energy", "meter", "{{ value_json.energy_wh }}", "Wh", "energy",
                "total_increasing", 0),
        _Sensor("session_energy", "Session energy", "meter",
                "{{ value_json.session_energy_wh }}", "Wh", "energy", "total_increasing", 0),
        _Sensor("frequency", "Frequency", "meter", "{{ value_json.frequency_hz }}", "Hz",
                "frequency", "measurement", 2),
        _Sensor("temperature", "Temperature", "meter", "{{ value_json.temperature_c }}", "°C",
                "temperature", "measurement", 1),
    ]  # fmt: skip
    for phase in range(3):
        sensors.append(
            _Sensor(f"current_l{phase + 1}", f"Current L{phase + 1}", "meter",
                    _phase("current_a", phase), "A", "current", "measurement", 1)
        )  # fmt: skip
        sensors.append(
            _Sensor(f"voltage_l{phase + 1}", f"Voltage L{phase + 1}", "meter",
                    _phase("voltage_v", phase), "V", "voltage", "measurement", 0)
        )  # fmt: skip
    return sensors


def discovery_configs(
    topics: Topics,
    infos: Mapping[int, PortInfo],
    *,
    commands: bool,
    prefix: str = DISCOVERY_PREFIX,
    model: str = "chargeport",
) -> list[tuple[str, dict[str, Any] | None]]:
    """(config topic, payload) for every entity; payload None = remove the entity (retained '')."""
    station = _object_id(topics.station)
    out: list[tuple[str, dict[str, Any] | None]] = []
    for cid, info in sorted(infos.items()):
        state_topic = topics.state(cid)
        base_id = f"{station}_{cid}"
        device = {
            "identifiers": [f"chargeport_{base_id}"],
            "name": f"{topics.station} gun {cid}",
            "manufacturer": "chargeport",
            "model": model,
            "sw_version": info.firmware_version,
            "serial_number": info.serial,
        }
        common: dict[str, Any] = {
            "availability": [
                {"topic": topics.status, "payload_available": "online",
                 "payload_not_available": "offline"},
                {"topic": state_topic, "value_template":
                 "{{ 'online' if value_json.link_up else 'offline' }}"},
            ],
            "availability_mode": "all",
            "device": device,
        }  # fmt: skip

        entities: list[tuple[str, str, dict[str, Any] | None]] = []
        for sensor in _sensors():
            body: dict[str, Any] = {
                "name": sensor.name,
                "state_topic": state_topic if sensor.topic == "state" else topics.meter(cid),
                "value_template": sensor.template,
            }
            for key, value in (
                ("unit_of_measurement", sensor.unit), ("device_class", sensor.device_class),
                ("state_class", sensor.state_class),
            ):  # fmt: skip
                if value:
                    body[key] = value
            if sensor.precision is not None:
                body["suggested_display_precision"] = sensor.precision
            entities.append(("sensor", sensor.what, body))
        switch = {
            "name": "Enabled",
            "command_topic": topics.cmd(cid, "enabled"),
            "payload_on": "ON",
            "payload_off": "OFF",
            "state_topic": state_topic,
            "value_template": "{{ 'ON' if value_json.enabled else 'OFF' }}",
            "icon": "mdi:ev-station",
        }
        number = {  # 0 pauses; 1 A up to the PWM minimum is refused (see the ack topic)
            "name": "Current limit",
            "command_topic": topics.cmd(cid, "limit"),
            "command_template": '{"amps": {{ value }}}',
            "state_topic": state_topic,
            "value_template": "{{ value_json.limit_a }}",
            "min": 0,
            "max": info.max_current_a,
            "step": 1,
            "mode": "box",
            "unit_of_measurement": "A",
            "device_class": "current",
        }
        charging = {
            "name": "Charging allowed",
            "command_topic": topics.cmd(cid, "charging"),
            "payload_on": "ON",
            "payload_off": "OFF",
            "state_topic": state_topic,
            "value_template": "{{ 'ON' if value_json.charging_allowed else 'OFF' }}",
            "icon": "mdi:pause-circle-outline",
        }
        entities.append(("switch", "enabled", switch if commands else None))
        entities.append(("switch", "charging", charging if commands else None))
        entities.append(("number", "limit", number if commands else None))
        for component, what, entity in entities:
            topic = f"{prefix}/{component}/{base_id}_{what}/config"
            ids = {"unique_id": f"chargeport_{base_id}_{what}", "object_id": f"{base_id}_{what}"}
            out.append((topic, None if entity is None else {**ids, **common, **entity}))
    return out


# ------------------------------------------------------------------ the API


@dataclass(frozen=True, slots=True)
class MqttTls:
    """TLS to the broker: `ca_file` empty = the system's CAs; client certificate optional."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    insecure: bool = False  # skip the broker hostname check (tests against a bare IP only)


class MqttApi:
    """Publishes the station over MQTT and executes commands from it; start()/stop() owned."""

    def __init__(
        self,
        host: str,
        port: int,
        prefix: str,
        station_id: str,
        ports: Mapping[int, ChargePort],
        energy: EnergyManager | None = None,
        *,
        min_current_a: float = 6.0,
        keepalive_s: int = 30,
        reconnect_min_s: int = 1,
        reconnect_max_s: int = 30,
        client_id: str = "",
        username: str = "",
        password: str = "",
        tls: MqttTls | None = None,
        commands: bool = False,
        mains: bool = False,
        mains_max_a: float = MAX_MAINS_A,
        discovery_prefix: str = DISCOVERY_PREFIX,
        model: str = "chargeport",
    ) -> None:
        """`discovery_prefix` empty: no Home Assistant discovery documents."""
        for name, value in (("prefix", prefix), ("station id", station_id)):
            if not value or any(c in value for c in "+#\0"):
                raise MqttConfigError(f"mqtt: {name} {value!r} must be non-empty without + or #")
        self.topics = Topics(prefix.strip("/"), station_id)
        self._host, self._port = host, port
        self._ports = dict(ports)
        self._energy = energy
        self._min_current_a = min_current_a
        self._keepalive_s = keepalive_s
        self._reconnect = (reconnect_min_s, reconnect_max_s)
        self._client_id = client_id or f"chargeport-{station_id}-{uuid.uuid4().hex[:8]}"
        self._username, self._password, self._tls = username, password, tls
        self._accept_commands, self._accept_mains = commands, mains
        self._mains_max_a = mains_max_a
        self._discovery_prefix = discovery_prefix.strip("/")
        self._model = model
        self._grid: dict[int, tuple[tuple[float, ...], float]] = {}  # voltages, frequency
        self._limits: dict[int, tuple[float | None, int]] = {}  # operator limit by MQTT
        self._paused: dict[int, bool] = {}  # cmd/charging OFF
        self._mains_refused = 0  # consecutive refused readings (the event is logged once)
        self.last_error = ""  # the broker's last refusal, e.g. "Bad user name or password"
        self._view = StationView(station_id, [p.info for p in self._ports.values()])
        self._published: dict[str, str] = {}  # topic -> last payload, to skip repeats
        self._connected = False
        self._client: mqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._commands: asyncio.Queue[tuple[str, Command]] = asyncio.Queue()
        self._tasks = OwnedTasks(log)
        self._remove_listener: Any = None

    @classmethod
    def from_config(
        cls,
        config: MqttConfig,
        station_id: str,
        ports: Mapping[int, ChargePort],
        energy: EnergyManager | None,
        *,
        min_current_a: float = 6.0,
        site_limit_a: float = 63.0,
    ) -> MqttApi:
        """The API as the [mqtt] section describes it."""
        tls = (
            MqttTls(config.ca_file, config.cert_file, config.key_file, config.tls_insecure)
            if config.tls
            else None
        )
        return cls(
            config.host, config.port, config.prefix, station_id, ports, energy,
            min_current_a=min_current_a, username=config.username, password=config.password,
            tls=tls, commands=config.commands, mains=config.mains,
            mains_max_a=config.mains_max_a or 2.0 * site_limit_a,
        )  # fmt: skip

    @property
    def connected(self) -> bool:
        """True while a broker session is up (as last seen on the loop)."""
        return self._connected

    async def start(self) -> None:
        """Start following ports and connect in the background; never waits for the broker."""
        self._loop = asyncio.get_running_loop()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self._client_id)
        self._secure(client)
        client.will_set(self.topics.status, "offline", qos=1, retain=True)
        client.reconnect_delay_set(*self._reconnect)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_connect_fail = self._on_connect_fail
        self._client = client
        for cid, port in self._ports.items():
            events = port.events()
            try:
                self._view.seed(cid, await port.status())
            except PortError as exc:
                log.info("mqtt: connector %d status unavailable: %s", cid, exc)
                self._view.guns[cid].link_up = False
            self._tasks.spawn(self._async_follow(cid, events), f"mqtt-port-{cid}")
        self._tasks.spawn(self._async_worker(), "mqtt-commands")
        if self._energy is not None:
            self._remove_listener = self._energy.add_listener(self._async_publish_energy)
        client.connect_async(self._host, self._port, self._keepalive_s)
        client.loop_start()  # paho's thread connects, and reconnects with backoff

    def _secure(self, client: mqtt.Client) -> None:
        """Login and TLS; `MqttConfigError` (one line) for a file that cannot be used."""
        if self._username:
            client.username_pw_set(self._username, self._password or None)
            if self._password and self._tls is None:
                log.warning("mqtt: the broker password is sent without TLS; set mqtt.tls = true")
        if self._tls is None:
            return
        try:
            context = ssl.create_default_context(cafile=self._tls.ca_file or None)
            if self._tls.cert_file:
                context.load_cert_chain(self._tls.cert_file, self._tls.key_file or None)
        except (OSError, ssl.SSLError) as exc:
            raise MqttConfigError(f"mqtt: TLS files unusable: {exc}") from None
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self._tls.insecure:
            log.warning("mqtt: tls_insecure = true: the broker's hostname is not checked")
            context.check_hostname = False
        client.tls_set_context(context)

    async def stop(self) -> None:
        """Say "offline", disconnect, and stop every task and paho's thread."""
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        await self._tasks.cancel_all()
        client, self._client = self._client, None
        if client is None:
            return
        if self._connected:
            info = client.publish(self.topics.status, "offline", qos=1, retain=True)
            try:
                await asyncio.to_thread(info.wait_for_publish, 2.0)
            except (RuntimeError, ValueError) as exc:
                log.info("mqtt: offline status not confirmed: %s", exc)
        self._connected = False
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)

    # -------------------------------------------------------------- paho's thread

    def _hop(self, callback: Any, *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            pass  # the loop is closed: we are shutting down

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: Any,
        reason_code: Any,
        properties: Any,
    ) -> None:
        if reason_code.is_failure:
            self._hop(self._async_refused, str(reason_code))
            return
        # Subscriptions do not survive a clean session: renew them on every connect.
        # Only the inputs the operator enabled: what is not subscribed cannot steer us.
        topics = [(self.topics.commands, 1)] if self._accept_commands else []
        topics += [(self.topics.mains, 1)] if self._accept_mains else []
        if topics:
            client.subscribe(topics)
        self._hop(self._async_connected)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self._hop(self._async_refused, "no connection (network or TLS handshake failed)")

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: Any,
        reason_code: Any,
        properties: Any,
    ) -> None:
        self._hop(self._async_disconnected, str(reason_code))

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._hop(self._async_message, msg.topic, bytes(msg.payload))

    # -------------------------------------------------------------- loop side

    def _async_connected(self) -> None:
        log.info("mqtt: connected to %s:%d", self._host, self._port)
        self._connected = True
        self.last_error = ""
        self._published.clear()  # the broker may have lost retained state: send everything
        self._publish(self.topics.status, "online", qos=1)
        self._async_publish_discovery()
        for cid in self._ports:
            self._async_publish_port(cid)
        if self._energy is not None:
            self._async_publish_energy(self._energy.snapshot())

    def _async_refused(self, reason: str) -> None:
        if reason == self.last_error:
            return  # paho retries with backoff: one line per distinct reason, not per retry
        self.last_error = reason
        hint = ""
        if "user name or password" in reason.lower() or "not authorized" in reason.lower():
            hint = "; check mqtt.username and mqtt.password"
        log.error(
            "mqtt: broker %s:%d refused the connection: %s%s", self._host, self._port, reason, hint
        )

    def _async_disconnected(self, reason: str) -> None:
        if self._connected:
            log.warning("mqtt: disconnected (%s); reconnecting", reason)
        self._connected = False

    def _async_message(self, topic: str, payload: bytes) -> None:
        try:
            allowed = self._accept_mains if topic == self.topics.mains else self._accept_commands
            if not allowed:  # not subscribed; a broker may still deliver (shared subscription)
                security_event(MQTT_COMMAND_REFUSED, f"{topic}: inputs of this kind are off")
                raise CommandRejected("disabled by configuration (mqtt.commands / mqtt.mains)")
            command = parse_command(
                self.topics,
                topic,
                payload,
                {cid: p.info for cid, p in self._ports.items()},
                self._min_current_a,
                self._mains_max_a,
            )
            if isinstance(command, Mains):
                self._check_mains(command)
        except CommandRejected as exc:
            self._reject(topic, payload, str(exc))
            return
        self._commands.put_nowait((topic, command))

    def _check_mains(self, command: Mains) -> None:
        if command.currents_a is None:
            return  # a grid power alone: its bound was checked when parsing
        own = [0.0, 0.0, 0.0]
        charging = False
        for gun in self._view.guns.values():
            charging = charging or gun.state in CHARGING_STATES
            for phase, amps in enumerate(gun.current_a[:3]):
                own[phase] += amps
        try:
            check_mains(command.currents_a, own, charging)
        except CommandRejected as exc:
            if self._mains_refused == 0:  # once per run of refusals: no log flood
                security_event(MQTT_MAINS_REFUSED, f"{list(command.currents_a)}: {exc}")
            self._mains_refused += 1
            raise
        self._mains_refused = 0

    async def _async_worker(self) -> None:
        while True:
            topic, command = await self._commands.get()
            try:
                await self._execute(command)
                self._ack(topic, "accepted")
            except (PortError, ValueError, CommandRejected) as exc:
                self._reject(topic, b"", str(exc) or type(exc).__name__)
            except Exception:  # a bug must not end command handling for good
                log.exception("mqtt: command on %s failed", topic)
                self._reject(topic, b"", "internal error (see the station log)")

    async def _execute(self, command: Command) -> None:
        if isinstance(command, Mains):
            if self._energy is None:
                raise CommandRejected("this station has no energy manager")
            if command.currents_a is not None:
                self._energy.set_mains_reading(command.currents_a)
            if command.grid_power_w is not None:
                self._energy.set_grid_power(command.grid_power_w)
            return
        cid = command.connector
        port = self._ports[cid]
        if isinstance(command, Enable):
            await port.enable()
            return
        if isinstance(command, Disable):
            await port.disable()
            return
        if isinstance(command, SetCharging):
            self._paused[cid] = not command.allowed
            amps, phases = self._limits.get(cid, (None, port.info.phases))
        else:
            amps, phases = command.amps, command.phases
            self._limits[cid] = (amps, phases)
        if self._paused.get(cid):
            amps = 0.0  # paused: the limit is kept for when charging is allowed again
        if self._energy is not None:
            # The energy manager re-sends limits every refresh: an operator limit must go
            # through it, or it would be overwritten seconds later.
            self._energy.set_connector_limit(cid, amps, phases)
        else:
            await port.set_limit(port.info.max_current_a if amps is None else amps, phases)
        self._async_publish_port(cid, meter=False)

    def _reject(self, topic: str, payload: bytes, reason: str) -> None:
        log.info("mqtt: rejected %s: %s", topic, reason)
        body = {
            "topic": topic,
            "error": reason,
            "payload": payload[:200].decode("utf-8", "replace"),
        }
        self._publish(self.topics.error, json.dumps(body), qos=1, retain=False, dedupe=False)
        self._ack(topic, "refused", reason)

    def _ack(self, topic: str, result: str, reason: str = "") -> None:
        body = {"topic": topic, "result": result, "reason": reason}
        self._publish(self.topics.ack, json.dumps(body), qos=1, retain=False, dedupe=False)

    def _publish(
        self, topic: str, payload: str, *, qos: int = 0, retain: bool = True, dedupe: bool = True
    ) -> None:
        if dedupe and self._published.get(topic) == payload:
            return
        client = self._client
        if client is None or not self._connected:
            return  # everything is published again on (re)connect
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc == mqtt.MQTT_ERR_SUCCESS and dedupe:
            self._published[topic] = payload

    # -------------------------------------------------------------- state

    async def _async_follow(self, cid: int, events: Any) -> None:
        async for event in events:
            self._async_event(cid, event)

    def _async_publish_discovery(self) -> None:
        if not self._discovery_prefix:
            return
        # sw_version: what the board runs now (a firmware update changes it), else configured.
        infos = {
            cid: replace(p.info, firmware_version=fw)
            if (fw := self._view.guns[cid].firmware_version)
            else p.info
            for cid, p in self._ports.items()
        }
        for topic, body in discovery_configs(
            self.topics, infos, commands=self._accept_commands, prefix=self._discovery_prefix,
            model=self._model,
        ):  # fmt: skip
            # An empty retained payload deletes the entity in Home Assistant.
            self._publish(topic, "" if body is None else json.dumps(body, sort_keys=True), qos=1)

    def _async_event(self, cid: int, event: PortEvent) -> None:
        if isinstance(event.body, MeterValue):  # the view keeps no voltage or frequency
            self._grid[cid] = (event.body.voltage_v, event.body.frequency_hz)
        self._view.apply(cid, event)
        if isinstance(event.body, LinkChanged) and event.body.connected:
            self._async_publish_discovery()  # unchanged documents are not sent again
        self._async_publish_port(
            cid, meter_ts=event.timestamp, meter=isinstance(event.body, MeterValue)
        )

    def _async_publish_port(
        self, cid: int, meter_ts: float | None = None, meter: bool = True
    ) -> None:
        gun = self._view.gun_snapshot(cid, history=False)
        reading = {key: gun.pop(key) for key in METER_KEYS if key in gun}
        volts, hz = self._grid.get(cid, ((), 0.0)) if gun["link_up"] else ((), 0.0)
        reading["voltage_v"] = [round(v, 1) for v in volts]
        reading["frequency_hz"] = round(hz, 2)
        gun["charging_allowed"] = not self._paused.get(cid, False)
        gun["operator_limit_a"] = self._limits.get(cid, (None, 0))[0]
        self._publish(self.topics.state(cid), json.dumps(gun, sort_keys=True), qos=1)
        if meter:
            if meter_ts is not None:
                reading["timestamp"] = meter_ts
            self._publish(self.topics.meter(cid), json.dumps(reading, sort_keys=True))

    def _async_publish_energy(self, snapshot: EnergySnapshot) -> None:
        self._publish(self.topics.energy, json.dumps(snapshot.to_json(), sort_keys=True), qos=1)
