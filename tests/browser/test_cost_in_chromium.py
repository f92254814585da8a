"""The Cost page in headless Chromium: the per-team totals it draws equal the store's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dashboard import cost_data
from dashboard.data import open_store
from orgscope import wiring
from orgscope.store import Store
from testkit.cost_sample import fill_cost
from testkit.dashboard_sample import write_config
from tests.browser.conftest import SCREENSHOTS

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Store]:
    root = tmp_path_factory.mktemp("cost_browser")
    config_path = write_config(root, root / "data")
    store = open_store(str(root / "data"))
    fill_cost(store, wiring.load(config_path), datetime.now(UTC).date())
    return config_path, store


def test_the_cost_page_shows_the_stores_per_team_totals(
    sample: tuple[Path, Store], dashboard_url: str, browser: Any
) -> None:
    config_path, store = sample
    today = datetime.now(UTC).date()
    month = f"{today.replace(day=1) - timedelta(days=1):%Y-%m}"
    expected = cost_data.build_review(store, wiring.load(config_path), month, today).teams
    page = browser.new_page(viewport={"width": 1500, "height": 2200})
    page.goto(f"{dashboard_url}/cost")
    page.get_by_text("Top movers").wait_for(timeout=60_000)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=60_000)
    total = page.get_by_test_id("stMetric").filter(has_text=f"Total {month}")
    shown = total.get_by_test_id("stMetricValue").inner_text().strip()
    assert shown == f"{expected['amount'].sum():,.2f}"
    movers = page.get_by_test_id("stMarkdown").filter(has_text="mostly").first.inner_text()
    for row in expected.to_dict("records"):
        if row["team"] in movers:
            change = f"{row['change']:+,.2f}"
            assert change in movers, (row["team"], change)
    # the per-team grid is drawn on a canvas: its numbers are checked above through the
    # total and each mover's change, here only that it is drawn
    page.get_by_test_id("stDataFrame").first.wait_for(state="visible", timeout=30_000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "cost.png"), full_page=True)
    page.close()
