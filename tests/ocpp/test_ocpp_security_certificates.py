"""Certificate management and ExtendedTriggerMessage from a live CSMS (OCA "Improved security
for OCPP 1.6-J", edition 3, §3 "Certificate management" and ExtendedTriggerMessage)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from ocpp_security_pki import Ca, issue, pem, server_context
from ocpp_station_fixture import running_station, until

from main_node.ocpp.certificates import CSMS_ROOT, MANUFACTURER_ROOT
from simulation.csms import CentralSystem

PASSWORD = "0123456789abcdef-pw"


def expected_hash_data(ca: Ca) -> dict[str, str]:
    """CertificateHashData computed independently (RFC 6960 CertID over a self-signed root)."""
    name = ca.cert.issuer.public_bytes()
    point = ca.cert.public_key().public_bytes(  # the subjectPublicKey BIT STRING of an EC key
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return {
        "hash_algorithm": "SHA256",
        "issuer_name_hash": hashlib.sha256(name).hexdigest(),
        "issuer_key_hash": hashlib.sha256(point).hexdigest(),
        "serial_number": format(ca.cert.serial_number, "x"),
    }


async def test_install_list_delete_roots_persisted_in_the_state_dir(tmp_path: Path) -> None:
    """InstallCertificate, GetInstalledCertificateIds, DeleteCertificate for both root types;
    installed roots survive a restart of the main."""
    csms_root, maker_root = Ca.make("CSMS root"), Ca.make("Maker root")
    leaf, _ = issue(csms_root, "not a CA")
    db = tmp_path / "db.sqlite"
    async with CentralSystem() as csms, running_station(db, csms.url) as station:
        await until(lambda: station.session.online)
        assert await csms.installed_certificate_ids(CSMS_ROOT) == ("NotFound", [])
        assert await csms.install_certificate(CSMS_ROOT, csms_root.pem) == "Accepted"
        assert await csms.install_certificate(MANUFACTURER_ROOT, maker_root.pem) == "Accepted"
        assert await csms.install_certificate(CSMS_ROOT, "not a certificate") == "Rejected"
        assert await csms.install_certificate(CSMS_ROOT, pem(leaf)) == "Rejected"  # no CA
        status, ids = await csms.installed_certificate_ids(CSMS_ROOT)
        assert status == "Accepted" and ids == [expected_hash_data(csms_root)]
        status, ids = await csms.installed_certificate_ids(MANUFACTURER_ROOT)
        assert ids == [expected_hash_data(maker_root)]
    files = sorted(p.parent.name for p in (tmp_path / "ocpp-security").glob("*/*.pem"))
    assert files == [CSMS_ROOT, MANUFACTURER_ROOT]
    async with CentralSystem() as csms, running_station(db, csms.url) as station:
        await until(lambda: station.session.online)
        status, ids = await csms.installed_certificate_ids(MANUFACTURER_ROOT)
        assert ids == [expected_hash_data(maker_root)]
        assert await csms.delete_certificate(ids[0]) == "Accepted"
        assert await csms.delete_certificate(ids[0]) == "NotFound"
        assert await csms.installed_certificate_ids(MANUFACTURER_ROOT) == ("NotFound", [])


async def test_the_last_csms_root_in_use_is_not_deleted(tmp_path: Path) -> None:
    """At profile 2, deleting the only CentralSystemRootCertificate would cut the station off
    from its CSMS: Failed (whitepaper: DeleteCertificate.conf Failed)."""
    ca = Ca.make("CSMS root")
    async with (
        CentralSystem(password=PASSWORD, ssl_context=server_context(tmp_path / "c", ca)) as csms,
        running_station(
            tmp_path / "db.sqlite",
            csms.url,
            setup=lambda s: s.security.store.install(CSMS_ROOT, ca.pem, s.now()) and None,
            basic_auth_password=PASSWORD,
        ) as station,
    ):
        await until(lambda: station.session.online)
        _, ids = await csms.installed_certificate_ids(CSMS_ROOT)
        assert await csms.delete_certificate(ids[0]) == "Failed"
        assert (await csms.installed_certificate_ids(CSMS_ROOT))[1] == ids


async def test_certificate_signed_for_another_key_or_ca_is_rejected(tmp_path: Path) -> None:
    """CertificateSigned is checked: the leaf must carry the station's key and chain to an
    installed CSMS root; otherwise Rejected with InvalidChargePointCertificate."""
    ca, stranger = Ca.make("CSMS root"), Ca.make("Stranger")
    async with (
        CentralSystem() as csms,
        running_station(tmp_path / "db.sqlite", csms.url) as station,
    ):
        await until(lambda: station.session.online)
        assert await csms.install_certificate(CSMS_ROOT, ca.pem) == "Accepted"
        store = station.session.security.store
        other_key, _ = issue(ca, "CP-1")  # a fresh key, not the station's
        from_stranger, _ = issue(stranger, "CP-1", key=store.key())
        for chain in (pem(other_key) + ca.pem, pem(from_stranger) + stranger.pem):
            result = await csms.send(_signed(chain))
            assert result.status == "Rejected"
        await csms.wait_for(
            lambda: csms.security_events().count("InvalidChargePointCertificate") == 2
        )
        assert store.client_chain() == []
        good, _ = issue(ca, "CP-1", key=store.key())
        assert (await csms.send(_signed(pem(good) + ca.pem))).status == "Accepted"
        assert store.client_chain()[0] == good


def _signed(chain: str) -> object:
    from ocpp.v16 import call

    return call.CertificateSigned(certificate_chain=chain)


async def test_extended_trigger_message_sends_each_requested_message(tmp_path: Path) -> None:
    """ExtendedTriggerMessage: each MessageTrigger is Accepted and its message follows."""
    ca = Ca.make("CSMS root")
    cases = [
        ("BootNotification", "BootNotification"),
        ("Heartbeat", "Heartbeat"),
        ("StatusNotification", "StatusNotification"),
        ("MeterValues", "MeterValues"),
        ("FirmwareStatusNotification", "SignedFirmwareStatusNotification"),
        ("LogStatusNotification", "LogStatusNotification"),
        ("SignChargePointCertificate", "SignCertificate"),
    ]
    async with (
        CentralSystem(signer=(ca.cert, ca.key)) as csms,
        running_station(tmp_path / "db.sqlite", csms.url) as station,
    ):
        await until(lambda: station.session.online)
        station.ports[1].meter(1500.0, 7000.0)  # a reading for MeterValues to carry
        await until(lambda: 1 in station.session.latest_meter)
        for trigger, message in cases:
            before = len(csms.actions(message))
            assert await csms.extended_trigger(trigger, connector_id=None) == "Accepted"
            await csms.wait_for(lambda: len(csms.actions(message)) > before)  # noqa: B023
        assert csms.actions("SignedFirmwareStatusNotification")[-1]["status"] == "Idle"
        assert csms.actions("LogStatusNotification")[-1]["status"] == "Idle"
        assert await csms.extended_trigger("StatusNotification", connector_id=99) == "Rejected"


async def test_sign_certificate_is_sent_again_when_no_certificate_comes(tmp_path: Path) -> None:
    """No CertificateSigned within CertSigningWaitMinimum: SignCertificate again (whitepaper
    1.6 ed. 3, CertSigningWaitMinimum / CertSigningRepeatTimes); the second one is signed."""
    ca = Ca.make("CSMS root")
    async with (
        CentralSystem(signer=(ca.cert, ca.key)) as csms,
        running_station(tmp_path / "db.sqlite", csms.url) as station,
    ):
        await until(lambda: station.session.online)
        assert await csms.install_certificate(CSMS_ROOT, ca.pem) == "Accepted"
        assert await csms.change_configuration("CertSigningWaitMinimum", "1") == "Accepted"
        csms.unanswered_csrs = 1
        assert await csms.extended_trigger("SignChargePointCertificate") == "Accepted"
        signed = await csms.wait_for(lambda: csms.actions("CertificateSigned.conf"))
        assert signed == [{"status": "Accepted"}]
        assert len(csms.actions("SignCertificate")) == 2
        assert station.session.security.store.client_chain() != []
