"""MQTT security (issue 14) against a real mosquitto with a password file and an ACL: the
station logs in, TLS is verified, anonymous clients cannot steer it, command topics are off
unless configured, every command is acknowledged, and an implausible mains reading is refused."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from mqtt_harness import Broker, Probe
from waiting import until

from chargeport.clock import ManualClock
from chargeport.config import ConfigError, EnergyConfig, MainConfig, MqttConfig, from_dict
from chargeport.fake_port import FakePort
from chargeport.port import MeterValue, PortInfo
from chargeport.security_log import LOGGER_NAME, MQTT_MAINS_REFUSED
from main_node.energy import EnergyManager
from main_node.mqtt_api import MqttApi, MqttConfigError, MqttTls

pytestmark = pytest.mark.integration

PREFIX, STATION = "cp", "st1"
BASE = f"{PREFIX}/{STATION}"
USERS = {"station": "station-secret", "operator": "operator-secret"}
# Lines before any `user` are for anonymous clients: they may read the station, nothing else.
ACL = f"""topic read {BASE}/#

user station
topic readwrite {BASE}/#

user operator
topic read {BASE}/#
topic write {BASE}/connector/+/cmd/+
topic write {BASE}/mains
"""
SITE_LIMIT_A = 40.0


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path, users=USERS, acl=ACL)
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def ports() -> dict[int, FakePort]:
    return {cid: FakePort(PortInfo(cid, f"SN{cid}", "1.0", 32.0, 3)) for cid in (1, 2)}


@pytest.fixture
async def energy(ports: dict[int, FakePort]) -> AsyncIterator[EnergyManager]:
    mgr = EnergyManager(ports, EnergyConfig(site_limit_a=SITE_LIMIT_A), ManualClock())
    await mgr.start()
    yield mgr
    await mgr.stop()


@pytest.fixture
async def make_api(
    secured: Broker, ports: dict[int, FakePort], energy: EnergyManager
) -> AsyncIterator[Callable[..., MqttApi]]:
    started: list[MqttApi] = []

    def make(**settings: object) -> MqttApi:
        config = MqttConfig(host=secured.host, port=secured.port, prefix=PREFIX, **settings)  # type: ignore[arg-type]
        api = MqttApi.from_config(config, STATION, ports, energy, site_limit_a=SITE_LIMIT_A)
        started.append(api)
        return api

    yield make
    for api in started:
        await api.stop()


async def client(
    broker: Broker, username: str = "", password: str = "", ca_file: Path | None = None
) -> Probe:
    loop = asyncio.get_running_loop()
    probe = Probe(broker, loop, username=username, password=password, ca_file=ca_file)
    probe.client.loop_start()
    await probe.connected()
    return probe


async def close(*probes: Probe) -> None:
    for probe in probes:
        probe.client.disconnect()
        await asyncio.to_thread(probe.client.loop_stop)


async def test_wrong_password_is_refused_with_a_clear_error(
    make_api: Callable[..., MqttApi], caplog: pytest.LogCaptureFixture
) -> None:
    api = make_api(username="station", password="wrong", commands=True)
    caplog.set_level(logging.ERROR)
    await api.start()
    await until(lambda: bool(api.last_error))
    assert not api.connected
    assert "not authorized" in api.last_error.lower() or "password" in api.last_error.lower()
    (line,) = [r.getMessage() for r in caplog.records if r.name == "main_node.mqtt_api"]
    assert "refused the connection" in line and "check mqtt.username and mqtt.password" in line


async def test_right_password_publishes_and_acknowledges_commands(
    make_api: Callable[..., MqttApi], secured: Broker, ports: dict[int, FakePort]
) -> None:
    api = make_api(username="station", password=USERS["station"], commands=True)
    await api.start()
    operator = await client(secured, username="operator", password=USERS["operator"])
    try:
        await operator.wait_for(f"{BASE}/status", lambda v: v == b"online")
        assert await operator.publish_acked(f"{BASE}/connector/2/cmd/disable", b"") == 0
        ack = await operator.wait_for(f"{BASE}/ack")
        assert ack == {"topic": f"{BASE}/connector/2/cmd/disable", "result": "accepted",
                       "reason": ""}  # fmt: skip
        assert ("disable", ()) in ports[2].calls
        mark = len(operator.messages)
        await operator.publish_acked(f"{BASE}/connector/9/cmd/enable", b"")
        ack = await operator.wait_for(f"{BASE}/ack", start=mark)
        assert ack["result"] == "refused" and "unknown connector" in ack["reason"]
    finally:
        await close(operator)


async def test_anonymous_client_cannot_publish_commands(
    make_api: Callable[..., MqttApi], secured: Broker, ports: dict[int, FakePort]
) -> None:
    api = make_api(username="station", password=USERS["station"], commands=True, mains=True)
    await api.start()
    anonymous = await client(secured)
    operator = await client(secured, username="operator", password=USERS["operator"])
    try:
        await anonymous.wait_for(f"{BASE}/status", lambda v: v == b"online")  # it may read
        # MQTT 5 PUBACK 0x87 Not authorized: the broker dropped them; nobody will receive them.
        assert await anonymous.publish_acked(f"{BASE}/connector/1/cmd/disable", b"") == 135
        assert await anonymous.publish_acked(f"{BASE}/mains", '{"currents_a":[0,0,0]}') == 135
        # A later, authorized command is acknowledged; the anonymous ones never were.
        await operator.publish_acked(f"{BASE}/connector/2/cmd/disable", b"")
        await operator.wait_for(f"{BASE}/ack", lambda a: a["result"] == "accepted")
        acks = operator.json(f"{BASE}/ack")
        assert [a["topic"] for a in acks] == [f"{BASE}/connector/2/cmd/disable"]
        assert ("disable", ()) not in ports[1].calls
    finally:
        await close(anonymous, operator)


async def test_commands_are_off_unless_configured(
    make_api: Callable[..., MqttApi], secured: Broker, ports: dict[int, FakePort]
) -> None:
    api = make_api(username="station", password=USERS["station"], mains=True)  # commands off
    await api.start()
    operator = await client(secured, username="operator", password=USERS["operator"])
    try:
        await operator.wait_for(f"{BASE}/status", lambda v: v == b"online")
        assert await operator.publish_acked(f"{BASE}/connector/1/cmd/disable", b"") == 0
        # The mains reading, sent after it by the same client, is acknowledged: the disable
        # before it reached the broker and was not delivered to the station.
        await operator.publish_acked(f"{BASE}/mains", '{"currents_a": [1, 2, 3]}')
        await operator.wait_for(f"{BASE}/ack", lambda a: a["topic"] == f"{BASE}/mains")
        assert [a["topic"] for a in operator.json(f"{BASE}/ack")] == [f"{BASE}/mains"]
        assert ("disable", ()) not in ports[1].calls
    finally:
        await close(operator)


async def test_spoofed_zero_mains_while_charging_is_refused(
    make_api: Callable[..., MqttApi],
    secured: Broker,
    ports: dict[int, FakePort],
    energy: EnergyManager,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 14: `[0,0,0]` while guns charge is refused with a security event, and no accepted
    reading ever raises what the guns share above the configured site limit."""
    api = make_api(username="station", password=USERS["station"], mains=True)
    await api.start()
    operator = await client(secured, username="operator", password=USERS["operator"])
    caplog.set_level(logging.WARNING)
    try:
        await ports[1].authorize("TAG")
        ports[1].plug_in()
        ports[1].ev_ready()
        ports[1].emit(MeterValue(energy_wh=10.0, power_w=11000.0, current_a=(16.0, 16.0, 16.0)))
        await operator.wait_for(f"{BASE}/connector/1/meter", lambda m: m["current_a"][:1] == [16])
        await operator.publish_acked(f"{BASE}/mains", '{"currents_a": [0, 0, 0]}')
        ack = await operator.wait_for(f"{BASE}/ack")
        assert ack["result"] == "refused" and "implausible" in ack["reason"]
        assert energy.snapshot().mains_a is None  # never reached the energy manager
        events = [r for r in caplog.records if r.name == LOGGER_NAME]
        assert [e.security_event for e in events] == [MQTT_MAINS_REFUSED]  # type: ignore[attr-defined]
        # Out of range and non-finite per phase: refused before any plausibility reasoning.
        for payload in ('{"currents_a": [20, 20, 81]}', '{"currents_a": [20, NaN, 20]}'):
            mark = len(operator.messages)
            await operator.publish_acked(f"{BASE}/mains", payload)
            ack = await operator.wait_for(f"{BASE}/ack", start=mark)
            assert ack["result"] == "refused" and "0..80 A" in ack["reason"], ack
        # A plausible reading is accepted and only ever lowers what the guns may share.
        mark = len(operator.messages)
        await operator.publish_acked(f"{BASE}/mains", '{"currents_a": [17, 16.5, 16]}')
        assert (await operator.wait_for(f"{BASE}/ack", start=mark))["result"] == "accepted"
        await until(lambda: energy.snapshot().mains_a == (17.0, 16.5, 16.0))
        assert energy.snapshot().available_a <= SITE_LIMIT_A
    finally:
        await close(operator)


# ------------------------------------------------------------------ TLS


def _tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 (IP SAN), as PEM files."""
    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def build(subject: str, issuer: str, key: ec.EllipticCurvePrivateKey, signer: object,
              ca: bool) -> x509.Certificate:  # fmt: skip
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(signer, hashes.SHA256())  # type: ignore[arg-type]

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("test broker CA", "test broker CA", ca_key, ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build("127.0.0.1", "test broker CA", key, ca_key, False)
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


async def test_tls_with_login_verifies_the_broker(
    tmp_path: Path, ports: dict[int, FakePort], caplog: pytest.LogCaptureFixture
) -> None:
    """TLS on, tls_insecure off (the default): a broker certificate from the configured CA is
    accepted (hostname 127.0.0.1 checked); with the system CAs it is refused and said so."""
    ca, cert, key = _tls_files(tmp_path)
    broker = Broker(tmp_path, users=USERS, acl=ACL, tls=(ca, cert, key))
    broker.start()
    apis: list[MqttApi] = []
    try:
        user, password = "station", USERS["station"]
        trusted = MqttApi(
            broker.host, broker.port, PREFIX, STATION, ports,
            username=user, password=password, tls=MqttTls(ca_file=str(ca)),
        )  # fmt: skip
        apis.append(trusted)
        await trusted.start()
        reader = await client(broker, "operator", USERS["operator"], ca_file=ca)
        try:
            await reader.wait_for(f"{BASE}/status", lambda v: v == b"online")
        finally:
            await close(reader)
        caplog.set_level(logging.ERROR)
        untrusted = MqttApi(
            broker.host, broker.port, PREFIX, "st2", ports,
            username=user, password=password, tls=MqttTls(),
        )  # fmt: skip
        apis.append(untrusted)
        await untrusted.start()
        await until(lambda: bool(untrusted.last_error))
        assert not untrusted.connected
        assert "TLS" in untrusted.last_error
    finally:
        for api in apis:
            await api.stop()
        broker.stop()


async def test_tls_files_that_cannot_be_used_are_one_line_errors(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing-ca.pem")
    api = MqttApi("127.0.0.1", 8883, PREFIX, STATION, {}, tls=MqttTls(ca_file=missing))
    with pytest.raises(MqttConfigError, match="TLS files unusable"):
        await api.start()
    await api.stop()


@pytest.mark.parametrize(
    ("mqtt", "fragment"),
    [
        ({"ca_file": "ca.pem"}, "mqtt.ca_file: only used with mqtt.tls = true"),
        ({"tls_insecure": True}, "mqtt.tls_insecure"),
        ({"password": "x"}, "mqtt.password: set mqtt.username"),
        ({"tls": True, "key_file": "k.pem"}, "mqtt.key_file"),
    ],
)
def test_mqtt_config_checks(mqtt: dict[str, object], fragment: str) -> None:
    from chargeport.config import _check

    with pytest.raises(ConfigError, match=fragment):
        _check(from_dict(MainConfig, {"mqtt": mqtt}))


def test_mqtt_config_defaults_are_safe() -> None:
    config = MqttConfig()
    assert (config.commands, config.mains, config.tls_insecure) == (False, False, False)
    tls = from_dict(MqttConfig, {"host": "b", "tls": True, "username": "u", "password": "p"})
    assert tls.tls_insecure is False
