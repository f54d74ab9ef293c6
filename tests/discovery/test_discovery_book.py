"""DiscoveryBook, the pure core of mDNS discovery: address policy and reports (no sockets).

Names cite RFC 6763 (DNS-SD: instance names, TXT) and RFC 6762 (mDNS: goodbyes, conflicts).
"""

from __future__ import annotations

import pytest

from main_node.discovery import BoardRecord, DiscoveryBook
from satellite.advertiser import (
    AdvertiserError,
    Interface,
    advertised_addresses,
    decode_txt,
    txt_record,
    zeroconf_interfaces,
)


def rec(instance: str, address: str, port: int = 50051, serial: str | None = None) -> BoardRecord:
    return BoardRecord(
        serial=serial or instance,
        role="satellite",
        address=address,
        port=port,
        firmware_version="1.0.0",
        boot_id="b1",
        protocol_version=1,
        instance=instance,
        host=f"{instance}-x.local",
        addresses=(address,),
    )


def test_txt_record_roundtrip_rfc6763_6() -> None:
    txt = txt_record("SAT-1", 1, "2.0.0", "boot-9", "satellite")
    assert txt == {
        "serial": "SAT-1",
        "proto": "1",
        "fw": "2.0.0",
        "boot": "boot-9",
        "role": "satellite",
    }
    raw = {k.encode(): v.encode() for k, v in txt.items()} | {b"flag": None}
    assert decode_txt(raw) == txt | {"flag": ""}


@pytest.mark.parametrize(
    ("configured", "expected"),
    [(None, "all"), (["all"], "all"), (["127.0.0.1"], ["127.0.0.1"])],
)
def test_interface_choice(configured: list[str] | None, expected: object) -> None:
    choice = zeroconf_interfaces(configured)
    assert (choice if isinstance(choice, list) else "all") == expected


# (steps, serial, expected current) - steps: ("see", record) | ("bye", instance)
STATIC = {"SAT-1": ("192.0.2.10", 7000)}
CASES = [
    ("unseen, no static -> None", [], "SAT-1", None, {}),
    ("unseen, static -> static", [], "SAT-1", ("192.0.2.10", 7000), STATIC),
    (
        "discovered beats static",
        [("see", rec("SAT-1", "10.0.0.2"))],
        "SAT-1",
        ("10.0.0.2", 50051),
        STATIC,
    ),
    (
        "address change is followed",
        [("see", rec("SAT-1", "10.0.0.2")), ("see", rec("SAT-1", "10.0.0.3"))],
        "SAT-1",
        ("10.0.0.3", 50051),
        {},
    ),
    (
        "goodbye (RFC 6762 10.1) falls back to static",
        [("see", rec("SAT-1", "10.0.0.2")), ("bye", "SAT-1")],
        "SAT-1",
        ("192.0.2.10", 7000),
        STATIC,
    ),
    (
        "goodbye without static keeps the last address",
        [("see", rec("SAT-1", "10.0.0.2")), ("bye", "SAT-1")],
        "SAT-1",
        ("10.0.0.2", 50051),
        {},
    ),
    (
        "duplicate serial (RFC 6762 9 rename) never steals the first",
        [("see", rec("SAT-1", "10.0.0.2")), ("see", rec("SAT-1-2", "10.0.0.9", serial="SAT-1"))],
        "SAT-1",
        ("10.0.0.2", 50051),
        {},
    ),
    (
        "first of a duplicate leaves -> the other one is used",
        [
            ("see", rec("SAT-1", "10.0.0.2")),
            ("see", rec("SAT-1-2", "10.0.0.9", serial="SAT-1")),
            ("bye", "SAT-1"),
        ],
        "SAT-1",
        ("10.0.0.9", 50051),
        {},
    ),
]


@pytest.mark.parametrize(
    ("steps", "serial", "expected", "static"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_address_policy(
    steps: list[tuple[str, object]],
    serial: str,
    expected: tuple[str, int] | None,
    static: dict[str, tuple[str, int]],
) -> None:
    book = DiscoveryBook({"SAT-1": 2}, static=static)
    for kind, arg in steps:
        if kind == "see":
            assert isinstance(arg, BoardRecord)
            book.observe(arg)
        else:
            assert isinstance(arg, str)
            book.withdraw(arg)
    assert book.current(serial) == expected


def test_observe_reports_only_real_changes() -> None:
    book = DiscoveryBook({"SAT-1": 2})
    assert book.observe(rec("SAT-1", "10.0.0.2")) == {"SAT-1"}
    assert book.observe(rec("SAT-1", "10.0.0.2")) == set()  # re-announce, same address
    assert book.observe(rec("SAT-1-2", "10.0.0.9", serial="SAT-1")) == set()  # duplicate: unused
    assert book.withdraw("unknown") == set()
    assert book.withdraw("SAT-1") == {"SAT-1"}


def test_report_never_seen_only_after_timeout() -> None:
    book = DiscoveryBook({"SAT-1": 2, "SAT-2": 3}, started_at=100.0, never_seen_after_s=5.0)
    book.observe(rec("SAT-1", "10.0.0.2"))
    early = book.report(now=104.0)
    assert (early.pending, early.never_seen) == (["SAT-2"], [])
    late = book.report(now=105.0)
    assert (late.pending, late.never_seen) == ([], ["SAT-2"])
    assert any("SAT-2 is configured but was never seen" in p for p in late.problems())


def test_report_duplicates_unconfigured_withdrawn() -> None:
    book = DiscoveryBook({"SAT-1": 2, "SAT-2": 3})
    book.observe(rec("SAT-1", "10.0.0.2"))
    book.observe(rec("SAT-1-2", "10.0.0.9", serial="SAT-1"))
    book.observe(rec("SAT-2", "10.0.0.3"))
    book.observe(rec("STRAY", "10.0.0.4"))
    book.withdraw("SAT-2")
    report = book.report(now=0.0)
    (dup,) = report.duplicates
    assert dup.serial == "SAT-1"
    assert dup.instances == ("SAT-1", "SAT-1-2")
    assert dup.used == ("10.0.0.2", 50051)
    assert report.unconfigured == ["STRAY"]
    assert report.withdrawn == ["SAT-2"]
    assert [b.instance for b in report.boards] == ["SAT-1", "SAT-1-2", "STRAY"]
    assert len(report.problems()) == 3


def test_browse_mode_reports_nothing_missing_or_unconfigured() -> None:
    book = DiscoveryBook(None, never_seen_after_s=0.0)
    book.observe(rec("ANY", "10.0.0.2"))
    report = book.report(now=99.0)
    assert (report.unconfigured, report.never_seen, report.problems()) == ([], [], [])


# ------------------------------------------------------------------ what a board advertises

HOST = [
    Interface("lo", ("127.0.0.1",)),
    Interface("eth0", ("10.0.0.12",)),
    Interface("wlan0", ("192.168.5.7",)),
    Interface("can0", ()),
]

# (why, mdns_interfaces, explicit addresses, published) - the shipped example used 0.0.0.0,
# which a satellite published as its own address, so a main on another host dialled itself.
ADVERTISED = [
    ("0.0.0.0 is a wildcard: every LAN address", ["0.0.0.0"], None, ["10.0.0.12", "192.168.5.7"]),
    ("'all' is the same wildcard", ["all"], None, ["10.0.0.12", "192.168.5.7"]),
    ("no list is the same wildcard", None, None, ["10.0.0.12", "192.168.5.7"]),
    ("an interface name -> its addresses", ["eth0"], None, ["10.0.0.12"]),
    ("an address of this host", ["192.168.5.7"], None, ["192.168.5.7"]),
    ("loopback only when named (one-host station)", ["127.0.0.1"], None, ["127.0.0.1"]),
    ("explicit addresses win", ["all"], ["10.0.0.99"], ["10.0.0.99"]),
]


@pytest.mark.parametrize(
    ("why", "entries", "explicit", "published"), ADVERTISED, ids=[c[0] for c in ADVERTISED]
)
def test_advertised_addresses_never_publish_the_wildcard(
    why: str, entries: list[str] | None, explicit: list[str] | None, published: list[str]
) -> None:
    assert advertised_addresses(entries, explicit, HOST) == published
    assert "0.0.0.0" not in published


def test_wildcard_on_a_host_with_only_loopback_falls_back_to_loopback() -> None:
    assert advertised_addresses(["0.0.0.0"], None, [Interface("lo", ("127.0.0.1",))]) == [
        "127.0.0.1"
    ]


@pytest.mark.parametrize(
    ("entries", "explicit", "message"),
    [
        (["eth9"], None, "'eth9' is neither an IPv4 address nor an interface"),
        (["can0"], None, "interface 'can0' has no IPv4 address"),
        (["all"], ["0.0.0.0"], "cannot advertise 0.0.0.0"),
    ],
)
def test_bad_interface_choice_names_the_key(
    entries: list[str], explicit: list[str] | None, message: str
) -> None:
    with pytest.raises(AdvertiserError, match=message):
        advertised_addresses(entries, explicit, HOST)


def test_zeroconf_binds_the_chosen_interfaces_addresses() -> None:
    assert zeroconf_interfaces(["eth0", "127.0.0.1"], HOST) == ["10.0.0.12", "127.0.0.1"]


def test_book_reports_an_unroutable_advertisement_and_never_dials_0000() -> None:
    book = DiscoveryBook({"SAT-1": 2, "SAT-2": 3}, lan=True)
    book.observe(rec("SAT-1", "0.0.0.0"))
    book.observe(rec("SAT-2", "127.0.0.1"))
    assert book.current("SAT-1") is None  # nothing else is known: better nothing than itself
    problems = book.report(0.0).problems()
    assert any("board SAT-1 advertises 0.0.0.0" in p for p in problems)
    assert any("board SAT-2 advertises 127.0.0.1 (a loopback address" in p for p in problems)


def test_book_on_loopback_only_accepts_loopback_advertisements() -> None:
    book = DiscoveryBook({"SAT-1": 2}, lan=False)  # the one-host simulation
    book.observe(rec("SAT-1", "127.0.0.1"))
    assert book.current("SAT-1") == ("127.0.0.1", 50051)
    assert book.report(0.0).problems() == []
