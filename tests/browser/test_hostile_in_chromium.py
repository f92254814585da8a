"""Deep links carrying hostile text, in headless Chromium: the Traces page's
``?account=...`` and the Alerts page's ``?alert=...`` are echoed in a warning as the text they
are, never as a link, an image or HTML (tests/test_hostile_corpus.py checks every sink through
AppTest; this is the one check in a real browser)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest

from dashboard.data import open_store
from testkit.alerts_sample import fill_alerts
from testkit.browser import dashboard_process
from testkit.dashboard_sample import fill_org_store, write_config
from testkit.hostile import CORPUS
from testkit.traces_sample import fill_traces
from tests.browser.conftest import SCREENSHOTS

pytestmark = pytest.mark.browser

#: A link, an image and HTML with a script handler, in one value.
HOSTILE = " ".join((CORPUS["markdown_link"], CORPUS["markdown_image"], CORPUS["html_img"]))


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("hostile_browser")
    config_path = write_config(root, root / "data")
    store = open_store(str(root / "data"))
    now = datetime.now(UTC).replace(microsecond=0)
    fill_org_store(store, now)
    fill_traces(store, now)
    fill_alerts(store, now)
    with dashboard_process(config_path) as dashboard:
        yield dashboard.url


def _live_markup(page: Any) -> list[str]:
    """Links, images and script handlers the hostile value could have made."""
    return page.evaluate("""() => [
        ...[...document.querySelectorAll('a[href*="evil.example"]')].map(a => 'a ' + a.href),
        ...[...document.querySelectorAll('img[src*="evil.example"], img[src="x"]')]
            .map(i => 'img ' + i.src),
        ...[...document.querySelectorAll('[onerror]')].map(e => 'onerror ' + e.tagName),
    ]""")


@pytest.mark.parametrize(("path", "warning"), [
    (f"traces?account={quote(HOSTILE)}", "This link's filters were not applied"),
    (f"alerts?alert={quote(HOSTILE)}", "which the store does not hold"),
])
def test_hostile_deep_link_renders_literally(url: str, browser: Any, path: str,
                                             warning: str) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}/{path}")
    alert = page.get_by_test_id("stAlert").filter(has_text=warning).first
    alert.wait_for(timeout=60_000)
    shown = alert.inner_text().replace("\u2060", "")  # the word joiners that break autolinks
    assert CORPUS["markdown_link"] in shown and CORPUS["html_img"] in shown, shown
    assert _live_markup(page) == []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"hostile_{path.partition('?')[0]}.png"))
    page.close()
