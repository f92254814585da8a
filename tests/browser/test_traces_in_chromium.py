"""The Traces page in headless Chromium, on traces the simulated organization really wrote.

The simulator plays an hour of QuickGrocer's traced orders (customer-web -> central-bus ->
order-processing -> payment-service, inventory-mgmt); `orgscope collect --once --only xray
--only otel` reads them through the read role (X-Ray segments, and inventory-mgmt's
OpenTelemetry spans from its aws/spans group) and the traces step stitches them. An SRE then
searches by minimum duration, opens the slowest trace and sees one waterfall across the five
accounts, and the service map.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orgscope import wiring
from testkit.browser import running_dashboard
from tests.browser.conftest import SCREENSHOTS
from tests.simulated import simulated_org

pytestmark = pytest.mark.browser

ACCOUNTS = {"customer-web": "111111111111", "event-bus": "121212121212",
            "order-processing": "777777777777", "payment-service": "999999999999",
            "inventory-mgmt": "666666666666"}


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with simulated_org(tmp_path_factory.mktemp("traces_browser")) as org:
        # X-Ray segments, and inventory-mgmt's OpenTelemetry spans from its aws/spans group
        assert org.cli("collect", "--once", "--only", "xray", "--only", "otel") == 0
        yield org.config_path


@pytest.fixture(scope="module")
def dashboard_url(collected: Path) -> Iterator[str]:
    with running_dashboard(collected) as url:
        yield url


def _settle(page: Any, charts: int) -> None:
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=60_000)
    page.locator(".js-plotly-plot").nth(charts - 1).wait_for(timeout=60_000)


def test_an_sre_finds_the_slowest_order_and_sees_it_across_accounts(
        collected: Path, dashboard_url: str, browser: Any) -> None:
    started = time.perf_counter()
    store = wiring.open_store(wiring.load(collected))
    durations = store.query("SELECT duration_ms FROM traces WHERE merged_into IS NULL "
                            "ORDER BY duration_ms DESC")["duration_ms"]
    assert len(durations) >= 5  # the traces step summarizes its recent window ([traces])
    threshold = int(durations.quantile(0.75))
    expected = int((durations >= threshold).sum())

    page = browser.new_page(viewport={"width": 1500, "height": 2600})
    page.goto(f"{dashboard_url}/traces")
    page.get_by_text("Latency percentiles").wait_for(timeout=60_000)
    _settle(page, 3)
    field = page.get_by_label("Minimum duration (ms)", exact=True)
    field.fill(str(threshold))
    field.press("Enter")
    shown = re.compile(rf"^{expected:,} (trace matches|traces match)")
    page.get_by_text(shown).wait_for(timeout=60_000)
    _settle(page, 3)

    # open the slowest: the first choice of the picker
    page.get_by_test_id("stSelectbox").filter(has_text="Trace").click()
    options = page.get_by_role("option")
    assert options.first.inner_text().startswith(f"{durations.iloc[0]:,.0f} ms")
    options.first.click()
    _settle(page, 3)

    waterfall = page.locator(".js-plotly-plot").nth(0)
    legend = " ".join(waterfall.locator(".legendtext").all_text_contents())
    for name, account_id in ACCOUNTS.items():
        assert f"{name} ({account_id})" in legend, legend
    assert "account boundary crossed" in legend
    service_map = page.locator(".js-plotly-plot").nth(1)
    drawn = " ".join(service_map.locator("text").all_text_contents())
    for service in ("customer-web", "central-bus", "order-processing", "payment-service",
                    "inventory-mgmt"):
        assert service in drawn, drawn
    assert page.get_by_test_id("stException").count() == 0
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "traces.png"), full_page=True)
    print(f"traces page: searched and opened in {time.perf_counter() - started:.1f}s")
    page.close()
