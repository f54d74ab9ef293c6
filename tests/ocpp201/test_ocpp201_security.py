"""OCPP 2.0.1 security over real websockets and real TLS on loopback, sharing the 1.6 security
extension's core, store and journal: profiles 1-3 (Part 2 A00 / A01 / A05 via SetVariables),
SignCertificate -> CertificateSigned (A02), certificate management (M03 / M04 / M05) and the
refusals as SecurityEventNotification with their 2.0.1 names (A04)."""

from __future__ import annotations

import stat
import sys
import time
from pathlib import Path
from typing import Any

from ocpp.v201 import call
from ocpp201_kit import running_station, until

from main_node.ocpp.certificates import CSMS_ROOT, CertificateStore, hash_data
from main_node.ocpp201.device_model import DeviceModel, VarKey, catalog
from main_node.ocpp201.security import event_name
from simulation.csms201 import CentralSystem201

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ocpp"))  # the shared test PKI
from ocpp_security_pki import Ca, issue, pem, server_context

PASSWORD = "0123456789abcdef-pw"  # BasicAuthPassword: 16..40 characters (A01)
ID = "CP-201"


def trust(tmp_path: Path, ca: Ca) -> CertificateStore:
    """The state dir as an installer leaves it: `ca` as the CSMSRootCertificate."""
    store = CertificateStore(tmp_path / "ocpp-security")
    assert store.install(CSMS_ROOT, ca.pem, time.time()) == "Accepted"
    return store


async def variable(csms: CentralSystem201, component: str, name: str) -> dict[str, Any]:
    result: list[dict[str, Any]] = await csms.get_variables((component, name))
    return result[0]


async def test_profile_2_over_tls_checked_against_the_installed_root(tmp_path: Path) -> None:
    """Profile 2 (A00): Basic auth over wss://, the CSMS certificate verified with the installed
    CSMSRootCertificate (no ca_file, no system CAs); the password is write-only (B06)."""
    ca = Ca.make("CSMS root")
    trust(tmp_path, ca)
    async with (
        CentralSystem201(password=PASSWORD, ssl_context=server_context(tmp_path / "c", ca)) as csms,
        running_station(tmp_path / "db.sqlite", csms.url, basic_auth_password=PASSWORD) as station,
    ):
        await until(lambda: station.session.online)
        assert csms.url.startswith("wss://")
        assert csms.logins[-1] == ("Basic", "")
        assert (await variable(csms, "SecurityCtrlr", "SecurityProfile"))["attribute_value"] == "2"
        assert (await variable(csms, "SecurityCtrlr", "Identity"))["attribute_value"] == ID
        password = await variable(csms, "SecurityCtrlr", "BasicAuthPassword")
        assert password["attribute_status"] == "Rejected" and "attribute_value" not in password
        # Only upwards (whitepaper §2 / A05): lower and unknown values are Rejected.
        assert await csms.set_variable("SecurityCtrlr", "SecurityProfile", "1") == "Rejected"
        assert await csms.set_variable("SecurityCtrlr", "SecurityProfile", "0") == "Rejected"
        assert await csms.set_variable("SecurityCtrlr", "SecurityProfile", "7") == "Rejected"
        assert await csms.set_variable("SecurityCtrlr", "SecurityProfile", "2") == "Accepted"
        assert await csms.set_variable("SecurityCtrlr", "SecurityProfile", "3") == "Rejected"
        assert csms.connects == 1  # nothing changed: no reconnect


async def test_profile_3_after_sign_certificate_then_never_lower(tmp_path: Path) -> None:
    """Profile 2 -> 3 (A02 then A05): TriggerMessage(SignChargingStationCertificate), a CSR of
    the shared station key (0600), CertificateSigned checked against the installed root, then
    SecurityProfile 3: the station reconnects with its client certificate and no Basic auth;
    a lower profile is Rejected afterwards."""
    ca = Ca.make("CSMS root")
    store = trust(tmp_path, ca)
    ctx = server_context(tmp_path / "c", ca, client_ca=ca, optional=True)
    async with (
        CentralSystem201(password=PASSWORD, ssl_context=ctx, signer=(ca.cert, ca.key)) as csms,
        running_station(tmp_path / "db.sqlite", csms.url, basic_auth_password=PASSWORD) as station,
    ):
        await until(lambda: station.session.online)
        assert await csms.set_variable("SecurityCtrlr", "OrganizationName", "ACME CPO") == (
            "Accepted"
        )
        # Profile 3 needs a client certificate first.
        assert await csms.set_variable("SecurityCtrlr", "SecurityProfile", "3") == "Rejected"
        triggered = await csms.send(
            call.TriggerMessage(requested_message="SignChargingStationCertificate")
        )
        assert triggered.status == "Accepted"
        signed = await csms.wait_for(lambda: csms.actions("CertificateSigned.result"))
        assert signed[0]["status"] == "Accepted"
        request = csms.actions("SignCertificate")[0]
        assert request["certificate_type"] == "ChargingStationCertificate"
        assert "BEGIN CERTIFICATE REQUEST" in request["csr"]
        assert stat.S_IMODE(store.key_path.stat().st_mode) == 0o600
        subject = store.client_chain()[0].subject.rfc4514_string()
        assert subject == f"O=ACME CPO,CN={ID}"
        connects = csms.connects
        assert await csms.set_variable("SecurityCtrlr", "SecurityProfile", "3") == "Accepted"
        await csms.wait_for(lambda: csms.connects > connects and ID in csms.connections)
        assert csms.logins[-1] == ("", ID)  # client certificate, no Authorization header
        await until(lambda: station.session.online)
        assert (await variable(csms, "SecurityCtrlr", "SecurityProfile"))["attribute_value"] == "3"
        assert await csms.set_variable("SecurityCtrlr", "SecurityProfile", "2") == "Rejected"
        await csms.wait_for(lambda: "ReconfigurationOfSecurityParameters" in csms.security_events())


async def test_wrong_password_reported_with_the_2_0_1_event_name(tmp_path: Path) -> None:
    """A 401 is journaled while offline (the shared journal) and reaches the CSMS as
    FailedToAuthenticateAtCsms once the CSMS takes the password (A04)."""
    async with (
        CentralSystem201(password="the-right-password-42") as csms,
        running_station(tmp_path / "db.sqlite", csms.url, basic_auth_password=PASSWORD),
    ):
        await csms.wait_for(lambda: csms.rejected_logins >= 2)
        csms.password = PASSWORD  # the operator fixes the CSMS side
        await csms.wait_for(lambda: "FailedToAuthenticateAtCsms" in csms.security_events())
        assert "FailedToAuthenticateAtCentralSystem" not in csms.security_events()


async def test_new_basic_auth_password_takes_a_new_connection_a01(tmp_path: Path) -> None:
    """A01: SetVariables BasicAuthPassword (16..40 characters) is Accepted and the station
    reconnects with it; a short one is Rejected."""
    new = "another-password-0042"
    async with (
        CentralSystem201(password=PASSWORD) as csms,
        running_station(tmp_path / "db.sqlite", csms.url, basic_auth_password=PASSWORD) as station,
    ):
        await until(lambda: station.session.online)
        assert await csms.set_variable("SecurityCtrlr", "BasicAuthPassword", "short") == "Rejected"
        csms.password = new  # the CSMS expects the new one from the next connection
        connects = csms.connects
        assert await csms.set_variable("SecurityCtrlr", "BasicAuthPassword", new) == "Accepted"
        await csms.wait_for(lambda: csms.connects > connects and ID in csms.connections)
        assert csms.rejected_logins == 0
        assert (await variable(csms, "SecurityCtrlr", "SecurityProfile"))["attribute_value"] == "1"


async def test_certificate_management_m03_m04_m05(tmp_path: Path) -> None:
    """InstallCertificate (M05) of CSMS and manufacturer roots, GetInstalledCertificateIds (M03)
    with the RFC 6960 hash data, DeleteCertificate (M04); V2G roots and non-CA certificates are
    Rejected; CertificateEntries follows."""
    csms_root, maker = Ca.make("CSMS root"), Ca.make("Manufacturer root")
    leaf, _ = issue(csms_root, "not a CA")
    async with (
        CentralSystem201() as csms,
        running_station(tmp_path / "db.sqlite", csms.url) as station,
    ):
        await until(lambda: station.session.online)

        async def install(kind: str, text: str) -> str:
            result = await csms.send(
                call.InstallCertificate(certificate_type=kind, certificate=text)
            )
            return str(result.status)

        empty = await csms.send(call.GetInstalledCertificateIds())
        assert empty.status == "NotFound"
        assert await install("CSMSRootCertificate", csms_root.pem) == "Accepted"
        assert await install("ManufacturerRootCertificate", maker.pem) == "Accepted"
        assert await install("V2GRootCertificate", csms_root.pem) == "Rejected"
        assert await install("CSMSRootCertificate", pem(leaf)) == "Rejected"
        assert await install("CSMSRootCertificate", "not a certificate") == "Rejected"
        entries = await variable(csms, "SecurityCtrlr", "CertificateEntries")
        assert entries["attribute_value"] == "2"
        ids = await csms.send(
            call.GetInstalledCertificateIds(certificate_type=["CSMSRootCertificate"])
        )
        assert ids.status == "Accepted"
        [chain] = ids.certificate_hash_data_chain
        assert chain["certificate_type"] == "CSMSRootCertificate"
        expected = hash_data(csms_root.cert, csms_root.cert, "SHA256")
        assert chain["certificate_hash_data"] == expected
        every = await csms.send(call.GetInstalledCertificateIds())
        kinds = {c["certificate_type"] for c in every.certificate_hash_data_chain}
        assert kinds == {"CSMSRootCertificate", "ManufacturerRootCertificate"}
        deleted = await csms.send(call.DeleteCertificate(certificate_hash_data=expected))
        assert deleted.status == "Accepted"
        again = await csms.send(call.DeleteCertificate(certificate_hash_data=expected))
        assert again.status == "NotFound"
        left = await csms.send(
            call.GetInstalledCertificateIds(certificate_type=["CSMSRootCertificate"])
        )
        assert left.status == "NotFound"
        assert station.session.security.store.roots(CSMS_ROOT) == []


async def test_last_csms_root_in_use_is_not_deleted(tmp_path: Path) -> None:
    """M04: deleting the only root the TLS connection is checked with would cut the station
    off: Failed, and the root stays."""
    ca = Ca.make("CSMS root")
    trust(tmp_path, ca)
    async with (
        CentralSystem201(password=PASSWORD, ssl_context=server_context(tmp_path / "c", ca)) as csms,
        running_station(tmp_path / "db.sqlite", csms.url, basic_auth_password=PASSWORD) as station,
    ):
        await until(lambda: station.session.online)
        data = hash_data(ca.cert, ca.cert, "SHA256")
        result = await csms.send(call.DeleteCertificate(certificate_hash_data=data))
        assert result.status == "Failed"
        assert len(station.session.security.store.roots(CSMS_ROOT)) == 1


async def test_certificate_signed_from_a_foreign_ca_is_rejected_and_reported(
    tmp_path: Path,
) -> None:
    """A02: a chain that does not lead to an installed root (or is not for the station's key)
    is Rejected and reported as InvalidChargingStationCertificate; nothing is stored."""
    ours, foreign = Ca.make("CSMS root"), Ca.make("Someone else")
    store = trust(tmp_path, ours)
    async with (
        CentralSystem201() as csms,
        running_station(tmp_path / "db.sqlite", csms.url) as station,
    ):
        await until(lambda: station.session.online)
        wrong_ca, _ = issue(foreign, ID, key=store.key())
        wrong_key, _ = issue(ours, ID)
        for cert, issuer in ((wrong_ca, foreign), (wrong_key, ours)):
            chain = pem(cert) + issuer.pem
            result = await csms.send(
                call.CertificateSigned(
                    certificate_chain=chain, certificate_type="ChargingStationCertificate"
                )
            )
            assert result.status == "Rejected"
        v2g = await csms.send(
            call.CertificateSigned(certificate_chain=ours.pem, certificate_type="V2GCertificate")
        )
        assert v2g.status == "Rejected"
        assert store.client_chain() == []
        await csms.wait_for(
            lambda: csms.security_events().count("InvalidChargingStationCertificate") >= 3
        )


def test_write_only_and_owned_variables_in_the_device_model(tmp_path: Path) -> None:
    """B06 / B07: a WriteOnly variable is Rejected on read and reported without a value; a
    variable another part owns is written through its callback, not the table."""
    from main_node.ocpp.db import open_db

    conn = open_db(tmp_path / "db.sqlite")
    written: list[tuple[VarKey, str]] = []

    def write(key: VarKey, value: str) -> Any:
        if key.variable in ("BasicAuthPassword", "SecurityProfile"):
            written.append((key, value))
            return "Accepted"
        return None

    try:
        model = DeviceModel(conn, catalog([1]), write=write)
        password = VarKey("SecurityCtrlr", "BasicAuthPassword")
        assert model.set(password, PASSWORD) == "Accepted"
        assert model.get(password) == ("Rejected", None)
        assert model.set(VarKey("SecurityCtrlr", "Identity"), "X") == "Rejected"  # ReadOnly
        assert written == [(password, PASSWORD)]
        [reported] = [
            r for r in model.report("FullInventory") if r["variable"]["name"] == "BasicAuthPassword"
        ]
        assert reported["variableAttribute"][0]["mutability"] == "WriteOnly"
        assert "value" not in reported["variableAttribute"][0]
        stored = conn.execute(
            "SELECT COUNT(*) FROM ocpp201_variables WHERE variable = 'BasicAuthPassword'"
        ).fetchone()
        assert stored == (0,)  # the password is the shared core's, never in the variable table
    finally:
        conn.close()


def test_event_names_2_0_1() -> None:
    """The shared journal's 1.6 names as 2.0.1 sends them (Part 2 appendix, security events)."""
    table = {
        "FailedToAuthenticateAtCentralSystem": "FailedToAuthenticateAtCsms",
        "InvalidCentralSystemCertificate": "InvalidCsmsCertificate",
        "InvalidChargePointCertificate": "InvalidChargingStationCertificate",
        "StartupOfTheDevice": "StartupOfTheDevice",
        "ReconfigurationOfSecurityParameters": "ReconfigurationOfSecurityParameters",
    }
    for shared, sent in table.items():
        assert event_name(shared) == sent


async def test_raised_profile_that_fails_falls_back_and_reports_it(tmp_path: Path) -> None:
    """Profile 1 -> 2 is Accepted (a CSMS root is installed) but the CSMS does not speak TLS:
    the station falls back to profile 1 and reconnects there, reporting the reconfiguration
    and SecurityProfileFallback (the shared core's rules)."""
    trust(tmp_path, Ca.make("CSMS root"))
    async with (
        CentralSystem201(password=PASSWORD) as csms,
        running_station(tmp_path / "db.sqlite", csms.url, basic_auth_password=PASSWORD) as station,
    ):
        await until(lambda: station.session.online)
        connects = csms.connects
        assert await csms.set_variable("SecurityCtrlr", "SecurityProfile", "2") == "Accepted"
        await csms.wait_for(lambda: "SecurityProfileFallback" in csms.security_events())
        assert csms.connects > connects  # back in over ws:// with profile 1
        assert station.session.security.profile == 1
        assert "ReconfigurationOfSecurityParameters" in csms.security_events()
        assert (await variable(csms, "SecurityCtrlr", "SecurityProfile"))["attribute_value"] == "1"


async def test_untrusted_csms_certificate_is_refused_and_reported(tmp_path: Path) -> None:
    """A CSMS certificate from a foreign CA: no login is sent, and InvalidCsmsCertificate
    reaches the CSMS once it shows a certificate the station trusts."""
    ours, foreign = Ca.make("CSMS root"), Ca.make("Someone else")
    trust(tmp_path, ours)
    csms = CentralSystem201(
        password=PASSWORD, ssl_context=server_context(tmp_path / "bad", foreign)
    )
    await csms.start()
    port = csms.port
    try:
        async with running_station(
            tmp_path / "db.sqlite", csms.url, basic_auth_password=PASSWORD
        ) as station:
            journal = station.session.security_events
            await until(
                lambda: any(k == "InvalidCentralSystemCertificate" for k, _, _ in journal.all())
            )
            assert csms.logins == []  # the password never went to the impostor
            await csms.stop()
            csms.ssl_context = server_context(tmp_path / "good", ours)
            await csms.start(port)
            await csms.wait_for(lambda: "InvalidCsmsCertificate" in csms.security_events())
    finally:
        await csms.stop()


async def test_refused_new_password_falls_back_to_the_old_one_a01(tmp_path: Path) -> None:
    """A01 with a password the CSMS does not know: the new connection gets a 401, the station
    goes back to the password that worked and reports both (shared core, 2.0.1 names)."""
    async with (
        CentralSystem201(password=PASSWORD) as csms,
        running_station(tmp_path / "db.sqlite", csms.url, basic_auth_password=PASSWORD) as station,
    ):
        await until(lambda: station.session.online)
        new = "nobody-knows-this-one-7"
        assert await csms.set_variable("SecurityCtrlr", "BasicAuthPassword", new) == "Accepted"
        await csms.wait_for(lambda: "SecurityProfileFallback" in csms.security_events())
        assert csms.rejected_logins >= 1
        assert "FailedToAuthenticateAtCsms" in csms.security_events()
        assert station.session.security.core.in_use().key == PASSWORD


async def test_expiring_client_certificate_is_renewed_by_the_station_a03(tmp_path: Path) -> None:
    """A03: a profile 3 station whose certificate expires within 30 days sends SignCertificate
    on connecting by itself; the CertificateSigned chain replaces the old certificate."""
    ca = Ca.make("CSMS root")
    store = trust(tmp_path, ca)
    old, _ = issue(ca, ID, key=store.key(), start_days=-355, days=365)  # 10 days left
    store.store_client_chain(pem(old) + ca.pem)
    ctx = server_context(tmp_path / "c", ca, client_ca=ca)
    async with (
        CentralSystem201(ssl_context=ctx, signer=(ca.cert, ca.key)) as csms,
        running_station(tmp_path / "db.sqlite", csms.url) as station,
    ):
        await until(lambda: station.session.online)
        assert csms.logins[-1] == ("", ID)  # profile 3 with the old certificate
        signed = await csms.wait_for(lambda: csms.actions("CertificateSigned.result"))
        assert signed[0]["status"] == "Accepted"
        assert len(csms.actions("SignCertificate")) == 1
        renewed = store.client_chain()[0]
        assert renewed.not_valid_after_utc > old.not_valid_after_utc
        assert not station.session.security.renewal_due()
