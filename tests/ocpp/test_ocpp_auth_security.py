"""Local authorization list + cache (OCPP 1.6 section 3.5) and security profiles 1 and 2."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ocpp_station_fixture import make_ports, running_station
from waiting import until

from chargeport.fake_port import FakePort
from chargeport.port import SessionEvent, SessionEventType, TransactionData
from simulation.csms import CentralSystem


def _present(port: FakePort, tag: str) -> None:
    """An RFID swipe: AuthRequired carrying the presented id tag."""
    sid = port.plug_in()
    port.emit(SessionEvent(SessionEventType.AUTH_REQUIRED, sid, TransactionData("", tag, 0.0)))


async def test_local_list_and_cache_authorize_offline_ocpp16_3_5(tmp_path: Path) -> None:
    """Section 3.5: online tags are cached; offline the local list and cache decide."""
    ports = make_ports()
    csms = CentralSystem(accepted_tags=["CACHE-1"])
    await csms.start()
    try:
        async with running_station(tmp_path / "db.sqlite", csms.url, ports) as station:
            await csms.wait_for(lambda: len(csms.statuses) >= 5)
            entry = {"idTag": "LOCAL-1", "idTagInfo": {"status": "Accepted"}}
            assert await csms.send_local_list(1, [entry]) == "Accepted"
            _present(ports[1], "CACHE-1")  # online: Authorize.req, answer cached
            authorized = ("authorize", ("CACHE-1", None))
            await asyncio.wait_for(until(lambda: authorized in ports[1].calls), 5)
            assert csms.actions("Authorize") == [{"id_tag": "CACHE-1"}]
            await csms.stop()
            await asyncio.wait_for(until(lambda: not station.session.online), 5)
            _present(ports[2], "LOCAL-1")
            _present(ports[3], "CACHE-1")
            _present(ports[4], "STRANGER")
            await asyncio.wait_for(
                until(lambda: ("authorize", ("CACHE-1", None)) in ports[3].calls), 5
            )
            assert ("authorize", ("LOCAL-1", None)) in ports[2].calls
            assert not any(name == "authorize" for name, _ in ports[4].calls)
    finally:
        await csms.stop()


async def test_security_profile_1_basic_auth(tmp_path: Path) -> None:
    """Security profile 1: HTTP Basic auth with the charge point id and password."""
    async with CentralSystem(password="s3cret-pass") as csms:
        async with running_station(tmp_path / "a.sqlite", csms.url, basic_auth_password="nope"):
            await csms.wait_for(lambda: csms.rejected_logins >= 2)
            assert csms.connects == 0
        async with running_station(
            tmp_path / "b.sqlite", csms.url, basic_auth_password="s3cret-pass"
        ):
            await csms.wait_for(lambda: len(csms.statuses) >= 5)


def _pki(tmp: Path) -> tuple[Path, ssl.SSLContext]:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CSMS CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = tmp / "ca.pem", tmp / "csms.pem", tmp / "csms.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_file, key_file)
    return ca_file, ctx


async def test_security_profile_2_tls_with_local_ca(tmp_path: Path) -> None:
    """Security profile 2: wss:// verified against the configured CA, plus Basic auth."""
    ca_file, server_ctx = _pki(tmp_path)
    async with CentralSystem(password="s3cret-pass", ssl_context=server_ctx) as csms:
        assert csms.url.startswith("wss://")
        async with running_station(
            tmp_path / "db.sqlite",
            csms.url,
            basic_auth_password="s3cret-pass",
            ca_file=str(ca_file),
        ):
            await csms.wait_for(lambda: len(csms.statuses) >= 5)
