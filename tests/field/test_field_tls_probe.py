"""A satellite's refused certificate is explained in one line (what, which board, the fix)."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chargeport.fake_port import FakePort
from chargeport.pki import init_pki
from chargeport.port import PortInfo
from main_node.tls_probe import explain_certificate, looks_like_tls_failure, probe_peer
from satellite.host import AgentHost

NOW = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)


def load_ca(pki: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate((pki / "ca.pem").read_bytes())
    key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def issue(
    pki: Path, name: str, *, not_before: datetime.datetime, not_after: datetime.datetime
) -> x509.Certificate:
    ca, ca_key = load_ca(pki)
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


@pytest.fixture
def station(tmp_path: Path) -> Path:
    init_pki(tmp_path / "station", "CP-1", ["SAT-0001", "SAT-0002"])
    return tmp_path / "station"


@pytest.fixture
def foreign(tmp_path: Path) -> Path:
    init_pki(tmp_path / "foreign", "CP-9", ["SAT-0002"])
    return tmp_path / "foreign"


def explain(cert: x509.Certificate, pki: Path, serial: str = "SAT-0002") -> str | None:
    ca, _ = load_ca(pki)
    return explain_certificate(
        cert, ca, serial=serial, now=NOW, where="10.0.0.12:50051", ca_path="pki/ca.pem"
    )


def test_each_refusal_reason_is_named(station: Path, foreign: Path) -> None:
    good = issue(station, "SAT-0002", not_before=NOW - DAY, not_after=NOW + DAY)
    assert explain(good, station) is None
    other = issue(station, "SAT-0001", not_before=NOW - DAY, not_after=NOW + DAY)
    assert explain(other, station) == (
        "satellite at 10.0.0.12:50051 presented a certificate for SAT-0001, expected SAT-0002"
    )
    stranger = issue(foreign, "SAT-0002", not_before=NOW - DAY, not_after=NOW + DAY)
    assert explain(stranger, station) == (
        "satellite at 10.0.0.12:50051: certificate not signed by the station CA (pki/ca.pem)"
    )
    old = issue(station, "SAT-0002", not_before=NOW - 30 * DAY, not_after=NOW - DAY)
    assert explain(old, station) == (
        "satellite at 10.0.0.12:50051: certificate expired on 2026-12-03 12:00 UTC"
    )
    early = issue(station, "SAT-0002", not_before=NOW + DAY, not_after=NOW + 30 * DAY)
    assert "not valid before 2026-12-05 12:00 UTC (check the board clocks)" in str(
        explain(early, station)
    )


@pytest.mark.parametrize(
    ("details", "tls"),
    [
        ("failed to connect to all addresses; last error: UNKNOWN: Ssl handshake failed", True),
        ("Peer name SAT-0002 is not in peer certificate", True),
        (
            "last error: UNKNOWN: ipv4:127.0.0.1:38511: Custom verification check failed with "
            "error: UNAUTHENTICATED: Hostname Verification Check failed.",
            True,
        ),
        ("failed to connect to all addresses; last error: Connection refused", False),
        # A link cut during the handshake is the network, not a certificate.
        (
            "ipv4:127.0.0.1:34309: Handshake read failed (recvmsg:Connection reset by peer (104))",
            False,
        ),
        ("ipv4:127.0.0.1:34309: Handshake read failed (Socket closed)", False),
    ],
)
def test_tls_failures_are_told_from_network_failures(details: str, tls: bool) -> None:
    assert looks_like_tls_failure(details) is tls


def fake(serial: str) -> FakePort:
    return FakePort(PortInfo(1, serial, "1.0.0", 32.0, 3))


@pytest.mark.integration
async def test_probe_names_the_serial_a_real_satellite_presents(station: Path) -> None:
    host = AgentHost(fake("SAT-0001"), serial="SAT-0001", pki_dir=station)
    port = await host.start()
    try:
        why = await _probe(port, station)
    finally:
        await host.stop()
    assert why == f"satellite at 127.0.0.1:{port} presented a certificate for SAT-0001, " + (
        "expected SAT-0002"
    )


@pytest.mark.integration
async def test_probe_names_a_foreign_ca(station: Path, foreign: Path) -> None:
    host = AgentHost(fake("SAT-0002"), serial="SAT-0002", pki_dir=foreign)
    port = await host.start()
    try:
        why = await _probe(port, station)
    finally:
        await host.stop()
    assert why is not None
    assert why.startswith(f"satellite at 127.0.0.1:{port}")
    assert "station CA" in why or "same `chargeport pki init`" in why


@pytest.mark.integration
async def test_probe_accepts_the_right_satellite(station: Path) -> None:
    host = AgentHost(fake("SAT-0002"), serial="SAT-0002", pki_dir=station)
    port = await host.start()
    try:
        assert await _probe(port, station) is None
    finally:
        await host.stop()


async def _probe(port: int, pki: Path) -> str | None:
    return await asyncio.to_thread(probe_peer, "127.0.0.1", port, serial="SAT-0002", pki_dir=pki)


@pytest.mark.integration
async def test_a_connection_cut_mid_handshake_is_not_called_a_certificate_problem(
    station: Path,
) -> None:
    """A cable cut or a dropping proxy breaks the handshake too: that is the network."""

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(10)
        writer.close()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert await _probe(port, station) is None
    finally:
        server.close()
        await server.wait_closed()
