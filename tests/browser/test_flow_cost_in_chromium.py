"""The Cost page's unit cost per event flow in headless Chromium: the section is drawn with
as many flows and as much cost carried by flows as the store holds, and its chart; on a new
install (rule metrics only this month) the page opens on last month and the section shows
this month to date, saying so."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dashboard import cost_data
from dashboard.data import open_store
from orgscope import wiring
from orgscope.cost.attribution import month_of
from orgscope.store import Store
from testkit.browser import running_dashboard
from testkit.dashboard_sample import write_config
from testkit.flow_cost_sample import fill_flow_cost
from tests.browser.conftest import SCREENSHOTS, settled

pytestmark = pytest.mark.browser

SECTION = "Unit cost per event flow"


def _filled(factory: pytest.TempPathFactory, name: str,
            new_install: bool) -> tuple[Path, Store, datetime]:
    """The sample's inventory and three months of cost; rule metrics since the previous
    month's first day, or only since this month's (``new_install``)."""
    root = factory.mktemp(name)
    config_path = write_config(root, root / "data")
    store = open_store(str(root / "data"))
    now = datetime.now(UTC).replace(microsecond=0)
    fill_flow_cost(store, wiring.load(config_path), now,
                   now.date().replace(day=1) if new_install else None)
    return config_path, store, now


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Store, datetime]:
    return _filled(tmp_path_factory, "flow_cost_browser", new_install=False)


def test_the_cost_page_shows_the_flows_unit_cost(
    sample: tuple[Path, Store, datetime], dashboard_url: str, browser: Any
) -> None:
    config_path, store, now = sample
    config = wiring.load(config_path)
    month = cost_data.default_month(cost_data.available_months(store), now.date())
    assert month is not None
    expected = cost_data.build_review(store, config, month, now.date()).flows
    assert expected is not None and len(expected.flows) > 0
    page = browser.new_page(viewport={"width": 1500, "height": 3200})
    page.goto(f"{dashboard_url}/cost")
    page.get_by_text(SECTION).wait_for(timeout=60_000)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=60_000)
    flows = page.get_by_test_id("stMetric").filter(has_text="Flows with events")
    assert flows.get_by_test_id("stMetricValue").inner_text().strip() == \
        str(len(expected.flows))
    carried = page.get_by_test_id("stMetric").filter(has_text="Carried by flows")
    assert carried.get_by_test_id("stMetricValue").inner_text().strip() == \
        f"{expected.allocated:,.2f}"
    chart = page.locator(".js-plotly-plot").filter(has_text="per million events")
    chart.first.wait_for(state="visible", timeout=30_000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "flow_cost.png"), full_page=True)
    page.close()


@pytest.fixture(scope="module")
def new_install(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Store, datetime]:
    return _filled(tmp_path_factory, "flow_cost_new_install", new_install=True)


def test_a_new_install_shows_this_months_flows_from_last_months_review(
    new_install: tuple[Path, Store, datetime], browser: Any
) -> None:
    config_path, store, now = new_install
    month = cost_data.default_month(cost_data.available_months(store), now.date())
    assert month is not None and month < month_of(now.date())
    review = cost_data.build_review(store, wiring.load(config_path), month, now.date())
    newest = review.newest_flows
    assert newest is not None and len(newest.flows) > 0 and newest.through is not None
    with running_dashboard(config_path) as url:
        page = browser.new_page(viewport={"width": 1500, "height": 3200})
        page.goto(f"{url}/cost")
        page.get_by_text(SECTION).wait_for(timeout=60_000)
        settled(page)
        note = page.get_by_test_id("stAlert").filter(has_text="No flow delivered events")
        text = note.inner_text()
        assert f"No flow delivered events in {month}" in text
        assert f"{newest.month}, month to date (through {newest.through:%Y-%m-%d})" in text
        flows = page.get_by_test_id("stMetric").filter(has_text="Flows with events")
        assert flows.get_by_test_id("stMetricValue").inner_text().strip() == \
            str(len(newest.flows))
        assert page.get_by_text("No riser to show").count() == 1
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.get_by_text(SECTION).scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / "flow_cost_new_install.png"), full_page=True)
        page.close()
