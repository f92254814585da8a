"""The Collectors page in headless Chromium: the bill it draws equals orgscope.bill over the
store, the what-if answers for a new interval, unreachable accounts are named, and the CSV
holds every row."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from playwright.sync_api import expect

from dashboard.data import open_store
from orgscope import bill, wiring
from orgscope.datasets import RUNS
from orgscope.store import Store
from testkit.collectors_sample import runs_frame
from testkit.dashboard_sample import ORG, UNREACHABLE_ID, write_config
from tests.browser.conftest import SCREENSHOTS

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Store]:
    root = tmp_path_factory.mktemp("collectors_browser")
    config_path = write_config(root, root / "data")
    store = open_store(str(root / "data"))
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    accounts = {account_id: (3 if index % 3 else 8, 2, 25 if index < 5 else 0)
                for index, (account_id, _n, _t, _c) in enumerate(ORG)}
    frame = runs_frame(accounts, now - timedelta(hours=10), now,
                       unreachable={UNREACHABLE_ID: now - timedelta(minutes=12)})
    store.write(RUNS.name, frame, "runs")
    return config_path, store


def _metric(page: Any, label: str) -> str:
    box = page.get_by_test_id("stMetric").filter(has_text=label).first
    return str(box.get_by_test_id("stMetricValue").inner_text()).strip()


def _settled(page: Any) -> None:
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=60_000)


def test_the_collectors_page_shows_the_bill_and_the_what_if(
    sample: tuple[Path, Store], dashboard_url: str, browser: Any
) -> None:
    config_path, store = sample
    config = wiring.load(config_path)
    usage = bill.read_usage(store, datetime.now(UTC))
    billed = bill.bill(usage, config)
    total = bill.by_collector(billed)["monthly_usd"].sum()
    page = browser.new_page(viewport={"width": 1500, "height": 3000})
    page.goto(f"{dashboard_url}/collectors")
    page.get_by_text("What if a collector ran at another interval?").wait_for(timeout=60_000)
    _settled(page)
    assert _metric(page, "Estimated monthly bill") == f"${total:,.2f}"
    banner = page.get_by_test_id("stAlert").filter(has_text="could not read").inner_text()
    assert "payment-service" in banner and "AccessDenied" in banner

    # what if metrics ran hourly: the page's link for that question selects both widgets
    page.goto(f"{dashboard_url}/collectors?collector=metrics&interval=1h")
    combobox = page.get_by_test_id("stSelectbox").filter(has_text="New interval")
    combobox.get_by_role("combobox").wait_for(timeout=60_000)
    page.get_by_test_id("stMetric").filter(has_text="metrics every 1h").wait_for(timeout=30_000)
    _settled(page)
    hourly = bill.collector_monthly(usage, config, "metrics", timedelta(hours=1))
    assert _metric(page, "metrics every 1h") == f"${hourly:,.2f}"
    assert hourly < billed.loc[billed["collector"] == "metrics", "monthly_usd"].sum()
    # the what-if curve and the history; Plotly draws after the script run ends, so wait
    expect(page.locator(".js-plotly-plot")).to_have_count(2, timeout=30_000)

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "collectors.png"), full_page=True)
    with page.expect_download() as download:
        page.get_by_test_id("stDownloadButton").get_by_role("button").click()
    exported = pd.read_csv(io.BytesIO(Path(download.value.path()).read_bytes()))
    assert len(exported) == len(billed)
    assert exported["monthly_usd"].sum() == pytest.approx(total)
    assert set(exported.loc[exported["account_id"] == int(UNREACHABLE_ID), "status"]) == \
        {"unreachable"}
    page.close()
