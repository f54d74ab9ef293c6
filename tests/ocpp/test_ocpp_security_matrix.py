"""The station's OCPP 1.6 security-extension matrix (OCA "Improved security for OCPP 1.6-J",
edition 3), printed: security profiles 1/2/3 connect; a wrong password, an untrusted CSMS
certificate and an expired client certificate are each refused with a security event; a
downgrade is refused; how many of the whitepaper's eleven messages work, each tried live.

Run with `-s` to see the table."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ocpp.exceptions import OCPPError
from ocpp.v16 import call
from ocpp_security_pki import Ca, issue, pem, server_context
from ocpp_station_fixture import running_station, until

from main_node.ocpp.certificates import CSMS_ROOT, MANUFACTURER_ROOT, CertificateStore
from main_node.ocpp.client import OcppSession
from main_node.ocpp.security_handlers import SECURITY_ACTIONS
from main_node.ocpp.session_security import STARTUP
from simulation.csms import CentralSystem
from system_aggregator.fake import FakeStationSystem

pytestmark = pytest.mark.integration

PASSWORD = "0123456789abcdef-pw"


@dataclass
class Row:
    check: str
    result: str
    ok: bool


def seeded_state(tmp_path: Path, ca: Ca, *, expired: bool = False) -> None:
    """The state dir of a main that trusts `ca` and holds a client certificate from it."""
    store = CertificateStore(tmp_path / "ocpp-security")
    assert store.install(CSMS_ROOT, ca.pem, time.time()) == "Accepted"
    start, days = (-30.0, 10.0) if expired else (-1.0, 365.0)
    cert, _ = issue(ca, "CP-1", key=store.key(), start_days=start, days=days)
    store.store_client_chain(pem(cert))


def db(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory / "db.sqlite"


def trusting(ca: Ca) -> Callable[[OcppSession], None]:
    def setup(session: OcppSession) -> None:
        session.security.store.install(CSMS_ROOT, ca.pem, session.now())

    return setup


async def connects(csms: CentralSystem, tmp_path: Path, **kw: Any) -> bool:
    async with running_station(db(tmp_path), csms.url, **kw) as station:
        try:
            await until(lambda: station.session.online, within_s=10)
        except TimeoutError:
            return False
        return True


async def refused(csms: CentralSystem, tmp_path: Path, kinds: list[str], **kw: Any) -> str:
    """The security events journaled while `csms` refuses the station ("" = none)."""
    async with running_station(db(tmp_path), csms.url, **kw) as station:
        journal = station.session.security.events
        await until(lambda: {k for k, _, _ in journal.all()} >= set(kinds))
        assert not station.session.online and "CP-1" not in csms.connections
        return ", ".join(k for k, _, _ in journal.all() if k != STARTUP)


async def profile_rows(tmp_path: Path) -> list[Row]:
    rows: list[Row] = []
    ca, foreign = Ca.make("CSMS root"), Ca.make("Foreign")
    async with CentralSystem(password=PASSWORD) as csms:
        ok = await connects(csms, tmp_path / "p1", basic_auth_password=PASSWORD)
        rows.append(Row("profile 1 (Basic auth, ws://) connects", "y" if ok else "n", ok))
    ctx = server_context(tmp_path / "c2", ca)
    async with CentralSystem(password=PASSWORD, ssl_context=ctx) as csms:
        ok = await connects(csms, tmp_path / "p2", setup=trusting(ca), basic_auth_password=PASSWORD)
        rows.append(Row("profile 2 (Basic auth, wss://) connects", "y" if ok else "n", ok))
    seeded_state(tmp_path / "p3", ca)
    ctx = server_context(tmp_path / "c3", ca, client_ca=ca)
    async with CentralSystem(ssl_context=ctx) as csms:
        ok = await connects(csms, tmp_path / "p3") and csms.logins[-1] == ("", "CP-1")
        rows.append(Row("profile 3 (client certificate) connects", "y" if ok else "n", ok))
    async with CentralSystem(password="the-right-password-42") as csms:
        kind = "FailedToAuthenticateAtCentralSystem"
        got = await refused(csms, tmp_path / "r1", [kind], basic_auth_password=PASSWORD)
        rows.append(Row("wrong password refused, event", got, kind in got))
    ctx = server_context(tmp_path / "c4", foreign)
    async with CentralSystem(password=PASSWORD, ssl_context=ctx) as csms:
        kind = "InvalidCentralSystemCertificate"
        got = await refused(
            csms, tmp_path / "r2", [kind], setup=trusting(ca), basic_auth_password=PASSWORD
        )
        rows.append(Row("untrusted CSMS certificate refused, event", got, kind in got))
    seeded_state(tmp_path / "r3", ca, expired=True)
    ctx = server_context(tmp_path / "c5", ca, client_ca=ca)
    async with CentralSystem(ssl_context=ctx) as csms:
        kinds = ["InvalidChargePointCertificate", "FailedToAuthenticateAtCentralSystem"]
        got = await refused(csms, tmp_path / "r3", kinds)
        ok = all(k in got for k in kinds)
        rows.append(Row("expired client certificate refused, event", got, ok))
    ctx = server_context(tmp_path / "c6", ca)
    async with (
        CentralSystem(password=PASSWORD, ssl_context=ctx) as csms,
        running_station(
            db(tmp_path / "d"),
            csms.url,
            setup=trusting(ca),
            basic_auth_password=PASSWORD,
        ) as station,
    ):
        await until(lambda: station.session.online)
        answers = [await csms.change_configuration("SecurityProfile", v) for v in ("1", "0")]
        ok = answers == ["Rejected", "Rejected"] and station.session.security.profile == 2
        rows.append(Row("downgrade 2 -> 1 / 0 refused", "/".join(answers), ok))
    return rows


async def message_rows(tmp_path: Path) -> tuple[list[Row], int]:
    """Each of the eleven messages tried against a live station."""
    ca, maker = Ca.make("CSMS root"), Ca.make("Maker root")
    signer, _ = issue(maker, "firmware signing")
    works: dict[str, str] = {}
    system = FakeStationSystem()
    async with (
        CentralSystem(signer=(ca.cert, ca.key)) as csms,
        running_station(db(tmp_path / "m"), csms.url, system=system) as station,
    ):
        await until(lambda: station.session.online)

        async def answer(payload: Any) -> str:
            try:
                result = await csms.send(payload)
            except OCPPError as exc:
                return f"CALLERROR {exc.code}"
            return str(getattr(result, "status", "answered"))

        works["InstallCertificate"] = await answer(
            call.InstallCertificate(certificate_type=CSMS_ROOT, certificate=ca.pem)
        )
        await answer(
            call.InstallCertificate(certificate_type=MANUFACTURER_ROOT, certificate=maker.pem)
        )
        works["GetInstalledCertificateIds"] = await answer(
            call.GetInstalledCertificateIds(certificate_type=MANUFACTURER_ROOT)
        )
        works["ExtendedTriggerMessage"] = await answer(
            call.ExtendedTriggerMessage(requested_message="SignChargePointCertificate")
        )
        await csms.wait_for(lambda: csms.actions("SignCertificate"))
        works["SignCertificate"] = "sent"
        signed = await csms.wait_for(lambda: csms.actions("CertificateSigned.conf"))
        works["CertificateSigned"] = str(signed[0]["status"])
        works["GetLog"] = await answer(
            call.GetLog(
                log={"remoteLocation": "https://logs.example/"},
                log_type="SecurityLog",
                request_id=3,
            )
        )
        await csms.wait_for(lambda: csms.actions("LogStatusNotification"))
        works["LogStatusNotification"] = str(csms.actions("LogStatusNotification")[-1]["status"])
        works["SignedUpdateFirmware"] = await answer(
            # Nothing listens on port 9: no I/O leaves the host.
            call.SignedUpdateFirmware(
                request_id=4,
                firmware={
                    "location": "https://127.0.0.1:9/fw.bin",
                    "retrieveDateTime": "2020-01-01T00:00:00Z",
                    "signingCertificate": pem(signer),
                    "signature": "c2lnbmF0dXJl",
                },
            )
        )
        await csms.wait_for(lambda: csms.actions("SignedFirmwareStatusNotification"))
        first = csms.actions("SignedFirmwareStatusNotification")[0]
        works["SignedFirmwareStatusNotification"] = str(first["status"])
        _, ids = await csms.installed_certificate_ids(MANUFACTURER_ROOT)
        works["DeleteCertificate"] = await answer(
            call.DeleteCertificate(certificate_hash_data=ids[0])
        )
        # A chain for someone else's key: refused, and reported as a security event.
        await answer(call.CertificateSigned(certificate_chain=pem(signer)))
        await csms.wait_for(lambda: csms.actions("SecurityEventNotification"))
        works["SecurityEventNotification"] = csms.security_events()[0]
    rows = []
    for action in SECURITY_ACTIONS:
        result = works.get(action, "CALLERROR (not tried)")
        rows.append(Row(f"  {action}", result, not result.startswith("CALLERROR")))
    return rows, sum(r.ok for r in rows)


async def test_security_extension_matrix(tmp_path: Path) -> None:
    rows = await profile_rows(tmp_path)
    messages, count = await message_rows(tmp_path)
    rows.append(Row("security-extension messages implemented", f"{count}/11", count == 11))
    rows.extend(messages)
    width = max(len(r.check) for r in rows)
    print()
    print(f"{'station check':<{width}}  result")
    for r in rows:
        print(f"{r.check:<{width}}  {r.result}{'' if r.ok else '   <-- FAILS'}")
    assert all(r.ok for r in rows), [r for r in rows if not r.ok]
