"""The Schemas page in headless Chromium, on the demo's drift (the payment service's
"Payment Processed" version 3 moved ``purpose`` under ``context``): the rules that will go
silent are named, the versions stand side by side, and the breaking changes download whole."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dashboard.data import open_store
from dashboard.filters import Filters
from dashboard.schemas_data import drift
from orgscope.store import Store
from testkit.browser import running_dashboard
from testkit.dashboard_sample import fill_org_store, write_config
from testkit.schemas_sample import BROKEN_RULES, fill_schema_drift
from tests.browser.conftest import SCREENSHOTS, settled

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Store]:
    root = tmp_path_factory.mktemp("schemas_browser")
    store = open_store(str(root / "data"))
    cycles = fill_org_store(store, datetime.now(UTC).replace(microsecond=0))
    fill_schema_drift(store, cycles[-1].started_at)
    return write_config(root, root / "data"), store


@pytest.fixture(scope="module")
def dashboard_url(sample: tuple[Path, Store]) -> Iterator[str]:
    with running_dashboard(sample[0]) as url:
        yield url


def test_the_schemas_page_names_the_rules_a_new_version_silences(
    sample: tuple[Path, Store], dashboard_url: str, browser: Any
) -> None:
    _, store = sample
    expected = drift(store, Filters()).breaks
    page = browser.new_page(viewport={"width": 1500, "height": 2600})
    page.goto(f"{dashboard_url}/schemas")
    page.get_by_text("Versions side by side").wait_for(timeout=60_000)
    settled(page)
    silent = page.get_by_test_id("stMetric").filter(has_text="Rules that will go silent")
    assert silent.get_by_test_id("stMetricValue").inner_text().strip() == str(BROKEN_RULES)
    banner = page.get_by_test_id("stAlert").filter(has_text="will go silent").inner_text()
    assert f"{BROKEN_RULES} rules will go silent" in banner
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
    assert set(exported["to_version"]) == {"3"}
    page.close()
