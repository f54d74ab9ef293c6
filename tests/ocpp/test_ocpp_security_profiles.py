"""Security profiles 1-3 over real websockets and real TLS on loopback (OCA "Improved security
for OCPP 1.6-J", edition 3, §2): each connects; a wrong password, an untrusted CSMS certificate
and an expired client certificate are refused with a security event that reaches the CSMS once
it can; the profile only goes up; a failed connection after a change falls back."""

from __future__ import annotations

import asyncio
import stat
import sys
import time
from pathlib import Path
from typing import Any

from ocpp.v16 import call
from ocpp_security_pki import Ca, issue, pem, server_context
from ocpp_station_fixture import running_station, until

from main_node.ocpp.certificates import CSMS_ROOT, CertificateStore
from main_node.ocpp.client import OcppSession
from main_node.ocpp.security_events import SecurityEventJournal
from main_node.ocpp.session_security import STARTUP
from simulation.csms import CentralSystem

PASSWORD = "0123456789abcdef-pw"  # AuthorizationKey: 16..40 characters


def trust(ca: Ca) -> Any:
    """A station setup that installs `ca` as its CentralSystemRootCertificate."""

    def setup(session: OcppSession) -> None:
        assert session.security.store.install(CSMS_ROOT, ca.pem, session.now()) == "Accepted"

    return setup


def refusals(journal: SecurityEventJournal) -> list[str]:
    """The journaled security events other than the station's start."""
    return [kind for kind, _, _ in journal.all() if kind != STARTUP]


async def config(csms: CentralSystem, key: str) -> dict[str, Any]:
    result = await csms.send(call.GetConfiguration(key=[key]))
    entries: list[dict[str, Any]] = result.configuration_key
    return entries[0]


async def test_profile_1_basic_auth_over_ws_and_the_key_is_write_only(tmp_path: Path) -> None:
    """Profile 1: Basic auth over ws://; GetConfiguration never shows AuthorizationKey."""
    async with (
        CentralSystem(password=PASSWORD) as csms,
        running_station(tmp_path / "db.sqlite", csms.url, basic_auth_password=PASSWORD) as station,
    ):
        await until(lambda: station.session.online)
        assert csms.logins[-1] == ("Basic", "")
        assert (await config(csms, "SecurityProfile"))["value"] == "1"
        key = await config(csms, "AuthorizationKey")
        assert key["readonly"] is False and "value" not in key


async def test_profile_2_checks_the_csms_against_the_installed_root(tmp_path: Path) -> None:
    """Profile 2: Basic auth over wss://, the CSMS certificate verified by an installed
    CentralSystemRootCertificate (no ca_file, no system CAs)."""
    ca = Ca.make("CSMS root")
    ctx = server_context(tmp_path / "csms", ca)
    async with (
        CentralSystem(password=PASSWORD, ssl_context=ctx) as csms,
        running_station(
            tmp_path / "db.sqlite", csms.url, setup=trust(ca), basic_auth_password=PASSWORD
        ) as station,
    ):
        await until(lambda: station.session.online)
        assert csms.url.startswith("wss://")
        assert csms.logins[-1] == ("Basic", "")
        assert (await config(csms, "SecurityProfile"))["value"] == "2"


async def test_profile_3_by_sign_certificate_then_a_raised_profile(tmp_path: Path) -> None:
    """Profile 2 -> 3 the whitepaper's way: ExtendedTriggerMessage(SignChargePointCertificate),
    SignCertificate with a CSR of a key made on the main (0600), CertificateSigned, then
    SecurityProfile 3: the station reconnects with its client certificate and no Basic auth."""
    ca = Ca.make("CSMS root")
    ctx = server_context(tmp_path / "csms", ca, client_ca=ca, optional=True)
    async with (
        CentralSystem(password=PASSWORD, ssl_context=ctx, signer=(ca.cert, ca.key)) as csms,
        running_station(
            tmp_path / "db.sqlite", csms.url, setup=trust(ca), basic_auth_password=PASSWORD
        ) as station,
    ):
        await until(lambda: station.session.online)
        # Profile 3 needs a client certificate first.
        assert await csms.change_configuration("SecurityProfile", "3") == "Rejected"
        assert await csms.extended_trigger("SignChargePointCertificate") == "Accepted"
        signed = await csms.wait_for(lambda: csms.actions("CertificateSigned.conf"))
        assert signed[0]["status"] == "Accepted"
        store = station.session.security.store
        assert stat.S_IMODE(store.key_path.stat().st_mode) == 0o600
        assert store.client_chain()[0].subject.rfc4514_string() == "CN=CP-1"
        connects = csms.connects
        assert await csms.change_configuration("SecurityProfile", "3") == "Accepted"
        await csms.wait_for(lambda: csms.connects > connects and "CP-1" in csms.connections)
        assert csms.logins[-1] == ("", "CP-1")  # client certificate, no Authorization header
        assert (await config(csms, "SecurityProfile"))["value"] == "3"
        await csms.wait_for(lambda: "ReconfigurationOfSecurityParameters" in csms.security_events())


async def test_wrong_password_is_refused_and_reported_once_online(tmp_path: Path) -> None:
    """A 401 is FailedToAuthenticateAtCentralSystem, journaled while offline and sent once a
    connection is up (whitepaper: security events are queued)."""
    async with (
        CentralSystem(password="the-right-password-42") as csms,
        running_station(tmp_path / "db.sqlite", csms.url, basic_auth_password=PASSWORD) as station,
    ):
        await csms.wait_for(lambda: csms.rejected_logins >= 2)
        journal = station.session.security.events
        await until(lambda: refusals(journal))
        assert refusals(journal) == ["FailedToAuthenticateAtCentralSystem"]
        await csms.wait_for(lambda: csms.rejected_logins >= 4)
        assert len(refusals(journal)) == 1  # the same refusal again is not a new event
        csms.password = PASSWORD  # the operator fixes the CSMS side
        await csms.wait_for(lambda: "FailedToAuthenticateAtCentralSystem" in csms.security_events())


async def test_untrusted_csms_certificate_is_refused_and_reported(tmp_path: Path) -> None:
    """A CSMS certificate from a foreign CA: InvalidCentralSystemCertificate, no login sent."""
    ours, foreign = Ca.make("CSMS root"), Ca.make("Someone else")
    csms = CentralSystem(password=PASSWORD, ssl_context=server_context(tmp_path / "bad", foreign))
    await csms.start()
    port = csms.port
    try:
        async with running_station(
            tmp_path / "db.sqlite", csms.url, setup=trust(ours), basic_auth_password=PASSWORD
        ) as station:
            journal = station.session.security.events
            await until(lambda: refusals(journal))
            assert refusals(journal) == ["InvalidCentralSystemCertificate"]
            assert csms.logins == []  # the password never went to the impostor
            await csms.stop()
            csms.ssl_context = server_context(tmp_path / "good", ours)
            await csms.start(port)
            await csms.wait_for(lambda: "InvalidCentralSystemCertificate" in csms.security_events())
    finally:
        await csms.stop()


async def test_expired_client_certificate_is_refused_and_reported(tmp_path: Path) -> None:
    """Profile 3 with an expired client certificate: the CSMS refuses the TLS handshake; the
    station reports InvalidChargePointCertificate and FailedToAuthenticateAtCentralSystem."""
    ca = Ca.make("CSMS root")
    # The state dir as the main left it: a CSMS root, the station key and an expired cert.
    store = CertificateStore(tmp_path / "ocpp-security")
    assert store.install(CSMS_ROOT, ca.pem, time.time()) == "Accepted"
    cert, _ = issue(ca, "CP-1", key=store.key(), start_days=-30, days=10)
    store.store_client_chain(pem(cert))

    csms = CentralSystem(ssl_context=server_context(tmp_path / "strict", ca, client_ca=ca))
    await csms.start()
    port = csms.port
    try:
        async with running_station(tmp_path / "db.sqlite", csms.url) as station:
            journal = station.session.security.events
            await until(lambda: len(refusals(journal)) >= 2)
            kinds = refusals(journal)
            assert kinds == ["InvalidChargePointCertificate", "FailedToAuthenticateAtCentralSystem"]
            assert station.session.security.profile == 3
            assert csms.logins == []
            # A CSMS that no longer asks for a certificate lets the events through.
            await csms.stop()
            csms.ssl_context = server_context(tmp_path / "lax", ca)
            await csms.start(port)
            await csms.wait_for(lambda: len(csms.security_events()) >= 3)
            assert csms.security_events()[:3] == [STARTUP, *kinds]  # in order, none lost
    finally:
        await csms.stop()


async def test_profile_only_goes_up(tmp_path: Path) -> None:
    """SecurityProfile lower than the current one is Rejected; the same value changes nothing;
    a profile without its prerequisites is Rejected (whitepaper 1.6 ed. 3, §2)."""
    ca = Ca.make("CSMS root")
    async with (
        CentralSystem(password=PASSWORD, ssl_context=server_context(tmp_path / "c", ca)) as csms,
        running_station(
            tmp_path / "db.sqlite", csms.url, setup=trust(ca), basic_auth_password=PASSWORD
        ) as station,
    ):
        await until(lambda: station.session.online)
        assert await csms.change_configuration("SecurityProfile", "1") == "Rejected"
        assert await csms.change_configuration("SecurityProfile", "0") == "Rejected"
        assert await csms.change_configuration("SecurityProfile", "7") == "Rejected"
        assert await csms.change_configuration("SecurityProfile", "2") == "Accepted"
        assert await csms.change_configuration("SecurityProfile", "3") == "Rejected"  # no cert
        assert (await config(csms, "SecurityProfile"))["value"] == "2"
        assert csms.connects == 1


async def test_raised_profile_that_fails_falls_back_and_reports_it(tmp_path: Path) -> None:
    """Profile 1 -> 2 accepted (a CSMS root is installed), but the CSMS that answers on wss://
    shows a certificate from another CA: the station falls back to profile 1 and, once a
    connection is up, reports InvalidCentralSystemCertificate and SecurityProfileFallback."""
    ca, foreign = Ca.make("CSMS root"), Ca.make("Foreign")
    csms = CentralSystem(password=PASSWORD)
    await csms.start()
    port = csms.port
    try:
        async with running_station(
            tmp_path / "db.sqlite", csms.url, basic_auth_password=PASSWORD
        ) as station:
            await until(lambda: station.session.online)
            assert await csms.install_certificate(CSMS_ROOT, ca.pem) == "Accepted"
            assert await csms.change_configuration("SecurityProfile", "2") == "Accepted"
            await csms.stop()
            csms.ssl_context = server_context(tmp_path / "foreign", foreign)
            await csms.start(port)
            journal = station.session.security.events
            await until(lambda: "SecurityProfileFallback" in {k for k, _, _ in journal.all()})
            assert station.session.security.profile == 1
            await csms.stop()
            csms.ssl_context = None  # back to what profile 1 can reach
            await csms.start(port)
            await csms.wait_for(lambda: "SecurityProfileFallback" in csms.security_events())
            assert "InvalidCentralSystemCertificate" in csms.security_events()
            assert (await config(csms, "SecurityProfile"))["value"] == "1"
    finally:
        await csms.stop()


async def test_raised_profile_is_kept_once_it_connects(tmp_path: Path) -> None:
    """Profile 1 -> 2: the CSMS moves to TLS on the same address; the station follows and
    keeps profile 2 across a restart."""
    ca = Ca.make("CSMS root")
    csms = CentralSystem(password=PASSWORD)
    await csms.start()
    port = csms.port
    try:
        async with running_station(
            tmp_path / "db.sqlite", csms.url, basic_auth_password=PASSWORD
        ) as station:
            await until(lambda: station.session.online)
            assert await csms.install_certificate(CSMS_ROOT, ca.pem) == "Accepted"
            await csms.stop()  # the station's next attempts meet a closed port: no fallback
            await until(lambda: not station.session.online)
            # Changed while offline (as if the CSMS had asked just before it went away).
            assert station.session.config.change("SecurityProfile", "2") == "Accepted"
            csms.ssl_context = server_context(tmp_path / "c", ca)
            await csms.start(port)
            await until(lambda: station.session.online)
            assert station.session.security.core.pending is None
            assert station.session.security.core.committed.profile == 2
        async with running_station(
            tmp_path / "db.sqlite", f"ws://127.0.0.1:{port}/ocpp", basic_auth_password=PASSWORD
        ) as station:
            await until(lambda: station.session.online)  # wss://, though the config says ws://
            assert station.session.security.profile == 2
    finally:
        await csms.stop()


async def test_stand_alone_sim_csms_serves_profile_3(tmp_path: Path) -> None:
    """`python -m simulation.csms --tls-cert .. --client-ca ..` is a profile 3 CSMS: a
    station with a client certificate from that CA connects to it."""
    ca = Ca.make("CSMS root")
    server_context(tmp_path / "csms", ca)  # writes csms.pem / csms.key
    (tmp_path / "ca.pem").write_text(ca.pem)
    store = CertificateStore(tmp_path / "ocpp-security")
    assert store.install(CSMS_ROOT, ca.pem, time.time()) == "Accepted"
    store.store_client_chain(pem(issue(ca, "CP-1", key=store.key())[0]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulation.csms", "--port", "0",
        "--tls-cert", str(tmp_path / "csms" / "csms.pem"),
        "--tls-key", str(tmp_path / "csms" / "csms.key"),
        "--client-ca", str(tmp_path / "ca.pem"),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        url = line.split()[-1]
        assert url.startswith("wss://127.0.0.1:")
        async with running_station(tmp_path / "db.sqlite", url) as station:
            await until(lambda: station.session.online)
            assert station.session.security.profile == 3
    finally:
        proc.terminate()
        await proc.wait()
