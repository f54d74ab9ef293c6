"""Board time from the link is validated (issue 14): finite and within 2020..2100, else the
satellite's Board.SetTime answers INVALID_ARGUMENT and the board clock is unchanged."""

from __future__ import annotations

import logging

import grpc
import pytest
from agg_fixtures import Station

from chargeport.security_log import INVALID_BOARD_TIME, LOGGER_NAME
from chargeport.v1 import link_pb2 as pb
from chargeport.v1 import link_pb2_grpc
from satellite.board_system import check_board_time

pytestmark = pytest.mark.integration

BAD = [float("nan"), float("inf"), float("-inf"), 1e18, 0.0, -1.0, 1_000.0, 4_102_444_800.0]


@pytest.mark.parametrize("t", [1_577_836_800.0, 1_760_000_000.0, 4_102_444_799.0])
def test_sane_times_pass(t: float) -> None:
    check_board_time(t)


@pytest.mark.parametrize("t", BAD)
def test_insane_times_refused(t: float) -> None:
    with pytest.raises(ValueError, match="between 2020 and 2100"):
        check_board_time(t)


@pytest.mark.parametrize("t", BAD)
async def test_set_time_over_grpc_invalid_argument(
    station: Station, t: float, caplog: pytest.LogCaptureFixture
) -> None:
    sat = station.satellites[0]
    before = sat._offset
    stub = link_pb2_grpc.BoardStub(station.channels[0])  # type: ignore[no-untyped-call]
    caplog.set_level(logging.WARNING)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SetTime(pb.SetTimeRequest(time=t))
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "between 2020 and 2100" in (info.value.details() or "")
    assert sat._offset == before
    (event,) = [r for r in caplog.records if r.name == LOGGER_NAME]
    assert event.security_event == INVALID_BOARD_TIME  # type: ignore[attr-defined]


async def test_local_board_refuses_too(station: Station) -> None:
    with pytest.raises(ValueError):
        await station.local.set_time(float("nan"))
    assert abs(station.local.now() - (await station.local.info()).time) < 5.0
