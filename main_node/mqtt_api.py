"""MQTT API: retained per-connector state and meter topics, station status, commands.

Topics under `<prefix>/<station>/`:
  status                     retained "online" / "offline" (the last will)
  connector/<n>/state        retained JSON (the StationView gun without meter fields)
  connector/<n>/meter        retained JSON (energy, power, currents, temperature)
  energy                     retained JSON energy manager snapshot (allocation per connector)
  connector/<n>/cmd/enable   command, payload ignored
  connector/<n>/cmd/disable  command, payload ignored
  connector/<n>/cmd/limit    command, JSON {"amps": A | null, "phases": 1 | 3}
  mains                      JSON {"currents_a": [l1, l2, l3]}: live building meter reading
  error                      JSON {"topic", "error", "payload"} for every rejected command

paho runs its network loop (and reconnects with backoff) on its own thread; its callbacks only
hop into the event loop with `call_soon_threadsafe`. Commands are parsed by the pure
`parse_command` and executed one at a time, in arrival order, by an owned worker task.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from chargeport.errors import ChargeportError
from chargeport.port import (
    ChargePort,
    MeterValue,
    PortError,
    PortEvent,
    PortInfo,
)
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
    "SetLimit",
    "Topics",
    "parse_command",
]

log = logging.getLogger(__name__)

MAX_PAYLOAD = 1024  # commands are tiny; anything bigger is a mistake or an attack
MAX_MAINS_A = 10_000.0
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


def parse_command(
    topics: Topics,
    topic: str,
    payload: bytes,
    ports: Mapping[int, PortInfo],
    min_current_a: float = 6.0,
) -> Command:
    """Validate one incoming message; raise `CommandRejected` with a one-line reason."""
    if len(payload) > MAX_PAYLOAD:
        raise CommandRejected(f"payload larger than {MAX_PAYLOAD} bytes")
    if topic == topics.mains:
        currents = _json_object(payload).get("currents_a")
        values = [_number(c) for c in currents] if isinstance(currents, list) else []
        if len(values) != 3 or any(v is None or not 0 <= v <= MAX_MAINS_A for v in values):
            raise CommandRejected(
                f'expected {{"currents_a": [l1, l2, l3]}} with 0..{MAX_MAINS_A:g} A each'
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
        self._view = StationView(station_id, [p.info for p in self._ports.values()])
        self._published: dict[str, str] = {}  # topic -> last payload, to skip repeats
        self._connected = False
        self._client: mqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._commands: asyncio.Queue[tuple[str, Command]] = asyncio.Queue()
        self._tasks = OwnedTasks(log)
        self._remove_listener: Any = None

    @property
    def connected(self) -> bool:
        """True while a broker session is up (as last seen on the loop)."""
        return self._connected

    async def start(self) -> None:
        """Start following ports and connect in the background; never waits for the broker."""
        self._loop = asyncio.get_running_loop()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self._client_id)
        client.will_set(self.topics.status, "offline", qos=1, retain=True)
        client.reconnect_delay_set(*self._reconnect)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
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
            log.warning("mqtt: broker refused the connection: %s", reason_code)
            return
        # Subscriptions do not survive a clean session: renew them on every connect.
        client.subscribe([(self.topics.commands, 1), (self.topics.mains, 1)])
        self._hop(self._async_connected)

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
        self._published.clear()  # the broker may have lost retained state: send everything
        self._publish(self.topics.status, "online", qos=1)
        for cid in self._ports:
            self._async_publish_port(cid)
        if self._energy is not None:
            self._async_publish_energy(self._energy.snapshot())

    def _async_disconnected(self, reason: str) -> None:
        if self._connected:
            log.warning("mqtt: disconnected (%s); reconnecting", reason)
        self._connected = False

    def _async_message(self, topic: str, payload: bytes) -> None:
        try:
            command = parse_command(
                self.topics,
                topic,
                payload,
                {cid: p.info for cid, p in self._ports.items()},
                self._min_current_a,
            )
        except CommandRejected as exc:
            self._reject(topic, payload, str(exc))
            return
        self._commands.put_nowait((topic, command))

    async def _async_worker(self) -> None:
        while True:
            topic, command = await self._commands.get()
            try:
                await self._execute(command)
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
