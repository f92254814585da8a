"""The Schemas page in headless Chromium, on the demo's drift (the payment service's
"Payment Processed" version 3 moved ``purpose`` under ``context``) plus a second drifting
detail-type: the rules that will go silent are named, the versions stand side by side, the
breaking changes download whole, and a schema_breaking_change alert's Slack button opens the
page on its rule's broken detail-type."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from playwright.sync_api import expect

from alerts.lifecycle import advance
from alerts.rule import Evaluation, RuleContext
from alerts.rules import SCHEMA_BREAKING_CHANGE
from alerts.slack import alert_message
from alerts.step import read_inputs
from dashboard.data import open_store
from dashboard.filters import Filters
from dashboard.schemas_data import drift
from orgscope.plugins import load_config
from orgscope.store import Store
from testkit.dashboard_sample import fill_org_store, write_config
from testkit.schemas_sample import (
    BROKEN_RULES,
    STOCK_RULE,
    STOCK_SOURCE,
    STOCK_TYPE,
    add_stock_drift,
    fill_schema_drift,
)
from tests.browser.conftest import SCREENSHOTS, settled

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Store]:
    root = tmp_path_factory.mktemp("schemas_browser")
    store = open_store(str(root / "data"))
    cycles = fill_org_store(store, datetime.now(UTC).replace(microsecond=0))
    fill_schema_drift(store, cycles[-1].started_at)
    add_stock_drift(store, cycles[-1].started_at)
    return write_config(root, root / "data"), store


def test_the_schemas_page_names_the_rules_a_new_version_silences(
    sample: tuple[Path, Store], dashboard_url: str, browser: Any
) -> None:
    _, store = sample
    expected = drift(store, Filters()).breaks
    silenced = expected[["account_id", "bus", "rule"]].drop_duplicates().shape[0]
    assert silenced == BROKEN_RULES + 1
    page = browser.new_page(viewport={"width": 1500, "height": 2600})
    page.goto(f"{dashboard_url}/schemas")
    page.get_by_text("Versions side by side").wait_for(timeout=60_000)
    settled(page)
    silent = page.get_by_test_id("stMetric").filter(has_text="Rules that will go silent")
    assert silent.get_by_test_id("stMetricValue").inner_text().strip() == str(silenced)
    banner = page.get_by_test_id("stAlert").filter(has_text="will go silent").inner_text()
    assert f"{silenced} rules will go silent" in banner
    assert "version 3 moved detail.purpose to detail.context.purpose" in banner
    assert "payment-service (999999999999)" in banner
    assert "payment-events-to-order-processing" in banner
    # the picker starts on the broken detail-type, its three versions side by side
    box = page.get_by_test_id("stSelectbox").filter(has_text="Detail-type")
    picker = box.inner_text() + box.get_by_role("combobox").input_value()
    assert "Payment Processed" in picker and f"breaks {BROKEN_RULES} rules" in picker
    assert page.get_by_text("v2 → v3").count() == 1

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "schemas.png"), full_page=True)
    with page.expect_download() as download:
        page.get_by_test_id("stDownloadButton").get_by_role("button").click()
    exported = pd.read_csv(io.BytesIO(Path(download.value.path()).read_bytes()), dtype=str)
    assert len(exported) == len(expected)
    assert sorted(exported["rule"]) == sorted(expected["rule"])
    versions = dict(zip(exported["detail_type"], exported["to_version"], strict=True))
    assert versions == {"Payment Processed": "3", STOCK_TYPE: "2"}
    page.close()


def _alert_button(config: Path, store: Store, base_url: str) -> str:
    """The URL of the "Open Schemas" button of the firing message the alerts step would send
    for the stock rule: its inputs read from the store, the rule evaluated, the lifecycle
    advanced, the message rendered (alerts/step.py's path, without the outbox)."""
    settings = load_config(config)
    now = datetime.now(UTC).replace(microsecond=0)
    inputs, month = read_inputs(settings, store, now)
    assert inputs.schema_breaks is not None
    found = SCHEMA_BREAKING_CHANGE.evaluate(inputs.schema_breaks, RuleContext(
        SCHEMA_BREAKING_CHANGE.settings_in(settings), settings, inputs, now, month))
    states = advance({}, Evaluation(found.conditions), [], now, timedelta(hours=1)).states
    (alert,) = [s for s in states if (s.account_id, s.bus, s.rule) == STOCK_RULE]
    (button, _) = alert_message(alert, "firing", base_url)["blocks"][-1]["elements"]
    assert button["text"]["text"] == "Open Schemas"
    return str(button["url"])


def test_the_alerts_button_opens_the_page_on_its_rules_broken_detail_type(
    sample: tuple[Path, Store], dashboard_url: str, browser: Any
) -> None:
    config, store = sample
    url = _alert_button(config, store, dashboard_url)
    account, bus, rule = STOCK_RULE
    assert url.startswith(f"{dashboard_url}/schemas?account={account}&")
    page = browser.new_page(viewport={"width": 1500, "height": 2400})
    page.goto(url)
    page.get_by_text("Versions side by side").wait_for(timeout=60_000)
    settled(page)
    note = page.get_by_test_id("stAlert").filter(has_text="Opened from the alert").inner_text()
    assert f"rule {rule} (bus {bus}" in note and f"{STOCK_SOURCE} “{STOCK_TYPE}”" in note
    box = page.get_by_test_id("stSelectbox").filter(has_text="Detail-type")
    picker = box.inner_text() + box.get_by_role("combobox").input_value()
    assert STOCK_TYPE in picker and "Payment Processed" not in picker
    # the link's account became the sidebar's filter: only that account's rules are crossed
    # (the sidebar may draw its chips a moment after the main column settles)
    expect(page.get_by_test_id("stSidebar")).to_contain_text(account, timeout=30_000)
    dependents = page.get_by_test_id("stDataFrame").last
    dependents.wait_for()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "schemas_from_alert.png"), full_page=True)
    page.close()
