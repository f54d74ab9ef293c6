"""The dashboard in a real headless Chromium (Debian's, driven by playwright) against a running
`chargeport sim`: four guns, a power chart that moves while an EV charges, a working button."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "operator-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get_state(url: str) -> dict | None:  # type: ignore[type-arg]
    try:
        with urllib.request.urlopen(url + "api/state", timeout=2) as r:
            data: dict = json.load(r)  # type: ignore[type-arg]
            return data
    except OSError:
        return None


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "chargeport", "sim", "--headless", "--speed", "4",
         "--duration", "3000", "--dashboard-port", str(port), "--operator-password", PASSWORD,
         "--state-dir", str(tmp_path / "state")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while (state := get_state(url)) is None or len(state["guns"]) < 4:
            assert proc.poll() is None, "chargeport sim exited early"
            assert time.monotonic() < deadline, "the dashboard never came up"
            time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)  # the same path as Ctrl-C
        try:
            assert proc.wait(timeout=30) == 0
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()


def chart_points(page: Page, connector: int) -> str:
    points: str = page.eval_on_selector(
        f'section.gun[data-connector="{connector}"] svg.chart',
        "svg => svg.querySelector('polyline')?.getAttribute('points') || ''",
    )
    return points


def test_dashboard_shows_four_guns_live_chart_and_operator_button(sim: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync"],
        )  # fmt: skip
        try:
            page = browser.new_page()
            page.goto(sim)
            page.wait_for_selector("section.gun >> nth=3")
            assert page.locator("section.gun").count() == 4
            # Gun 1 swipes and charges from about 4 simulated seconds on: watch its chart grow
            # while its power reads above zero.
            page.wait_for_function(
                """() => {
                    const g = document.querySelector('section.gun[data-connector="1"]');
                    return g && g.querySelector('[data-field=state]').textContent === 'Charging';
                }""",
                timeout=60_000,
            )
            first = chart_points(page, 1)
            page.wait_for_function(
                """(before) => {
                    const p = document.querySelector('section.gun[data-connector="1"] polyline');
                    return p && p.getAttribute('points') !== before;
                }""",
                arg=first,
                timeout=30_000,
            )
            assert chart_points(page, 1) != first
            assert "kW" in page.inner_text('section.gun[data-connector="1"] [data-field=power]')
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

            # Operator action: disable gun 3 (a satellite) with the password.
            page.fill("#pw", PASSWORD)
            page.click('button[data-action="disable"][data-connector="3"]')
            page.wait_for_function(
                """() => document.querySelector('section.gun[data-connector="3"] '
                    + 'button[data-action="enable"]')?.disabled === false""",
                timeout=30_000,
            )
            state = get_state(sim)
            assert state is not None
            assert next(g for g in state["guns"] if g["connector"] == 3)["enabled"] is False
            # A wrong password is refused and changes nothing.
            page.fill("#pw", "wrong")
            page.click('button[data-action="enable"][data-connector="3"]')
            page.wait_for_function(
                "() => document.querySelector('#msg').textContent.includes('password')"
            )
            assert page.inner_text("#msg") == "wrong operator password"
            state = get_state(sim)
            assert state is not None
            assert next(g for g in state["guns"] if g["connector"] == 3)["enabled"] is False
        finally:
            browser.close()
