"""Per-port recovery of the whole station, with real processes (issue 2 "per-port recovery").

A main and three satellites as separate processes under the Supervisor (restarted like systemd
would), found by mDNS on 127.0.0.1, linked with mTLS, the test's own OCPP 1.6 central system,
and one EV per gun that charges for ever. Real time (speed 1), so the link's keepalive and
grace timers behave as on a board; they are shrunk in the generated configs.

1. kill -9 a satellite: only its gun goes Unavailable; its transaction is closed exactly once
   (OCPP 1.6 section 4.10: one StopTransaction per transaction) with the last meter value the
   main saw, and the restarted board starts a fresh one. The other guns never notice.
2. kill -9 the main: the satellites keep charging inside their grace period; the restarted main
   re-syncs without restarting them, and the CSMS sees no lost and no repeated
   Start/StopTransaction (section 4.10), at most one open transaction per connector.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from stationkit import StationRig, all_linked, charging_scenario, gun, running_station

from simulation.csms import Transaction

# One station for the module (starting four processes is the slow part); the satellite is
# killed first, then the main.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(90),
    pytest.mark.asyncio(loop_scope="module"),
]

SATELLITES = 3
CONNECTORS = [1, 2, 3, 4]
TAG = "TAG-OK"
# Real seconds. Longer than a main's restart on a loaded 2-core box (python start-up, mDNS,
# handshake), so the satellites ride it out; >= 2 x keepalive_s as the config demands.
GRACE_S = 12.0
KEEPALIVE_S = 0.5

State = dict[str, Any]


def charging(state: State, connector: int) -> bool:
    g = gun(state, connector)
    return bool(g["link_up"] and g["transaction_id"] and g["power_w"] > 0)


def all_charging(state: State) -> bool:
    return all_linked(len(CONNECTORS))(state) and all(charging(state, c) for c in CONNECTORS)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[StationRig]:
    tmp_path = tmp_path_factory.mktemp("e2e-recovery")
    scenarios = {c: charging_scenario(tmp_path / f"gun{c}.txt", TAG) for c in CONNECTORS}
    async with running_station(
        tmp_path / "station",
        satellites=SATELLITES,
        scenarios=scenarios,
        grace_period_s=GRACE_S,
        link={"keepalive_s": KEEPALIVE_S, "handshake_timeout_s": 3.0},
        ocpp={"meter_value_sample_interval_s": 2},
        speed=1.0,
        restart_delay_s=0.2,
    ) as station:
        yield station


async def charging_everywhere(rig: StationRig) -> tuple[State, dict[int, Transaction]]:
    """Wait until all four guns charge and the CSMS has exactly one open transaction on each."""

    def ok() -> bool:
        return sorted(rig.open_transactions()) == CONNECTORS

    await rig.wait_csms(ok)
    state = await rig.wait_state(all_charging)
    opened = rig.open_transactions()
    assert all(len(opened[c]) == 1 for c in CONNECTORS), opened
    return state, {c: opened[c][0] for c in CONNECTORS}


def assert_one_stop_each_and_one_open_per_connector(rig: StationRig) -> None:
    """OCPP 1.6 section 4.10: every transaction ends once; a connector runs one at a time."""
    for tx_id in rig.csms.transactions:
        assert len(rig.stops_of(tx_id)) <= 1, (tx_id, rig.stops_of(tx_id))
    unknown = [
        p for p in rig.csms.actions("StopTransaction")
        if p["transaction_id"] not in rig.csms.transactions
    ]  # fmt: skip
    assert not unknown, unknown
    opened = rig.open_transactions()
    assert all(len(txs) <= 1 for txs in opened.values()), opened


async def test_killed_satellite_closes_its_own_session_only_and_comes_back(
    rig: StationRig,
) -> None:
    await charging_everywhere(rig)
    victim = rig.serials[0]
    vc = rig.connector_of(victim)
    # Some energy on the victim's meter first, so its StopTransaction must carry a reading.
    before = await rig.wait_state(
        lambda s: all_charging(s) and gun(s, vc)["session_energy_wh"] >= 2.0
    )
    txs = {c: txs[0] for c, txs in rig.open_transactions().items()}
    others = [c for c in CONNECTORS if c != vc]
    old_boot = gun(before, vc)["boot_id"]
    victim_tx = txs[vc]
    local_tx = {c: gun(before, c)["transaction_id"] for c in others}
    energy_before = {c: gun(before, c)["energy_wh"] for c in others}
    starts = {n: c.starts for n, c in rig.supervisor.children.items()}
    seen_statuses = len(rig.csms.statuses)
    trouble: list[str] = []

    def others_keep_charging(state: State) -> None:
        for c in others:
            g = gun(state, c)
            if not (g["link_up"] and g["transaction_id"] == local_tx[c] and g["power_w"] > 0):
                trouble.append(f"gun {c}: {g['state']} {g['link_up']} {g['transaction_id']}")

    rig.kill(victim)
    down = await rig.wait_state(
        lambda s: not gun(s, vc)["link_up"], within_s=10.0, each=others_keep_charging
    )
    # What the main saw last of the dead board: its session must close at this reading.
    last_seen_wh = gun(down, vc)["energy_wh"]
    await rig.wait_csms(
        lambda: (vc, "Unavailable", "InternalError") in rig.csms.statuses[seen_statuses:],
        within_s=10.0,
    )

    # Closed exactly once: after the grace (reason Other) or, the board back first with a new
    # boot id, at its Hello (reason PowerLoss).
    await rig.wait_csms(lambda: rig.stops_of(victim_tx.transaction_id), within_s=GRACE_S + 20)
    # The restarted board is back (a new boot id); its EV, plugged in and swiped again,
    # charges in a fresh transaction.
    fresh = await rig.wait_state(
        lambda s: gun(s, vc)["boot_id"] not in ("", old_boot) and charging(s, vc),
        within_s=GRACE_S + 20,
        each=others_keep_charging,
    )
    await rig.wait_csms(lambda: len(rig.open_transactions().get(vc, [])) == 1)
    after, new_txs = await charging_everywhere(rig)
    others_keep_charging(after)

    assert not trouble, trouble[:5]
    assert rig.supervisor.children[victim].starts == starts[victim] + 1
    for name, child in rig.supervisor.children.items():
        if name != victim:
            assert child.starts == starts[name], (name, rig.logs())
    assert gun(fresh, vc)["link_up"] and gun(after, vc)["boot_id"] == gun(fresh, vc)["boot_id"]

    stops = rig.stops_of(victim_tx.transaction_id)
    assert len(stops) == 1, stops
    stop = stops[0]
    assert stop["reason"] in ("Other", "PowerLoss"), stop
    # Whole Wh on OCPP: the reading the main had when the link died, rounded.
    assert abs(stop["meter_stop"] - last_seen_wh) <= 0.51, (stop, last_seen_wh)
    assert stop["meter_stop"] > victim_tx.meter_start, (stop, victim_tx)

    assert new_txs[vc].transaction_id != victim_tx.transaction_id
    assert gun(after, vc)["transaction_id"] != ""
    # After the board came back the connector left Unavailable (OCPP 1.6 section 4.9).
    # A status goes out once it has held MinimumStatusDuration (section 4.9): wait for it.
    await rig.wait_csms(lambda: rig.csms.last_status(vc) == "Charging")
    back = [s for c, s, _ in rig.csms.statuses[seen_statuses:] if c == vc]
    assert back[-1] == "Charging", back

    # The other guns: same transactions, no StopTransaction, the meter went on.
    for c in others:
        assert new_txs[c].transaction_id == txs[c].transaction_id
        assert not rig.stops_of(txs[c].transaction_id)
        assert gun(after, c)["transaction_id"] == local_tx[c]
        assert gun(after, c)["energy_wh"] > energy_before[c], c
    assert_one_stop_each_and_one_open_per_connector(rig)


async def test_killed_main_resyncs_satellites_without_restarting_them(rig: StationRig) -> None:
    before, txs = await charging_everywhere(rig)
    satellites = [rig.connector_of(s) for s in rig.serials]
    main_boot = gun(before, 1)["boot_id"]
    sat_boot = {c: gun(before, c)["boot_id"] for c in satellites}
    local_tx = {c: gun(before, c)["transaction_id"] for c in satellites}
    energy_before = {c: gun(before, c)["energy_wh"] for c in satellites}
    starts = {n: c.starts for n, c in rig.supervisor.children.items()}
    connects = rig.csms.connects
    started = len(rig.csms.actions("StartTransaction"))
    failsafes = {s: rig.log_of(s).count("fail-safe") for s in rig.serials}
    authorized = len(rig.csms.actions("Authorize"))

    rig.kill("main")
    # The restarted main (a new boot id) answers, linked to every satellite, which charge on.
    await rig.wait_state(
        lambda s: (
            gun(s, 1)["boot_id"] not in ("", main_boot) and all(charging(s, c) for c in satellites)
        ),
        within_s=GRACE_S + 25,
    )
    await rig.wait_csms(lambda: rig.csms.connects > connects and rig.csms.connections)
    # The main's own port died with it: its transaction ends once; its EV starts a new one.
    await rig.wait_csms(lambda: rig.stops_of(txs[1].transaction_id))
    after, new_txs = await charging_everywhere(rig)
    await rig.wait_csms(lambda: rig.journal_pending() == 0)

    assert rig.supervisor.children["main"].starts == starts["main"] + 1
    for serial in rig.serials:
        # The satellites rode the outage out: no restart, no fail-safe stop.
        assert rig.supervisor.children[serial].starts == starts[serial], (serial, rig.logs())
        assert rig.log_of(serial).count("fail-safe") == failsafes[serial], rig.log_of(serial)
    for c in satellites:
        g = gun(after, c)
        assert g["boot_id"] == sat_boot[c], (c, g)
        assert g["transaction_id"] == local_tx[c], (c, g)
        assert g["energy_wh"] > energy_before[c], (c, g)
        # The CSMS: the same open transaction, neither stopped nor started again.
        assert new_txs[c].transaction_id == txs[c].transaction_id
        assert not rig.stops_of(txs[c].transaction_id)

    stops = rig.stops_of(txs[1].transaction_id)
    assert len(stops) == 1 and stops[0]["reason"] == "PowerLoss", stops
    # Closed with the board's register at restart (persisted by the board, issue 12): never
    # less than what the CSMS saw last, and where the gun's next transaction starts.
    readings = [
        float(v["value"])
        for mv in rig.csms.transactions[txs[1].transaction_id].meter_values
        for v in mv["sampled_value"]
        if v.get("measurand") == "Energy.Active.Import.Register"
        and v.get("format") != "SignedData"  # the board's OCMF record beside the reading
    ]
    assert stops[0]["meter_stop"] >= round(max(readings, default=txs[1].meter_start)), (
        stops,
        readings,
    )
    assert abs(stops[0]["meter_stop"] - new_txs[1].meter_start) <= 1, (stops, new_txs[1])
    assert new_txs[1].transaction_id != txs[1].transaction_id
    # Only the main's own driver swiped again: the satellites' old swipes, replayed to the new
    # main, are history, not requests (they would authorize again, or stop the charge).
    assert len(rig.csms.actions("Authorize")[authorized:]) == 1, rig.csms.actions("Authorize")
    new_starts = rig.csms.actions("StartTransaction")[started:]
    assert [p["connector_id"] for p in new_starts] == [1], new_starts
    assert_one_stop_each_and_one_open_per_connector(rig)
