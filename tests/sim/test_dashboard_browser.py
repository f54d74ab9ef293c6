"""The dashboard in a real headless Chromium (Debian's, driven by playwright) against a running
`chargeport sim` with four guns charging: the numbers on the page are the station's, every gun's
chart (uPlot) has data points and keeps them across a reload, the site panel and the transaction
table are filled, login/logout with a session cookie works, and the page fits a phone.

Prints the page's load time and the WebSocket update rate (updates/s, four guns charging)."""

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
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "operator-secret"
TAGS = ("04A1B2C3", "04D4E5F6", "04778899", "04AABBCC")  # accepted by the built-in CSMS
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get_state(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url + "api/state", timeout=2) as r:
            data: dict[str, Any] = json.load(r)
            return data
    except OSError:
        return None


def post_status(url: str) -> int:
    """POST a gun action without any credentials; the HTTP status."""
    request = urllib.request.Request(url + "api/connectors/2/disable", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            status: int = r.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code


def charging_scenarios(folder: Path) -> list[str]:
    """An EV per gun that plugs in, swipes an accepted tag and charges for an hour."""
    argv: list[str] = []
    for gun, tag in enumerate(TAGS, start=1):
        path = folder / f"charge-{gun}.txt"
        path.write_text(f"sleep 3\nplugin\nsleep 2\nauth {tag}\nwait_pwm\n"
                        "draw_power_regulated 16,3\nsleep 3600\n")  # fmt: skip
        argv += ["--scenario", f"{gun}={path}"]
    return argv


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "chargeport_cli", "sim", "--headless", "--speed", "4",
         "--duration", "3000", "--dashboard-port", str(port), "--operator-password", PASSWORD,
         "--state-dir", str(tmp_path / "state"), *charging_scenarios(tmp_path)],
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


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def text(page: Page, connector: int, field: str) -> str:
    return page.inner_text(f'section.gun[data-connector="{connector}"] [data-field="{field}"]')


def points(page: Page, connector: int) -> int:
    return int(page.get_attribute(f'section.gun[data-connector="{connector}"] .chart',
                                  "data-points") or 0)  # fmt: skip


SHOWN = """() => ({
    version: document.body.dataset.version,
    guns: [...document.querySelectorAll('section.gun')].map(g => Object.fromEntries(
        ['power', 'meter', 'state', 'link', 'signed'].map(
            f => [f, g.querySelector(`[data-field="${f}"]`).textContent]))),
})"""


def pushed_frame(page: Page, frames: list[dict[str, Any]], version: str) -> dict[str, Any]:
    """The WebSocket frame the page rendered (its event may reach us a moment after)."""
    for _ in range(100):
        found = [f for f in frames if str(f["version"]) == version]
        if found:
            return found[0]
        page.wait_for_timeout(50)  # lets playwright deliver the pending frame events
    raise AssertionError(f"the page shows version {version}, which was never pushed")


POINTS_AT_LEAST = """(n) => Number(document.querySelector(
    'section.gun[data-connector="1"] .chart')?.dataset.points) >= n"""
ALL_CHARGING = """() => [1, 2, 3, 4].every(c => document.querySelector(
    `section.gun[data-connector="${c}"] [data-field=state]`)?.textContent === 'Charging')"""


def test_dashboard_charts_numbers_login_and_phone(sim: str, browser: Browser) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []
    page = browser.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # A CSP violation (inline style or script, a foreign origin) is a console error "Refused to
    # ..."; the expected 401 of the wrong password below is a console error too, not counted.
    page.on("console", lambda m: errors.append(m.text) if "Refused to" in m.text else None)
    frames: list[dict[str, Any]] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(json.loads(f))))
    t0 = time.monotonic()
    page.goto(sim)
    page.wait_for_function(
        """() => [...document.querySelectorAll('section.gun .chart')]
              .filter(c => Number(c.dataset.points) > 0).length === 4"""
    )
    load_s = time.monotonic() - t0
    page.wait_for_function(ALL_CHARGING, timeout=60_000)

    # The WebSocket update rate with four guns charging (a figure, printed, not asserted).
    n0, w0 = len(frames), time.monotonic()
    page.wait_for_timeout(5_000)
    rate = (len(frames) - n0) / (time.monotonic() - w0)
    print(f"\ndashboard load: {load_s:.2f} s; websocket: {rate:.1f} updates/s, 4 guns charging")
    assert rate > 0

    # The page shows exactly the snapshot it says it shows (read in one go, in the page) ...
    shown = page.evaluate(SHOWN)
    last = pushed_frame(page, frames, shown["version"])
    for gun, fields in zip(last["guns"], shown["guns"], strict=True):
        assert fields["power"] == f"{gun['power_w'] / 1000:.2f} kW"
        assert fields["meter"].startswith(f"{gun['energy_wh'] / 1000:.3f} kWh")
        assert fields["state"] == gun["state"] == "Charging"
        assert fields["link"].startswith("up ")
        # Each board signs its transaction's begin (OCMF); the page shows the record whole.
        assert fields["signed"] == gun["signed_meter"] and fields["signed"].startswith("OCMF|")
    # ... and that snapshot is the station's: /api/state a moment later agrees.
    state = get_state(sim)
    assert state is not None
    for pushed, now in zip(last["guns"], state["guns"], strict=True):
        assert (pushed["connector"], pushed["serial"], pushed["state"]) == (
            now["connector"],
            now["serial"],
            now["state"],
        )
        assert abs(pushed["power_w"] - now["power_w"]) <= 0.1 * now["power_w"]
        assert now["energy_wh"] >= pushed["energy_wh"]
    site = page.inner_text("#site")
    assert f"{state['site']['site_limit_a']:.1f} A" in site
    assert page.locator("#allocation .bar").count() == 4
    # The site over time: mains (none here), site limit, available and allocation per gun.
    page.wait_for_function(
        "() => Number(document.querySelector('#site-chart').dataset.points) >= 2"
    )

    # Charts: one uPlot canvas per gun with samples; a reload keeps them (the main's ring).
    assert page.locator("section.gun .chart canvas").count() >= 4
    page.wait_for_function(POINTS_AT_LEAST, arg=3)
    before = points(page, 1)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    page.reload()
    page.wait_for_function(POINTS_AT_LEAST, arg=before)
    # Transactions opened by the four swipes are listed with their id tags.
    page.wait_for_function("() => document.querySelectorAll('#tx-rows tr td').length > 4")
    rows = page.inner_text("#tx-rows")
    assert all(tag in rows for tag in TAGS), rows
    page.fill("#tx-tag", TAGS[1])
    assert page.locator("#tx-rows tr").count() == 1

    # Login: a wrong password is refused, the right one buys an HttpOnly SameSite cookie.
    assert page.is_disabled('button[data-action="disable"][data-connector="3"]')
    page.fill("#pw", "wrong")
    page.click("#login-btn")
    page.wait_for_function("() => document.querySelector('#msg').textContent.includes('password')")
    assert page.inner_text("#msg") == "wrong operator password"
    page.fill("#pw", PASSWORD)
    page.click("#login-btn")
    page.wait_for_selector("#logout", state="visible")
    cookie = next(c for c in page.context.cookies() if c["name"] == "chargeport_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert "chargeport_session" not in page.evaluate("document.cookie")
    page.click('button[data-action="disable"][data-connector="3"]')
    page.wait_for_function(
        """() => document.querySelector('section.gun[data-connector="3"] '
            + 'button[data-action="enable"]')?.disabled === false""",
        timeout=30_000,
    )
    state = get_state(sim)
    assert state is not None and state["guns"][2]["enabled"] is False
    page.wait_for_function(
        "() => [...document.querySelectorAll('#ev-rows td')].some(t => t.textContent == 'disabled')"
    )
    # Logout: the cookie is gone and the buttons are off; the API refuses without a login.
    page.click("#logout")
    page.wait_for_selector("#login", state="visible")
    assert page.is_disabled('button[data-action="enable"][data-connector="3"]')
    assert not any(c["name"] == "chargeport_session" for c in page.context.cookies())
    assert post_status(sim) == 401

    # A phone: nothing wider than the screen, the cards in one column.
    phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone.goto(sim)
    phone.wait_for_selector("section.gun >> nth=3")
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    boxes = [phone.locator(f"section.gun >> nth={i}").bounding_box() for i in range(2)]
    assert boxes[0] and boxes[1] and boxes[1]["y"] > boxes[0]["y"]
    phone.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
    assert errors == []
