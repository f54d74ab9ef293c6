"""OCMF records (S.A.F.E. OCMF spec, tables cited per test), checked by the independent `pyocmf`.

Every record built here is parsed by pyocmf in strict mode and its signature verified by it;
tampered, replayed and wrong-key records must fail both pyocmf and our own verifier.
"""

from __future__ import annotations

import base64
import decimal
import json
import warnings

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pyocmf import OCMF, IssueCode, SignatureVerificationError, SpecWarning

from evse.ocmf import (
    MeterIdentity,
    MeterStatus,
    OcmfMeter,
    Reading,
    ReadingReason,
    SignedRecord,
    SoftwareMeterSigner,
    TimeStatus,
    UserAssignment,
    build_payload,
    format_energy_kwh,
    format_time,
    public_key_hex,
)
from evse.ocmf_verify import (
    InvalidRecord,
    PagingGuard,
    key_id,
    load_public_key,
    parse_record,
    verify_record,
)

IDENTITY = MeterIdentity(
    gateway_id="chargeport",
    gateway_serial="SAT-0002",
    gateway_version="4.2.0",
    meter_vendor="chargeport",
    meter_model="internal-6ch",
    meter_serial="SAT-0002",
)
USER = UserAssignment.from_id_tag("04A2B3C4")
T0 = 1_764_860_707.25  # 2025-12-04T15:05:07,250 UTC


@pytest.fixture
def signer() -> SoftwareMeterSigner:
    return SoftwareMeterSigner.generate()


def pyocmf_parse(text: str) -> OCMF:
    """Strict pyocmf parse: any deviation from the spec is an error, not a warning.

    One exception, where pyocmf is stricter than the spec: Table 4 says the user assignment
    group "is missing" without a transaction reference, so a fiscal record has no IS; pyocmf
    wants IS always. Fiscal records are parsed leniently and that must be the only warning.
    """
    if '"PG":"F' not in text and '"PG":"F' not in _unhex(text):
        with warnings.catch_warnings():
            warnings.simplefilter("error", SpecWarning)
            return OCMF.from_string(text, strict=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SpecWarning)
        parsed = OCMF.from_string(text)
    assert [str(w.message) for w in caught] == ["Identification Status (IS) is mandatory"]
    return parsed


def _unhex(text: str) -> str:
    try:
        return bytes.fromhex(text).decode()
    except ValueError:
        return ""


def transaction(signer: SoftwareMeterSigner) -> list[SignedRecord]:
    """Begin, one reading during charging, end; as the board makes them."""
    meter = OcmfMeter(IDENTITY, signer)
    return [
        meter.transaction_record(Reading(T0, 1234.6, ReadingReason.BEGIN), USER),
        meter.transaction_record(Reading(T0 + 600, 4321.0, ReadingReason.CHARGING), USER),
        meter.transaction_record(Reading(T0 + 1800, 12_345.9, ReadingReason.END_LOCAL), USER),
    ]


# ------------------------------------------------------------------ format (pure)


@pytest.mark.parametrize(
    ("t", "status", "offset", "expected"),
    [
        (T0, TimeStatus.SYNCHRONIZED, 0, "2025-12-04T15:05:07,250+0000 S"),
        (T0, TimeStatus.SYNCHRONIZED, 60, "2025-12-04T16:05:07,250+0100 S"),
        (T0, TimeStatus.UNKNOWN, -330, "2025-12-04T09:35:07,250-0530 U"),
        (0.0, TimeStatus.RELATIVE, 0, "1970-01-01T00:00:00,000+0000 R"),
        (T0 + 0.9999, TimeStatus.INFORMATIVE, 0, "2025-12-04T15:05:08,249+0000 I"),
    ],
)
def test_time_table_7_tm_format(t: float, status: TimeStatus, offset: int, expected: str) -> None:
    """Table 7 TM: ISO 8601 with ',' and milliseconds, +hhmm zone, space, Table 19 status."""
    assert format_time(t, status, offset) == expected


@pytest.mark.parametrize(
    ("wh", "expected"),
    [(0.0, "0.000"), (0.9999, "0.000"), (999.9, "0.999"), (1000.0, "1.000"), (12_345.6, "12.345")],
)
def test_reading_value_table_7_rv_never_rounded_up(wh: float, expected: str) -> None:
    """Table 7 RV in kWh with Wh resolution; a partial Wh is never billed."""
    assert format_energy_kwh(wh) == expected


def test_transaction_payload_has_tables_1_to_7_fields(signer: SoftwareMeterSigner) -> None:
    rec = OcmfMeter(IDENTITY, signer).transaction_record(
        Reading(T0, 1234.6, ReadingReason.BEGIN), USER
    )
    payload = json.loads(rec.text.split("|")[1], parse_float=decimal.Decimal)
    assert payload == {
        "FV": "1.0",
        "GI": "chargeport",
        "GS": "SAT-0002",
        "GV": "4.2.0",
        "PG": "T1",
        "MV": "chargeport",
        "MM": "internal-6ch",
        "MS": "SAT-0002",
        "IS": True,
        "IF": ["OCPP_AUTH"],
        "IT": "CENTRAL",
        "ID": "04A2B3C4",
        "RD": [
            {
                "TM": "2025-12-04T15:05:07,250+0000 S",
                "TX": "B",
                "RV": decimal.Decimal("1.234"),
                "RI": "1-b:1.8.0",
                "RU": "kWh",
                "RT": "AC",
                "EF": "",
                "ST": "G",
            }
        ],
    }
    assert rec.text.split("|")[2] == json.dumps(
        {"SA": "ECDSA-secp256r1-SHA256", "SD": json.loads(rec.text.split("|")[2])["SD"]},
        separators=(",", ":"),
    )


def test_fiscal_payload_has_no_user_section_nor_tx(signer: SoftwareMeterSigner) -> None:
    """Table 4: user fields exactly with a transaction reference; Table 7: TX absent in fiscal."""
    rec = OcmfMeter(IDENTITY, signer).fiscal_record(Reading(T0, 50.0))
    payload = json.loads(rec.text.split("|")[1])
    assert payload["PG"] == "F1"
    assert not {"IS", "IF", "IT", "ID"} & payload.keys()
    assert "TX" not in payload["RD"][0]
    assert pyocmf_parse(rec.text).verify_signature(public_key_hex(signer))


def test_pagination_table_2_one_counter_per_context(signer: SoftwareMeterSigner) -> None:
    """Table 2: T and F count independently, +1 per record, from the persisted next values."""
    meter = OcmfMeter(IDENTITY, signer, {"T": 41, "F": 7})
    pages = [
        meter.transaction_record(Reading(T0, 1.0, ReadingReason.BEGIN), USER).page,
        meter.fiscal_record(Reading(T0 + 1, 1.0)).page,
        meter.transaction_record(Reading(T0 + 2, 2.0, ReadingReason.END), USER).page,
        meter.fiscal_record(Reading(T0 + 3, 2.0)).page,
    ]
    assert pages == ["T41", "F7", "T42", "F8"]
    assert meter.counters == {"T": 43, "F": 9}


@pytest.mark.parametrize(
    ("page", "readings", "user", "message"),
    [
        ("T01", [Reading(T0, 1.0, ReadingReason.BEGIN)], USER, "T<n> or F<n>"),
        ("X1", [Reading(T0, 1.0, ReadingReason.BEGIN)], USER, "T<n> or F<n>"),
        ("T1", [], USER, "one or more readings"),
        ("F1", [Reading(T0, 1.0)], USER, "exactly for transaction records"),
        ("T1", [Reading(T0, 1.0, ReadingReason.BEGIN)], None, "exactly for transaction records"),
        ("T1", [Reading(T0, 1.0)], USER, "TX is present exactly"),
        ("F1", [Reading(T0, 1.0, ReadingReason.BEGIN)], None, "TX is present exactly"),
    ],
)
def test_build_payload_refuses_what_the_spec_forbids(
    page: str, readings: list[Reading], user: UserAssignment | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_payload(IDENTITY, page, readings, user)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Reading(T0, -1.0, ReadingReason.BEGIN), ">= 0"),
        (lambda: Reading(T0, float("nan"), ReadingReason.BEGIN), "finite"),
        (lambda: Reading(T0, 1.0, ReadingReason.BEGIN, error_flags="X"), "'E' and 't'"),
        (lambda: UserAssignment(True, flags=("a", "b", "c", "d", "e")), "at most 4"),
        (lambda: UserAssignment.from_id_tag("A|B"), "'|'"),
        (lambda: MeterIdentity("g|i", "s", "v", "mv", "mm", "ms"), "'|'"),
        (lambda: MeterIdentity("gi", "s", "v", "mv", "mm", ""), "mandatory"),
    ],
)
def test_inputs_checked_at_construction(make: object, message: str) -> None:
    """The '|' separates sections ("Sections"), so no field may hold one; MS is 1..1."""
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


# ------------------------------------------------------------------ independent verification


def test_every_record_verifies_with_pyocmf(signer: SoftwareMeterSigner) -> None:
    key = public_key_hex(signer)
    records = [*transaction(signer), OcmfMeter(IDENTITY, signer).fiscal_record(Reading(T0, 9.0))]
    for rec in records:
        parsed = pyocmf_parse(rec.text)
        assert parsed.verify_signature(key), rec.page
        assert parsed.payload.PG == rec.page
        reading = parsed.payload.RD[0]
        assert reading.RV == decimal.Decimal(format_energy_kwh(rec.reading.energy_wh))
        assert reading.timestamp.timestamp() == pytest.approx(rec.reading.time, abs=1e-3)
        assert reading.ST == MeterStatus.OK.value
        # Our own verifier agrees.
        assert verify_record(rec.text, load_public_key(key)).page_label == rec.page
        # The hex form (OCPP 1.6 SignedData is "encoded as hex data") verifies too.
        hex_text = rec.text.encode().hex()
        assert pyocmf_parse(hex_text).verify_signature(key)
        assert verify_record(hex_text, load_public_key(key)).page_label == rec.page


def test_begin_end_pair_passes_pyocmf_eichrecht_checks(signer: SoftwareMeterSigner) -> None:
    """pyocmf's transparency-software rules: same serial, OBIS, unit, increasing value/time/page."""
    begin, _, end = (pyocmf_parse(r.text) for r in transaction(signer))
    assert begin.check_eichrecht(end) == []
    assert begin.verify(public_key_hex(signer), other=end) == (True, [])


def _tamper_payload(text: str, old: str, new: str) -> str:
    head, payload, sig = text.split("|")
    assert old in payload
    return "|".join([head, payload.replace(old, new, 1), sig])


def _flip_signature_byte(text: str) -> str:
    head, payload, sig = text.split("|")
    sd = json.loads(sig)["SD"]
    flipped = sd[:20] + ("0" if sd[20] != "0" else "1") + sd[21:]
    return "|".join([head, payload, sig.replace(sd, flipped)])


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda t: _tamper_payload(t, '"RV":12.345', '"RV":12.346'), id="RV"),
        pytest.param(lambda t: _tamper_payload(t, '"RV":12.345', '"RV":12.3450'), id="RV-digits"),
        pytest.param(lambda t: _tamper_payload(t, "15:35:07", "15:34:07"), id="TM"),
        pytest.param(lambda t: _tamper_payload(t, '"PG":"T3"', '"PG":"T9"'), id="PG"),
        pytest.param(lambda t: _tamper_payload(t, '"TX":"L"', '"TX":"E"'), id="TX"),
        pytest.param(lambda t: _tamper_payload(t, '"ID":"04A2B3C4"', '"ID":"04A2B3C5"'), id="ID"),
        pytest.param(lambda t: _tamper_payload(t, '"FV":"1.0",', '"FV":"1.0", '), id="whitespace"),
        pytest.param(_flip_signature_byte, id="SD"),
    ],
)
def test_tampered_record_fails_both_verifiers(signer: SoftwareMeterSigner, tamper: object) -> None:
    """ "Between signing and validation, the payload section must not be manipulated"."""
    end = transaction(signer)[2].text
    bad = tamper(end)  # type: ignore[operator]
    key = public_key_hex(signer)
    try:
        assert not pyocmf_parse(bad).verify_signature(key)
    except SignatureVerificationError:
        pass  # a flipped byte can break the DER structure: also a failure
    with pytest.raises(InvalidRecord, match="signature does not match"):
        verify_record(bad, load_public_key(key))


def test_wrong_key_fails_both_verifiers(signer: SoftwareMeterSigner) -> None:
    other = public_key_hex(SoftwareMeterSigner.generate())
    end = transaction(signer)[2].text
    assert not pyocmf_parse(end).verify_signature(other)
    with pytest.raises(InvalidRecord, match="another key"):
        verify_record(end, load_public_key(other))


def test_key_on_another_curve_is_refused(signer: SoftwareMeterSigner) -> None:
    """The key must match SA (ECDSA-secp256r1-SHA256): a P-384 key is refused up front."""
    p384 = (
        ec.generate_private_key(ec.SECP384R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        .hex()
    )
    end = transaction(signer)[2].text
    with pytest.raises(SignatureVerificationError, match="curve mismatch"):
        pyocmf_parse(end).verify_signature(p384)
    with pytest.raises(InvalidRecord, match="secp384r1"):
        load_public_key(p384)


def test_replayed_record_is_caught_by_the_paging_counter(signer: SoftwareMeterSigner) -> None:
    """Table 2: pages only increase per key and context; a resent record is a replay."""
    begin, charging, end = transaction(signer)
    fiscal = OcmfMeter(IDENTITY, signer).fiscal_record(Reading(T0, 1.0))
    key = load_public_key(public_key_hex(signer))
    kid = key_id(key)
    guard = PagingGuard()
    for rec in (begin, charging, fiscal, end):
        guard.accept(kid, verify_record(rec.text, key))
    for replay in (end, begin, fiscal):
        with pytest.raises(InvalidRecord, match="replayed or out of order"):
            guard.accept(kid, verify_record(replay.text, key))
    # Another board's key has its own counters.
    other_signer = SoftwareMeterSigner.generate()
    other = OcmfMeter(IDENTITY, other_signer).transaction_record(
        Reading(T0, 1.0, ReadingReason.BEGIN), USER
    )
    other_key = load_public_key(public_key_hex(other_signer))
    guard.accept(key_id(other_key), verify_record(other.text, other_key))
    # pyocmf sees the same thing when the replayed begin is offered as the end of the pair.
    issues = pyocmf_parse(end.text).check_eichrecht(pyocmf_parse(begin.text))
    assert [i.code for i in issues] == [IssueCode.PAGINATION_INCONSISTENT]
    assert pyocmf_parse(begin.text).check_eichrecht(pyocmf_parse(end.text)) == []


def test_paging_guard_check_does_not_remember(signer: SoftwareMeterSigner) -> None:
    begin = verify_record(transaction(signer)[0].text, load_public_key(public_key_hex(signer)))
    guard = PagingGuard({("k", "T"): 0})
    guard.check("k", begin)
    guard.check("k", begin)
    guard.accept("k", begin)
    assert guard.last == {("k", "T"): 1}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not an OCMF record"),
        ("OCMF|{}", "expected OCMF|<payload>|<signature>"),
        ("OCMF|{}|{}|extra", "expected OCMF|<payload>|<signature>"),
        ("OCMF|[1]|{}", "payload must be a JSON object"),
        ("OCMF|" + "[" * 5000 + "]" * 5000 + "|{}", "payload is not valid JSON"),
        ("OCMF|{x|{}", "payload is not valid JSON"),
        ('OCMF|{"PG":"T1"}|{"SA":"ECDSA-secp384r1-SHA256","SD":"00"}', "is not ECDSA-secp256r1"),
        ('OCMF|{"PG":"T1"}|{"SE":"base32","SD":"00"}', "not hex or base64"),
        ('OCMF|{"PG":"T1"}|{"SM":"text/plain","SD":"00"}', "mime type"),
        ('OCMF|{"PG":"T1"}|{}', r"\(SD\) missing"),
        ('OCMF|{"PG":"T1"}|{"SD":"zz"}', "not valid hex"),
        ('OCMF|{"PG":"T01","MS":"x","RD":[{}]}|{"SD":"00"}', "T<n> or F<n>"),
        ('OCMF|{"PG":"T1","RD":[{}]}|{"SD":"00"}', "neither meter serial"),
        ('OCMF|{"PG":"T1","MS":"x","RD":[]}|{"SD":"00"}', r"readings \(RD\)"),
        ('OCMF|{"PG":"T1","MS":"x","RD":[1]}|{"SD":"00"}', "JSON object"),
        ("OCMF|" + "x" * 20_000 + "|{}", "longer than"),
    ],
)
def test_malformed_records_are_one_line_errors(text: str, message: str) -> None:
    """Untrusted input is decoded within limits; each failure is one line saying why."""
    with pytest.raises(InvalidRecord, match=message) as info:
        parse_record(text)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("key", ["", "zz", "3059", "-----BEGIN PUBLIC KEY-----\nAAAA\n"])
def test_malformed_public_key_is_refused(key: str) -> None:
    with pytest.raises(InvalidRecord, match="public key"):
        load_public_key(key)


def test_public_key_formats_all_load(signer: SoftwareMeterSigner) -> None:
    """Hex DER (what transparency software takes), base64 DER and PEM name the same key."""
    der = signer.public_key_der()
    pem = signer.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ids = {
        key_id(load_public_key(form))
        for form in (der.hex(), der.hex().upper(), base64.b64encode(der).decode(), pem.decode())
    }
    assert ids == {der.hex()}
