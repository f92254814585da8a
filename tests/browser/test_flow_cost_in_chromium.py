"""The Cost page's unit cost per event flow in headless Chromium: the section is drawn with
as many flows and as much cost carried by flows as the store holds, and its chart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dashboard import cost_data
from dashboard.data import open_store
from orgscope import wiring
from orgscope.store import Store
from testkit.browser import running_dashboard
from testkit.dashboard_sample import write_config
from testkit.flow_cost_sample import fill_flow_cost
from tests.browser.conftest import SCREENSHOTS

pytestmark = pytest.mark.browser

SECTION = "Unit cost per event flow"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Store, datetime]:
    root = tmp_path_factory.mktemp("flow_cost_browser")
    config_path = write_config(root, root / "data")
    store = open_store(str(root / "data"))
    now = datetime.now(UTC).replace(microsecond=0)
    fill_flow_cost(store, wiring.load(config_path), now)
    return config_path, store, now


@pytest.fixture(scope="module")
def dashboard_url(sample: tuple[Path, Store, datetime]) -> Iterator[str]:
    with running_dashboard(sample[0]) as url:
        yield url


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
