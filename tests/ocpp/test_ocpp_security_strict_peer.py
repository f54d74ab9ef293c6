"""The security extension's CSMS -> station CALLs from the independent strict peer (npm
`ocpp-rpc` in strictMode, its own copy of the OCA whitepaper's OCPP 1.6 schemas): every
request it sends and every answer the station gives must validate, or the test fails."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ocpp_security_pki import Ca, issue, pem
from ocpp_station_fixture import running_station, until

from system_aggregator.fake import FakeStationSystem

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ocpp_peer"))
from strict_peer import StrictPeer, peer_ready

pytestmark = pytest.mark.integration


@pytest.fixture
async def strict() -> AsyncIterator[StrictPeer]:
    why = peer_ready()
    if why is not None:
        pytest.fail(why)
    async with StrictPeer() as running:
        yield running
    assert not running.schema_failures, running.schema_failures


async def test_security_calls_and_answers_validate_against_independent_schemas(
    tmp_path: Path, strict: StrictPeer
) -> None:
    root, maker = Ca.make("CSMS root"), Ca.make("Maker root")
    signer, _ = issue(maker, "firmware signing")
    async with running_station(
        tmp_path / "db.sqlite", strict.url, system=FakeStationSystem()
    ) as station:
        await until(lambda: station.session.online)

        async def status(method: str, params: dict[str, Any]) -> str:
            return str((await strict.call("CP-1", method, params))["status"])

        roots = [("CentralSystemRootCertificate", root), ("ManufacturerRootCertificate", maker)]
        for kind, ca in roots:
            params = {"certificateType": kind, "certificate": ca.pem}
            assert await status("InstallCertificate", params) == "Accepted"
        ids = await strict.call(
            "CP-1", "GetInstalledCertificateIds", {"certificateType": "ManufacturerRootCertificate"}
        )
        assert ids["status"] == "Accepted" and len(ids["certificateHashData"]) == 1
        for trigger in ("StatusNotification", "LogStatusNotification", "Heartbeat"):
            params = {"requestedMessage": trigger}
            assert await status("ExtendedTriggerMessage", params) == "Accepted"
        assert await status("CertificateSigned", {"certificateChain": pem(signer)}) == "Rejected"
        log = {"remoteLocation": "https://logs.example/up/"}
        answer = await strict.call(
            "CP-1", "GetLog", {"logType": "SecurityLog", "requestId": 5, "log": log}
        )
        assert answer["status"] == "Accepted" and answer["filename"]
        firmware = {
            "location": "https://127.0.0.1:9/fw.bin",
            "retrieveDateTime": "2099-01-01T00:00:00Z",
            "signingCertificate": pem(signer),
            "signature": "c2lnbmF0dXJl",
        }
        update = {"requestId": 6, "firmware": firmware}
        assert await status("SignedUpdateFirmware", update) == "Accepted"
        update = {"requestId": 7, "firmware": firmware}
        assert await status("SignedUpdateFirmware", update) == "AcceptedCanceled"
        params = {"certificateHashData": ids["certificateHashData"][0]}
        assert await status("DeleteCertificate", params) == "Accepted"
        for value, expected in (("3", "Rejected"), ("0", "Accepted")):
            answer = await strict.call(
                "CP-1", "ChangeConfiguration", {"key": "SecurityProfile", "value": value}
            )
            assert answer["status"] == expected
        config = await strict.call("CP-1", "GetConfiguration", {"key": ["AuthorizationKey"]})
        assert config["configurationKey"] == [{"key": "AuthorizationKey", "readonly": False}]
