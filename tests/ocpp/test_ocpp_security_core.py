"""The pure parts of the OCPP 1.6 security extension, table-driven (OCA "Improved security
for OCPP 1.6-J", edition 3): profile and key rules (§2), refusal classification (Appendix 1
security events), chain checks (§3) and the write-only key in GetConfiguration."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

import pytest
from ocpp_security_pki import Ca, issue
from websockets.datastructures import Headers
from websockets.exceptions import InvalidMessage, InvalidStatus
from websockets.http11 import Response

from main_node.ocpp.certificates import verify_chain
from main_node.ocpp.config_keys import ChangeStatus, ConfigStore, KeySpec
from main_node.ocpp.db import open_db
from main_node.ocpp.security_events import MAX_PENDING, SecurityEventJournal
from main_node.ocpp.security_profile import (
    Credentials,
    Event,
    Failure,
    Persist,
    Prerequisites,
    ProfileCore,
    Reconnect,
    classify,
    initial_profile,
    url_for,
)
from main_node.ocpp.session_security import TLS12_CIPHERS, client_context

KEY = "0123456789abcdef"
ALL = Prerequisites(csms_root=True, client_certificate=True)
NONE = Prerequisites(csms_root=False, client_certificate=False)


@pytest.mark.parametrize(
    ("current", "key", "value", "have", "status"),
    [
        (1, KEY, "0", ALL, "Rejected"),  # §2: the profile never goes down
        (2, KEY, "1", ALL, "Rejected"),
        (3, "", "2", ALL, "Rejected"),
        (2, KEY, "2", NONE, "Accepted"),  # the same value: nothing to do
        (1, KEY, "2", ALL, "Accepted"),
        (1, KEY, "2", NONE, "Rejected"),  # profile 2 needs a CentralSystemRootCertificate
        (0, "", "1", ALL, "Rejected"),  # Basic auth needs an AuthorizationKey
        (2, KEY, "3", Prerequisites(True, False), "Rejected"),  # no client certificate
        (2, KEY, "3", ALL, "Accepted"),
        (1, KEY, "4", ALL, "Rejected"),
        (1, KEY, "-1", ALL, "Rejected"),
        (1, KEY, "two", ALL, "Rejected"),
    ],
)
def test_security_profile_change_rules_whitepaper_2(
    current: int, key: str, value: str, have: Prerequisites, status: str
) -> None:
    core = ProfileCore(Credentials(current, key))
    got, effects = core.change_profile(value, have)
    assert got == status
    raised = got == "Accepted" and int(value) > current
    assert any(isinstance(e, Reconnect) for e in effects) is raised
    assert core.in_use().profile == (int(value) if raised else current)


@pytest.mark.parametrize(
    ("value", "status"),
    [("short", "Rejected"), ("x" * 16, "Accepted"), ("x" * 40, "Accepted"), ("x" * 41, "Rejected"),
     ("0123456789abcde\n", "Rejected")],
)  # fmt: skip
def test_authorization_key_length_whitepaper_2_2(value: str, status: str) -> None:
    core = ProfileCore(Credentials(1, KEY))
    got, effects = core.change_key(value)
    assert got == status
    assert core.committed.key == KEY  # used from the next connection, not at once
    assert (core.in_use().key == value) is (status == "Accepted")
    assert not any(isinstance(e, Reconnect) for e in effects)


def test_pending_credentials_commit_on_open_and_fall_back_on_refusal() -> None:
    core = ProfileCore(Credentials(1, KEY))
    core.change_profile("2", ALL)
    assert core.failed(Failure.NETWORK, "refused") == []  # CSMS down: try again, no fallback
    assert core.pending is not None
    effects = core.failed(Failure.TLS, "handshake reset")
    assert core.pending is None and core.in_use() == Credentials(1, KEY)
    assert [e.kind for e in effects if isinstance(e, Event)] == ["SecurityProfileFallback"]
    assert any(isinstance(e, Persist) and e.pending is None for e in effects)
    core.change_profile("2", ALL)
    assert core.opened() == [Persist(Credentials(2, KEY), None)]
    assert core.committed.profile == 2


def test_same_refusal_is_one_event_until_a_connection_opens() -> None:
    core = ProfileCore(Credentials(1, KEY))
    first = core.failed(Failure.BAD_CREDENTIALS, "HTTP 401")
    assert first == [Event("FailedToAuthenticateAtCentralSystem", "HTTP 401")]
    assert core.failed(Failure.BAD_CREDENTIALS, "HTTP 401") == []
    core.opened()
    assert core.failed(Failure.BAD_CREDENTIALS, "HTTP 401") == first


def _status(code: int) -> InvalidStatus:
    return InvalidStatus(Response(code, "x", Headers()))


def _wrapped(inner: BaseException) -> BaseException:
    outer = InvalidMessage("did not receive a valid HTTP response")
    outer.__cause__ = inner
    return outer


@pytest.mark.parametrize(
    ("exc", "tls", "cert", "failure"),
    [
        (_status(401), False, False, Failure.BAD_CREDENTIALS),
        (_status(403), True, False, Failure.BAD_CREDENTIALS),
        (_status(500), False, False, Failure.NETWORK),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), True, False,
         Failure.UNTRUSTED_CSMS),
        (_wrapped(EOFError("closed")), True, True, Failure.BAD_CREDENTIALS),  # TLS 1.3 refusal
        (ConnectionRefusedError(), True, False, Failure.NETWORK),
        (TimeoutError(), True, True, Failure.TLS),  # connected, the handshake never ended
        (TimeoutError(), False, False, Failure.NETWORK),
        (socket.gaierror(), True, False, Failure.NETWORK),
        (ConnectionResetError(), True, False, Failure.TLS),  # a peer that speaks no TLS
        (ConnectionResetError(), False, False, Failure.NETWORK),
    ],
)  # fmt: skip
def test_refusals_classified_as_whitepaper_security_events(
    exc: BaseException, tls: bool, cert: bool, failure: Failure
) -> None:
    assert classify(exc, tls=tls, client_certificate=cert)[0] is failure


@pytest.mark.parametrize(
    ("url", "password", "cert", "profile"),
    [
        ("ws://h/ocpp", "", False, 0),
        ("ws://h/ocpp", KEY, False, 1),
        ("wss://h/ocpp", KEY, False, 2),
        ("wss://h/ocpp", "", True, 3),
        ("wss://h/ocpp", "", False, 0),
    ],
)
def test_initial_profile_from_the_station_config(
    url: str, password: str, cert: bool, profile: int
) -> None:
    assert initial_profile(url, password, cert) == profile


def test_tls_profiles_use_wss() -> None:
    assert url_for(2, "ws://h:9/ocpp?x=1") == "wss://h:9/ocpp?x=1"
    assert url_for(1, "ws://h:9/ocpp") == "ws://h:9/ocpp"
    assert url_for(3, "wss://h/ocpp") == "wss://h/ocpp"


def test_chain_checks_dates_signatures_and_roots() -> None:
    root, other, sub = Ca.make("root"), Ca.make("other"), Ca.make("sub")
    now = time.time()
    good, _ = issue(root, "CP")
    expired, _ = issue(root, "CP", start_days=-30, days=10)
    future, _ = issue(root, "CP", start_days=5)
    foreign, _ = issue(other, "CP")
    assert verify_chain([good], [root.cert], now) is None
    assert verify_chain([good, root.cert], [root.cert], now) is None
    assert "expired" in (verify_chain([expired], [root.cert], now) or "")
    assert "not valid before" in (verify_chain([future], [root.cert], now) or "")
    assert "not an installed root" in (verify_chain([foreign], [root.cert], now) or "")
    assert verify_chain([foreign, root.cert], [root.cert], now) is not None  # not signed by it
    assert verify_chain([], [root.cert], now) == "empty chain"
    assert verify_chain([issue(sub, "CP")[0]], [root.cert], now) is not None


class _Hook:
    def __init__(self) -> None:
        self.secret = ""

    def read(self) -> str | None:
        return None

    def write(self, value: str) -> ChangeStatus:
        self.secret = value
        return "Accepted"


def test_write_only_key_has_no_value_in_get_configuration(tmp_path: Path) -> None:
    """AuthorizationKey is write-only: GetConfiguration lists it without its value."""
    store = ConfigStore(open_db(tmp_path / "s.db"))
    hook = _Hook()
    store.attach(KeySpec("AuthorizationKey", "str", ""), hook)
    assert store.change("AuthorizationKey", KEY) == "Accepted" and hook.secret == KEY
    known, _ = store.get(["AuthorizationKey"])
    assert known == [{"key": "AuthorizationKey", "readonly": False}]
    assert KEY not in str(store.get(None))


def test_security_event_journal_is_bounded_and_ordered(tmp_path: Path) -> None:
    journal = SecurityEventJournal(open_db(tmp_path / "s.db"))
    for i in range(MAX_PENDING + 5):
        journal.add("InvalidMessages", f"n{i}", float(i))
    first = journal.next()
    assert first is not None and first.detail == "n5"  # the 5 oldest went
    journal.delivered(first.id)
    second = journal.next()
    assert second is not None and second.detail == "n6"


def test_tls_client_is_tls_1_2_plus_with_the_whitepapers_suites_2_3() -> None:
    """Profiles 2 and 3: TLS 1.2 or above; TLS 1.2 only with ECDHE and AES-GCM."""
    ctx = client_context()
    assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode is ssl.CERT_REQUIRED and ctx.check_hostname
    tls12 = {c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert tls12 == set(TLS12_CIPHERS.split(":"))
