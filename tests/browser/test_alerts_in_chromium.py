"""The Alerts page in headless Chromium: nothing shown until the user signs in through st.login
against a local OIDC provider; then a firing alert with its labels and its Slack message, the
auto-heal audit row (through the CSV download), a silence created (recorded against the
provider's email), listed and expired; and a deep link.

One dashboard serves the whole test (starting one costs more than the checks). It stays on
loopback with ``[dashboard] require_login = "always"`` (the reverse-proxy case), which takes
the same path as an exposed address without opening a port to the network; the loopback
local-user path is covered through AppTest (tests/dashboard/test_dashboard_alerts_app.py), and
readers refused by the allow-list in tests/browser/test_sign_in_in_chromium.py.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dashboard import alerts_data as ad
from dashboard.data import open_store
from orgscope.store import Store
from testkit.alerts_sample import (
    DISABLED_BY,
    FIRING_KEY,
    FIRING_RULE,
    OPTED_OUT_RULE,
    RESOLVED_KEY,
    RESOLVED_RULE,
    fill_alerts,
)
from testkit.browser import dashboard_process, free_port
from testkit.dashboard_sample import set_dashboard_keys, write_config
from tests.browser.conftest import SCREENSHOTS
from tests.browser.oidc_provider import OidcProvider

pytestmark = pytest.mark.browser

EMAIL = "ana@example.com"
#: As pages show it: a word joiner after the @ keeps markdown from making it a mailto: link.
EMAIL_SHOWN = "ana@\u2060example.com"
COMMENT = "rule disabled on purpose for the migration"


@dataclass(frozen=True)
class Running:
    url: str
    store: Store
    idp: OidcProvider


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("alerts_browser")
    config_path = set_dashboard_keys(write_config(root, root / "data"),
                                     require_login="always", allowed_emails=[EMAIL])
    store = open_store(str(root / "data"))
    fill_alerts(store, datetime.now(UTC).replace(microsecond=0))
    port = free_port()
    with OidcProvider(EMAIL) as idp:
        idp.write_streamlit_secrets(root, port)
        with dashboard_process(config_path, port=port, cwd=root) as dashboard:
            yield Running(dashboard.url, store, idp)


def _settle(page: Any) -> None:
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=60_000)


def _open_alerts(page: Any, url: str, wait_for: str) -> None:
    page.goto(url)
    page.get_by_text(wait_for).first.wait_for(timeout=60_000)
    _settle(page)


def test_alerts_page_in_chromium(running: Running, browser: Any) -> None:
    url, store, idp = running.url, running.store, running.idp
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1500, "height": 3600}, accept_downloads=True)
    # signed out, the page is the sign-in page: not one alert on it
    _open_alerts(page, f"{url}/alerts", "sign in to read it")
    assert FIRING_KEY not in page.content()

    # st.login -> the provider -> /oauth2callback -> the app's home page, signed in
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(rf"^{re.escape(url)}/?$"), timeout=60_000)
    assert (idp.authorized, idp.tokens) == (1, 1)
    _open_alerts(page, f"{url}/alerts", f"Signed in as {EMAIL_SHOWN}.")

    # the firing alert, most urgent first, with its labels
    # (its Slack message, shown below, names the key too, and "Firing since": the card is the
    # element with the key and the state in capitals; has_text alone ignores case)
    card = page.get_by_test_id("stMarkdown").filter(has_text=f"key {FIRING_KEY}").filter(
        has_text=re.compile("FIRING")).first
    card.wait_for(timeout=30_000)
    text = card.inner_text()
    for label in ("CRITICAL", "FIRING", "account event-bus (121212121212)", "region us-east-1",
                  "team platform", "bus central-bus", f"rule {FIRING_RULE}",
                  f"disabled by {DISABLED_BY} at"):  # who, from a change event, as text
        assert label in text, (label, text)
    # its Slack message as sent: the header block and the numbers (the raw JSON sits folded
    # in an expander below it: the rendered text is the first match)
    page.get_by_role("heading", name=f"CRITICAL: rule {FIRING_RULE} is disabled").wait_for()
    page.get_by_text("Matched (last 15 min)").first.wait_for(timeout=30_000)
    page.get_by_text("after 3 attempts").wait_for(timeout=30_000)

    # the auto-heal audit log, as downloaded
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the audit log (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    healed = [r for r in rows if r["rule"] == RESOLVED_RULE]
    assert [(r["action"], r["result"], r["dry_run"], r["actor"]) for r in healed] == \
        [("enable", "enabled", "False", "orgscope-heal")]
    assert healed[0]["disabled_by"].endswith("assumed-role/Admin/jo")
    assert {r["rule"] for r in rows} >= {RESOLVED_RULE, OPTED_OUT_RULE}

    page.screenshot(path=str(SCREENSHOTS / "alerts.png"), full_page=True)

    # a silence from the selected alert's labels, recorded against the email
    page.get_by_label("Why").fill(COMMENT)
    page.get_by_role("button", name="Create silence").click()
    page.get_by_text(f"created by {EMAIL_SHOWN}").wait_for(timeout=30_000)
    _settle(page)
    listed = page.get_by_test_id("stMarkdown").filter(has_text=COMMENT).first
    assert f"rule={FIRING_RULE}" in listed.inner_text()
    assert "matches 1 active alert now" in listed.inner_text()
    stored = ad.silences(store, datetime.now(UTC))
    new = stored[stored["comment"] == COMMENT].iloc[0]
    assert (new["created_by"], new["status"]) == (EMAIL, "active")
    page.screenshot(path=str(SCREENSHOTS / "alerts_silence.png"), full_page=True)

    # expire it
    page.get_by_test_id("stHorizontalBlock").filter(has_text=COMMENT).get_by_role(
        "button", name="Expire").click()
    page.get_by_text(f"Silence {new['id']} expired by {EMAIL_SHOWN}").wait_for(timeout=30_000)
    after = ad.silences(store, datetime.now(UTC)).set_index("id")
    assert after.loc[new["id"], "status"] == "expired"
    assert after.loc[new["id"], "comment"].endswith(f"(expired by {EMAIL})")

    # a deep link selects its alert
    _open_alerts(page, f"{url}/alerts?alert={RESOLVED_KEY}", "Firing and pending")
    # (the selected alert renders after the headline the helper waits for: wait for it too;
    # the table's grid keeps a hidden copy of every cell's text, which never becomes visible)
    page.get_by_text("is ENABLED again").filter(visible=True).first.wait_for(timeout=60_000)
    page.close()
