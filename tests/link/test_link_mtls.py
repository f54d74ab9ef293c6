"""mTLS by default: the agent refuses a stranger's client, the main refuses a stranger's
satellite and a satellite whose certificate names another serial; plain text only when asked."""

from __future__ import annotations

from pathlib import Path

import grpc
from linkkit import Link, fake_port, wait_until

from chargeport.pki import channel_credentials, main_pair, satellite_pair, server_credentials
from satellite.host import AgentHost


async def test_mtls_link_comes_up(link: Link) -> None:
    await link.satellite(fake_port())
    rp = await link.remote()
    assert (await rp.status()).enabled


async def test_agent_refuses_a_client_from_another_ca(link: Link, stranger_pki: Path) -> None:
    host = await link.satellite(fake_port())
    rp = await link.remote(credentials=channel_credentials(stranger_pki), connect=False)
    await wait_until(lambda: rp.attempts >= 3 and rp.last_error != "")  # refused, again and again
    assert not rp.connected and host.agent.main_boot_id is None  # no RPC got through


async def test_agent_refuses_a_client_without_a_certificate(link: Link) -> None:
    host = await link.satellite(fake_port())
    ca_only = grpc.ssl_channel_credentials(root_certificates=(link.pki / "ca.pem").read_bytes())
    rp = await link.remote(credentials=ca_only, connect=False)
    await wait_until(lambda: rp.last_error != "")
    assert not rp.connected and host.agent.main_boot_id is None


async def test_main_refuses_a_satellite_from_another_ca(link: Link, stranger_pki: Path) -> None:
    stranger = AgentHost(fake_port(), serial="SAT-1", pki_dir=stranger_pki)
    await stranger.start()
    try:
        rp = await link.remote(address=stranger.address, connect=False)
        await wait_until(lambda: rp.attempts >= 3 and rp.last_error != "")
        assert not rp.connected and stranger.agent.main_boot_id is None
    finally:
        await stranger.stop(0)


async def test_main_refuses_a_satellite_whose_certificate_names_another_serial(
    link: Link,
) -> None:
    # A genuine station board (SAT-2's certificate) answering where SAT-1 is expected.
    impostor = await link.satellite(fake_port("SAT-2"), "SAT-2")
    rp = await link.remote("SAT-1", address=impostor.address, connect=False)
    await wait_until(lambda: rp.attempts >= 3 and rp.last_error != "")
    assert not rp.connected and impostor.agent.main_boot_id is None
    # The same satellite is accepted under its own serial.
    ok = await link.remote("SAT-2", connector=3)
    assert ok.connected


async def test_plain_text_only_with_the_explicit_flag(link: Link) -> None:
    secure = await link.satellite(fake_port(), "SAT-1")
    plain_main = await link.remote("SAT-1", secure=False, connect=False)
    await wait_until(lambda: plain_main.last_error != "")
    assert not plain_main.connected and secure.agent.main_boot_id is None
    insecure = await link.satellite(fake_port("SAT-2"), "SAT-2", secure=False)
    tls_main = await link.remote("SAT-2", connector=3, connect=False)
    await wait_until(lambda: tls_main.last_error != "")
    assert not tls_main.connected and insecure.agent.main_boot_id is None
    both_plain = await link.remote("SAT-2", connector=4, secure=False)
    assert both_plain.connected


def test_credentials_need_the_files(tmp_path: Path) -> None:
    import pytest

    from chargeport.pki import PkiError

    with pytest.raises(PkiError, match="pki init"):
        server_credentials(tmp_path, "SAT-1")
    with pytest.raises(PkiError, match="pki init"):
        channel_credentials(tmp_path)
    assert not main_pair(tmp_path).cert.exists() and not satellite_pair(tmp_path, "X").key.exists()
