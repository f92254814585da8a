"""The Alerts page in headless Chromium: a firing alert with its labels and its Slack message,
the auto-heal audit row (through the CSV download), a silence created, listed and expired."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dashboard import alerts_data as ad
from dashboard.data import open_store
from orgscope.store import Store
from tests.browser.conftest import SCREENSHOTS, running_dashboard
from tests.dashboard.alerts_sample import (
    FIRING_KEY,
    FIRING_RULE,
    OPTED_OUT_RULE,
    RESOLVED_KEY,
    RESOLVED_RULE,
    fill_alerts,
)
from tests.dashboard.dashboard_sample import write_config

pytestmark = pytest.mark.browser

COMMENT = "rule disabled on purpose for the migration"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Store]:
    root = tmp_path_factory.mktemp("alerts_browser")
    config_path = write_config(root, root / "data")
    store = open_store(str(root / "data"))
    fill_alerts(store, datetime.now(UTC).replace(microsecond=0))
    return config_path, store


@pytest.fixture(scope="module")
def dashboard_url(sample: tuple[Path, Store]) -> Iterator[str]:
    with running_dashboard(sample[0]) as url:
        yield url


def _settle(page: Any) -> None:
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=60_000)


def test_alerts_page_shows_the_alert_its_message_and_manages_a_silence(
    sample: tuple[Path, Store], dashboard_url: str, browser: Any
) -> None:
    _, store = sample
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1500, "height": 3600}, accept_downloads=True)
    page.goto(f"{dashboard_url}/alerts")
    page.get_by_text("Firing and pending").wait_for(timeout=60_000)
    _settle(page)

    # the firing alert, most urgent first, with its labels
    card = page.get_by_test_id("stMarkdown").filter(has_text=f"key {FIRING_KEY}").first
    text = card.inner_text()
    for label in ("CRITICAL", "FIRING", "account event-bus (121212121212)", "region us-east-1",
                  "team platform", "bus central-bus", f"rule {FIRING_RULE}"):
        assert label in text, (label, text)
    # its Slack message as sent: the header block and the numbers, and the raw JSON
    page.get_by_role("heading", name=f"CRITICAL: rule {FIRING_RULE} is disabled").wait_for()
    # (the raw JSON sits folded in an expander below it: the rendered text is the first)
    assert page.get_by_text("Matched (last 15 min)").first.is_visible()
    assert page.get_by_text("after 3 attempts").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "alerts.png"), full_page=True)

    # the auto-heal audit log, as downloaded
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the audit log (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    healed = [r for r in rows if r["rule"] == RESOLVED_RULE]
    assert [(r["action"], r["result"], r["dry_run"], r["actor"]) for r in healed] == \
        [("enable", "enabled", "False", "orgscope-heal")]
    assert healed[0]["disabled_by"].endswith("assumed-role/Admin/jo")
    assert {r["rule"] for r in rows} >= {RESOLVED_RULE, OPTED_OUT_RULE}

    # create a silence from the selected alert's labels, as the local user
    page.get_by_label("Why").fill(COMMENT)
    page.get_by_role("button", name="Create silence").click()
    page.get_by_text("created by local:").wait_for(timeout=30_000)
    _settle(page)
    listed = page.get_by_test_id("stMarkdown").filter(has_text=COMMENT).first
    assert f"rule={FIRING_RULE}" in listed.inner_text()
    assert "matches 1 active alert now" in listed.inner_text()
    stored = ad.silences(store, datetime.now(UTC))
    new = stored[stored["comment"] == COMMENT].iloc[0]
    assert new["created_by"].startswith("local:") and new["status"] == "active"
    page.screenshot(path=str(SCREENSHOTS / "alerts_silence.png"), full_page=True)

    # expire it
    page.get_by_test_id("stHorizontalBlock").filter(has_text=COMMENT).get_by_role(
        "button", name="Expire").click()
    page.get_by_text(f"Silence {new['id']} expired by local:").wait_for(timeout=30_000)
    after = ad.silences(store, datetime.now(UTC)).set_index("id")
    assert after.loc[new["id"], "status"] == "expired"

    # a deep link selects its alert
    page.goto(f"{dashboard_url}/alerts?alert={RESOLVED_KEY}")
    page.get_by_text("Firing and pending").wait_for(timeout=60_000)
    _settle(page)
    assert page.get_by_text("is ENABLED again").first.is_visible()
    page.close()
