"""The dashboard in headless Chromium, checked against the store.

A real collection runs against the simulated organization (one account broken), then the
Streamlit app is started as `orgscope dashboard` would start it and the Organization page is
loaded in Debian's chromium through Playwright. What the page shows must match the store.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from orgscope import wiring
from orgscope.processes import dashboard_command, dashboard_env
from tests.simulated import Org, simulated_org

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(os.environ.get("ORGSCOPE_SCREENSHOTS", "screenshots"))
BROKEN = "999999999999"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    with simulated_org(tmp_path_factory.mktemp("browser")) as running:
        running.sim.break_account(BROKEN)
        running.cli("collect", "--once")
        yield running


@pytest.fixture(scope="module")
def dashboard_url(org: Org) -> Iterator[str]:
    port = free_port()
    config = wiring.load(org.config_path)
    process = subprocess.Popen(
        dashboard_command(config, port), env=dashboard_env(config),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/_stcore/health")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def metric(page: object, label: str) -> str:
    exact_label = page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)  # type: ignore[attr-defined]
    box = page.get_by_test_id("stMetric").filter(has=exact_label)  # type: ignore[attr-defined]
    text: str = box.get_by_test_id("stMetricValue").inner_text()
    return text.strip()


def test_organization_page_shows_what_the_store_holds(
    org: Org, dashboard_url: str, browser: object
) -> None:
    page = browser.new_page(viewport={"width": 1600, "height": 1900})  # type: ignore[attr-defined]
    page.goto(f"{dashboard_url}/organization")
    page.get_by_text("Accounts watched").wait_for(timeout=60_000)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=60_000)

    accounts = org.query("select count(*) as n, count(*) filter (where reachable) as up "
                         "from accounts")[0]
    rules = org.query("select count(*) filter (where state = 'ENABLED') as enabled, "
                      "count(*) filter (where state = 'DISABLED') as disabled from rules")[0]
    assert metric(page, "Accounts watched") == str(accounts["n"])
    assert metric(page, "Reachable") == str(accounts["up"])
    assert metric(page, "Unreachable") == str(int(accounts["n"]) - int(accounts["up"]))  # type: ignore[call-overload]
    assert metric(page, "Rules enabled") == str(rules["enabled"])
    assert metric(page, "Rules disabled") == str(rules["disabled"])

    (broken,) = org.query(f"select name, reason from accounts where account_id = '{BROKEN}'")
    banner = page.get_by_test_id("stAlert").filter(has_text="could not read").first
    assert str(broken["name"]) in banner.inner_text()
    assert "AccessDenied" in banner.inner_text()

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "organization.png"), full_page=True)
    page.close()
