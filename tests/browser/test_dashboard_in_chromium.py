"""The dashboard in headless Chromium, checked against the store.

A real collection runs against the simulated organization (one account broken), then the
Streamlit app is started as `orgscope dashboard` would start it and the Organization page is
loaded in Debian's chromium through Playwright. What the page shows must match the store.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testkit.browser import running_dashboard
from tests.browser.conftest import SCREENSHOTS
from tests.simulated import Org, simulated_org

pytestmark = pytest.mark.browser

BROKEN = "999999999999"


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    with simulated_org(tmp_path_factory.mktemp("browser")) as running:
        running.sim.break_account(BROKEN)
        running.cli("collect", "--once")
        yield running


@pytest.fixture(scope="module")
def dashboard_url(org: Org) -> Iterator[str]:
    with running_dashboard(org.config_path) as url:
        yield url


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
    assert metric(page, "Readable") == str(accounts["up"])
    assert metric(page, "Could not read") == str(int(accounts["n"]) - int(accounts["up"]))  # type: ignore[call-overload]
    assert metric(page, "Rules enabled") == str(rules["enabled"])
    assert metric(page, "Rules disabled") == str(rules["disabled"])

    (broken,) = org.query(f"select name, reason from accounts where account_id = '{BROKEN}'")
    banner = page.get_by_test_id("stAlert").filter(has_text="could not read").first
    assert str(broken["name"]) in banner.inner_text()
    assert "AccessDenied" in banner.inner_text()

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "organization.png"), full_page=True)
    page.close()
