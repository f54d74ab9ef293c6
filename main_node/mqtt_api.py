"""MQTT API: retained per-connector state and meter topics, station status, commands.

Topics under `<prefix>/<station>/`:
  status                     retained "online" / "offline" (the last will)
  connector/<n>/state        retained JSON (the StationView gun without meter fields)
  connector/<n>/meter        retained JSON (energy, power, currents, temperature)
  energy                     retained JSON energy manager snapshot (allocation per connector)
  connector/<n>/cmd/enable   command, payload ignored          (only with `commands = true`)
  connector/<n>/cmd/disable  command, payload ignored          (only with `commands = true`)
  connector/<n>/cmd/limit    command, JSON {"amps": A | null, "phases": 1 | 3}   (idem)
  mains                      JSON {"currents_a": [l1, l2, l3]}: live building meter reading
                             (only with `mains = true`)
  ack                        JSON {"topic", "result": "accepted" | "refused", "reason"} for
                             every command and mains reading the station received
  error                      JSON {"topic", "error", "payload"} for every rejected command

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
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from chargeport.config import MqttConfig
from chargeport.errors import ChargeportError
from chargeport.port import (
    ChargePort,
    MeterValue,
    PortError,
    PortEvent,
    PortInfo,
)
from chargeport.security_log import MQTT_COMMAND_REFUSED, MQTT_MAINS_REFUSED, security_event
from chargeport.tasks import OwnedTasks
from main_node.energy import EnergyManager, EnergySnapshot
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
    "SetLimit",
    "Topics",
    "check_mains",
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


class MqttConfigError(ChargeportError):
    """The MQTT settings cannot work (e.g. a wildcard in the prefix)."""


class CommandRejected(Exception):
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
class Mains:
    currents_a: tuple[float, float, float]


Command = Enable | Disable | SetLimit | Mains


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
        currents = _json_object(payload).get("currents_a")
        values = [_number(c) for c in currents] if isinstance(currents, list) else []
        if len(values) != 3 or any(v is None or not 0 <= v <= mains_max_a for v in values):
            raise CommandRejected(
                f'expected {{"currents_a": [l1, l2, l3]}} with finite 0..{mains_max_a:g} A each'
            )
        l1, l2, l3 = (float(v or 0.0) for v in values)
        return Mains((l1, l2, l3))
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
    if verb != "limit":
        raise CommandRejected(f"unknown command {verb!r} (expected enable, disable or limit)")
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
    ) -> None:
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
            self._energy.set_mains_reading(command.currents_a)
            return
        port = self._ports[command.connector]
        if isinstance(command, Enable):
            await port.enable()
        elif isinstance(command, Disable):
            await port.disable()
        elif self._energy is not None:
            # The energy manager re-sends limits every refresh: an operator limit must go
            # through it, or it would be overwritten seconds later.
            self._energy.set_connector_limit(command.connector, command.amps, command.phases)
        elif command.amps is None:
            await port.set_limit(port.info.max_current_a, port.info.phases)
        else:
            await port.set_limit(command.amps, command.phases)

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

    def _async_event(self, cid: int, event: PortEvent) -> None:
        self._view.apply(cid, event)
        self._async_publish_port(
            cid, meter_ts=event.timestamp, meter=isinstance(event.body, MeterValue)
        )

    def _async_publish_port(
        self, cid: int, meter_ts: float | None = None, meter: bool = True
    ) -> None:
        gun = self._view.gun_snapshot(cid, history=False)
        reading = {key: gun.pop(key) for key in METER_KEYS if key in gun}
        self._publish(self.topics.state(cid), json.dumps(gun, sort_keys=True), qos=1)
        if meter:
            if meter_ts is not None:
                reading["timestamp"] = meter_ts
            self._publish(self.topics.meter(cid), json.dumps(reading, sort_keys=True))

    def _async_publish_energy(self, snapshot: EnergySnapshot) -> None:
        self._publish(self.topics.energy, json.dumps(snapshot.to_json(), sort_keys=True), qos=1)
