"""One rule for the CSMS URL (OCPP-J 1.6 section 3.1.1: the charge point's identity is the last
path segment): the station connects to <csms_url>/<station.id>, appending the id unless the
URL already ends with it; the example config and `chargeport sim --station-id` follow it."""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

import pytest

from chargeport.config import MainConfig, from_dict
from chargeport.errors import ChargeportError
from main_node.ocpp.endpoint import csms_endpoint
from simulation import cli

ROOT = Path(__file__).resolve().parents[2]

CASES = [
    ("the id is appended", "wss://csms.example.com/ocpp", "CP-0001"),
    ("a trailing slash is not doubled", "wss://csms.example.com/ocpp/", "CP-0001"),
    (
        "a URL that already names the station is kept",
        "wss://csms.example.com/ocpp/CP-0001",
        "CP-0001",
    ),
]


@pytest.mark.parametrize(("name", "url", "station"), CASES, ids=[c[0] for c in CASES])
def test_csms_url_rule_ocpp_j_3_1_1(name: str, url: str, station: str) -> None:
    assert csms_endpoint(url, station) == "wss://csms.example.com/ocpp/CP-0001"


def test_csms_url_rule_other_forms_ocpp_j_3_1_1() -> None:
    assert csms_endpoint("ws://127.0.0.1:9000", "CP 1") == "ws://127.0.0.1:9000/CP%201"
    assert csms_endpoint("ws://h/ocpp?x=1", "CP-2") == "ws://h/ocpp/CP-2?x=1"
    # Another station's id at the end is a path segment like any other.
    assert csms_endpoint("ws://h/ocpp/CP-0001", "CP-0002") == "ws://h/ocpp/CP-0001/CP-0002"


def test_example_main_config_reaches_its_own_station_path_ocpp_j_3_1_1() -> None:
    """examples/main.toml: the URL the station connects to names CP-0001 exactly once."""
    data = tomllib.loads((ROOT / "examples" / "main.toml").read_text())
    config = from_dict(MainConfig, data)
    url = csms_endpoint(config.ocpp.csms_url, config.station.id)
    assert url == "wss://csms.example.com/ocpp/CP-0001"
    assert config.station.boot_window_s == 30.0


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_sim_station_id_flag_ocpp_j_3_1_1(tmp_path: Path) -> None:
    """`chargeport sim --station-id X` names the station X in the main's config; an id that
    cannot be a URL path segment is refused with one line before anything starts."""
    from simulation.station import prepare

    assert _args().station_id == "SIM-STATION"
    args = _args("--station-id", "CP-0042")
    layout = prepare(
        tmp_path,
        satellites=0,
        csms_url="ws://127.0.0.1:1/ocpp",
        dashboard_port=1,
        operator_password="",
        scenarios={},
        mqtt=None,
        grace_period_s=10.0,
        station_id=args.station_id,
    )
    main = tomllib.loads(layout.main_config.read_text())
    assert main["station"]["id"] == "CP-0042"
    with pytest.raises(ChargeportError, match="--station-id 'a/b'"):
        cli.run(_args("--station-id", "a/b"))
