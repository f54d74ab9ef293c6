"""OCPP 2.0.1 security messages against the independent strict central system (npm
`ocpp-rpc`, strictMode, `ocpp2.0.1`): certificate management (M03 / M04 / M05),
CertificateSigned (A02), the SecurityCtrlr variables and the SecurityEventNotification a
refused certificate causes are validated against the official 2.0.1 schemas both ways."""

from __future__ import annotations

from pathlib import Path

from ocpp201_kit import running_station, until
from ocpp_security_pki import Ca, issue, pem
from strict_peer import StrictPeer

from main_node.ocpp.certificates import hash_data

ID = "CP-201"


def _hash(ca: Ca) -> dict[str, str]:
    data = hash_data(ca.cert, ca.cert, "SHA256")
    return {
        "hashAlgorithm": data["hash_algorithm"],
        "issuerNameHash": data["issuer_name_hash"],
        "issuerKeyHash": data["issuer_key_hash"],
        "serialNumber": data["serial_number"],
    }


async def test_certificate_management_m03_m04_m05_a02(peer201: StrictPeer, tmp_path: Path) -> None:
    peer = peer201
    root, foreign = Ca.make("CSMS root"), Ca.make("Someone else")
    async with running_station(tmp_path / "db.sqlite", peer.url) as station:
        await until(lambda: station.session.online)
        installed = await peer.call(
            ID,
            "InstallCertificate",
            {"certificateType": "CSMSRootCertificate", "certificate": root.pem},
        )
        assert installed["status"] == "Accepted"
        v2g = await peer.call(
            ID,
            "InstallCertificate",
            {"certificateType": "V2GRootCertificate", "certificate": root.pem},
        )
        assert v2g["status"] == "Rejected"
        ids = await peer.call(
            ID, "GetInstalledCertificateIds", {"certificateType": ["CSMSRootCertificate"]}
        )
        assert ids["status"] == "Accepted"
        assert ids["certificateHashDataChain"][0]["certificateHashData"] == _hash(root)
        cert, _ = issue(foreign, ID, key=station.session.security.store.key())
        signed = await peer.call(
            ID,
            "CertificateSigned",
            {
                "certificateChain": pem(cert) + foreign.pem,
                "certificateType": "ChargingStationCertificate",
            },
        )
        assert signed["status"] == "Rejected"
        await peer.wait_for(
            lambda: any(
                p["type"] == "InvalidChargingStationCertificate"
                for p in peer.calls("SecurityEventNotification")
            )
        )
        deleted = await peer.call(ID, "DeleteCertificate", {"certificateHashData": _hash(root)})
        assert deleted["status"] == "Accepted"
        gone = await peer.call(ID, "GetInstalledCertificateIds", {})
        assert gone["status"] == "NotFound"


async def test_security_ctrlr_variables(peer201: StrictPeer, tmp_path: Path) -> None:
    peer = peer201
    async with running_station(tmp_path / "db.sqlite", peer.url) as station:
        await until(lambda: station.session.online)
        got = await peer.call(
            ID,
            "GetVariables",
            {
                "getVariableData": [
                    {"component": {"name": "SecurityCtrlr"}, "variable": {"name": name}}
                    for name in ("SecurityProfile", "BasicAuthPassword", "Identity")
                ]
            },
        )
        statuses = [r["attributeStatus"] for r in got["getVariableResult"]]
        assert statuses == ["Accepted", "Rejected", "Accepted"]
        done = await peer.call(
            ID,
            "SetVariables",
            {
                "setVariableData": [
                    {
                        "attributeValue": value,
                        "component": {"name": "SecurityCtrlr"},
                        "variable": {"name": name},
                    }
                    for name, value in (("SecurityProfile", "3"), ("BasicAuthPassword", "short"))
                ]
            },
        )
        assert [r["attributeStatus"] for r in done["setVariableResult"]] == ["Rejected", "Rejected"]
