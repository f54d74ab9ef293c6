"""A satellite's link goes down and comes back, in a real Chromium: the gun's headline and its
link line always agree (both come from `link_up`), the event log records the loss and the return,
and its filters narrow the list. Ports are FakePorts below the ChargePort seam; the view is fed
from them the way the app feeds it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page, async_playwright

from chargeport.fake_port import FakePort
from chargeport.port import ErrorCode, LinkChanged, PortErrorEvent, PortInfo
from main_node.dashboard import Dashboard
from main_node.view import StationView

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
GUN2 = 'section.gun[data-connector="2"]'


@pytest.fixture
async def dash() -> AsyncIterator[tuple[Dashboard, dict[int, FakePort]]]:
    ports = {c: FakePort(PortInfo(c, f"SN{c}", "1.0", 32.0, 3, remote=c > 1)) for c in (1, 2)}
    view = StationView("ST-1", [p.info for p in ports.values()])

    async def feed(connector: int, port: FakePort) -> None:
        async for event in port.events():
            view.apply(connector, event)

    feeders = [asyncio.create_task(feed(c, p)) for c, p in ports.items()]
    await asyncio.sleep(0)
    ports[2].emit(LinkChanged(True, "boot-2", "1.0"))
    dashboard = Dashboard(view, ports, port=0)
    await dashboard.start()
    try:
        yield dashboard, ports
    finally:
        await dashboard.stop()
        for task in feeders:
            task.cancel()
        await asyncio.gather(*feeders, return_exceptions=True)


async def headline_and_link(page: Page) -> tuple[str, str]:
    state = await page.inner_text(f"{GUN2} [data-field=state]")
    link = await page.inner_text(f"{GUN2} [data-field=link]")
    return state, link.split(" ")[0]


async def test_headline_and_link_agree_through_a_link_loss(
    dash: tuple[Dashboard, dict[int, FakePort]],
) -> None:
    dashboard, ports = dash
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        try:
            page = await browser.new_page()
            await page.goto(dashboard.url)
            await page.wait_for_function(
                f"() => document.querySelector('{GUN2} [data-field=link]')?.textContent"
                ".startsWith('up')"
            )
            state, link = await headline_and_link(page)
            assert link == "up" and state not in ("Link lost", "Connecting")

            ports[2].emit(LinkChanged(False))
            await page.wait_for_selector(f"{GUN2}.down")
            assert await headline_and_link(page) == ("Link lost", "down")
            ports[2].emit(PortErrorEvent(ErrorCode.GROUND_FAILURE, "RCD tripped", True))
            ports[2].emit(LinkChanged(True, "boot-3", "1.0"))
            await page.wait_for_function(f"() => !document.querySelector('{GUN2}.down')")
            state, link = await headline_and_link(page)
            assert link == "up" and state != "Link lost"

            # The event log: the loss, the return and the fault; filters narrow it.
            await page.wait_for_function(
                "() => document.querySelectorAll('#ev-rows tr.ev-link').length === 2"
            )
            await page.select_option("#ev-kind", "fault")
            rows = await page.locator("#ev-rows tr").all_inner_texts()
            assert len(rows) == 1 and "GroundFailure raised: RCD tripped" in rows[0]
            await page.select_option("#ev-kind", "")
            await page.select_option("#ev-connector", "1")
            assert await page.inner_text("#ev-rows") == "no events"
        finally:
            await browser.close()
