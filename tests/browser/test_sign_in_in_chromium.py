"""Reading a dashboard that requires sign-in, in headless Chromium, through st.login's real
round trip against the local OIDC provider (tests/browser/oidc_provider.py).

Before anyone signs in, every page URL shows only the sign-in page; a user outside the
allow-list (``eve@evil-example.com`` against ``allowed_domains = ["example.com"]``) is refused
on every page with a sign-out button; after signing out, an allowed user
(``ana@example.com``) sees the pages. What must not reach a refused browser, an account id,
an account name, the organization's name and the Cost page's total, is looked for in the
page HTML *and* in every websocket frame the server sent, and is found for the allowed user
(so the check can fail). Like the Alerts browser test, the dashboard stays on loopback with
``require_login = "always"``: the same path as an exposed address without opening a port to
the network.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dashboard import cost_data
from dashboard.data import open_store
from orgscope import wiring
from testkit.alerts_sample import fill_alerts
from testkit.browser import dashboard_process, free_port
from testkit.cost_sample import fill_cost
from testkit.dashboard_sample import (
    UNREACHABLE_ID,
    fill_org_store,
    set_dashboard_keys,
    write_config,
)
from tests.browser.conftest import SCREENSHOTS
from tests.browser.oidc_provider import OidcProvider

pytestmark = pytest.mark.browser

ALLOWED = "ana@example.com"
#: As pages show it: a word joiner after the @ keeps markdown from making it a mailto: link.
ALLOWED_SHOWN = "ana@\u2060example.com"
REFUSED = "eve@evil-example.com"
#: Every page's URL path ("" = the default page, Event flow).
PAGES = ("", "traces", "organization", "alerts", "cost", "collectors")
SIGN_IN = "sign in to read it"
REFUSAL = "not on this dashboard's allow-list"
#: What shows that a page has drawn what the secrets are looked for in.
LOADED = {"organization": "Accounts watched", "cost": "Top movers"}


@dataclass
class Running:
    url: str
    idp: OidcProvider
    #: What no refused reader may receive: the unreachable account's id and name, the
    #: organization's name, last month's cost total as the Cost page prints it.
    secrets: tuple[str, ...]
    frames: list[bytes] = field(default_factory=list)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("sign_in_browser")
    config_path = set_dashboard_keys(write_config(root, root / "data"),
                                     require_login="always", allowed_domains=["example.com"])
    config = wiring.load(config_path)
    store = open_store(str(root / "data"))
    now = datetime.now(UTC).replace(microsecond=0)
    fill_org_store(store, now)
    fill_alerts(store, now)
    fill_cost(store, config, now.date())
    month = f"{now.date().replace(day=1) - timedelta(days=1):%Y-%m}"
    total = cost_data.build_review(store, config, month, now.date()).teams["amount"].sum()
    secrets = (UNREACHABLE_ID, "payment-service", config.organization.name, f"{total:,.2f}")
    port = free_port()
    with OidcProvider(REFUSED) as idp:
        idp.write_streamlit_secrets(root, port)
        with dashboard_process(config_path, port=port, cwd=root) as dashboard:
            yield Running(dashboard.url, idp, secrets)


def _record_frames(page: Any, frames: list[bytes]) -> None:
    """Keep every websocket frame the server sends this page (Streamlit's protobuf deltas)."""
    def on_socket(socket: Any) -> None:
        socket.on("framereceived", lambda payload: frames.append(
            payload if isinstance(payload, bytes) else str(payload).encode()))
    page.on("websocket", on_socket)


def _open(page: Any, url: str, wait_for: str) -> str:
    """Open ``url``, wait for ``wait_for`` and for the run to finish; the page's HTML."""
    page.goto(url)
    page.get_by_text(wait_for).first.wait_for(timeout=60_000)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=60_000)
    html: str = page.content()
    return html


def _leaked(secrets: tuple[str, ...], html: str, frames: list[bytes]) -> list[str]:
    received = b"".join(frames)
    return [s for s in secrets if s in html or s.encode() in received]


def _sign_in(page: Any, url: str, idp: OidcProvider, expect: str) -> None:
    """Press Sign in: st.login -> the provider -> /oauth2callback -> the app's home page,
    which then shows ``expect`` (the page before it never does)."""
    tokens = idp.tokens
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(expect).first.wait_for(timeout=60_000)
    page.wait_for_url(re.compile(rf"^{re.escape(url)}/?$"), timeout=60_000)
    assert idp.tokens == tokens + 1


def test_only_an_allowed_reader_sees_any_page(running: Running, browser: Any) -> None:
    url, idp, secrets = running.url, running.idp, running.secrets
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    frames: list[bytes] = []
    _record_frames(page, frames)

    # nobody signed in: every page URL is the sign-in page, and nothing of the organization
    for path in PAGES:
        html = _open(page, f"{url}/{path}", SIGN_IN)
        assert _leaked(secrets, html, frames) == [], path
        page.get_by_role("button", name="Sign in").wait_for(timeout=30_000)
        assert page.get_by_test_id("stSidebar").count() == 0, path
    page.screenshot(path=str(SCREENSHOTS / "sign_in.png"), full_page=True)

    # signed in outside the allow-list: refused on every page, with a way out
    _sign_in(page, url, idp, REFUSAL)
    for path in PAGES:
        html = _open(page, f"{url}/{path}", REFUSAL)
        assert REFUSED in html.replace("\u2060", "") and "mailto:" not in html
        assert _leaked(secrets, html, frames) == [], path
        page.get_by_role("button", name="Sign out").wait_for(timeout=30_000)
    page.screenshot(path=str(SCREENSHOTS / "sign_in_refused.png"), full_page=True)
    assert _leaked(secrets, "", frames) == []  # not one frame of the whole session held one

    # sign out, then in as an allowed user: the pages, and what was withheld is there
    page.get_by_role("button", name="Sign out").click()
    page.get_by_text(SIGN_IN).first.wait_for(timeout=60_000)
    idp.email = ALLOWED
    _sign_in(page, url, idp, f"Signed in as {ALLOWED_SHOWN}")
    assert (idp.authorized, idp.tokens) == (2, 2)
    seen: set[str] = set()
    for path in PAGES:
        html = _open(page, f"{url}/{path}", LOADED.get(path, f"Signed in as {ALLOWED_SHOWN}"))
        assert f"Signed in as {ALLOWED_SHOWN}" in page.inner_text("body")
        assert f'href="mailto:{ALLOWED}"' not in html  # the email is text, not a link
        assert REFUSAL not in html and SIGN_IN not in html
        seen.update(_leaked(secrets, html, []))
    assert sorted(seen) == sorted(secrets)  # the checks above could have failed
    page.close()
