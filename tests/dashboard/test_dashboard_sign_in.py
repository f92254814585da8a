"""Reading an exposed dashboard, through Streamlit's AppTest on the real entrypoint: before
sign-in, a reader refused by the allow-list, and a dashboard with no sign-in configured see the
sign-in, refusal or how-to-configure page on every page URL, and nothing is read from the store
(the store is never even opened); an allowed reader sees the pages; loopback stays open."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from streamlit import config as streamlit_config
from streamlit.testing.v1 import AppTest

from dashboard import access
from dashboard.sign_in import LOGIN_KEY, LOGOUT_KEY
from orgscope import processes
from orgscope.datasets import all_datasets
from orgscope.store import Store
from orgscope.wiring import CONFIG_ENV, STORE_ENV
from testkit.alerts_sample import fill_alerts
from testkit.dashboard_sample import (
    CENTRAL,
    fill_org_store,
    set_dashboard_keys,
    write_config,
)
from testkit.hostile import shown

APP = str(processes.APP)
PAGES = ("app_pages/event_flow.py", "app_pages/traces.py", "app_pages/organization.py",
         "app_pages/alerts.py", "app_pages/cost.py", "app_pages/collectors.py")
#: What the store and config.toml hold, that no one may see before being allowed: an account
#: id, an account name and a team (the config's and the store's), the organization's name.
SECRETS_OF_THE_ORG = (CENTRAL, "event-bus", "customer-web", "payments", "QuickGrocer")
ALLOWED = "ana@example.com"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The sample organization's config and store, the config the dashboard reads."""
    path = write_config(tmp_path, tmp_path / "data")
    store = Store(str(tmp_path / "data"), all_datasets())
    now = datetime.now(UTC).replace(microsecond=0)
    fill_org_store(store, now)
    fill_alerts(store, now)
    monkeypatch.setenv(CONFIG_ENV, str(path))
    monkeypatch.delenv(STORE_ENV, raising=False)
    return set_dashboard_keys(path, allowed_emails=[ALLOWED])


@pytest.fixture
def exposed() -> Iterator[None]:
    """The dashboard bound to every interface (as `--server.address 0.0.0.0`)."""
    before = streamlit_config.get_option("server.address")
    streamlit_config.set_option("server.address", "0.0.0.0")
    yield
    streamlit_config.set_option("server.address", before)


@pytest.fixture
def store_opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every store the dashboard opens, by path (any read of it starts with one)."""
    opened: list[str] = []
    real = Store.__init__

    def spy(self: Store, base: str, *args: Any, **kwargs: Any) -> None:
        opened.append(base)
        real(self, base, *args, **kwargs)

    monkeypatch.setattr(Store, "__init__", spy)
    return opened


def _shown(app: AppTest) -> str:
    """Every text the page shows, main area and sidebar."""
    parts = [str(getattr(element, "value", "")) for kind in (
        "title", "header", "subheader", "markdown", "caption", "info", "warning", "error",
        "success", "code", "metric", "text", "json") for element in getattr(app, kind)]
    parts += [str(frame.value.to_csv()) for frame in app.dataframe]
    parts += [" ".join(map(str, box.options)) for box in [*app.selectbox, *app.multiselect]]
    return "\n".join(parts)


def _run(page: str | None = None, *, user: dict[str, Any] | None = None) -> AppTest:
    """The entrypoint run as ``user`` (st.user), then ``page`` opened."""
    app = AppTest.from_file(APP, default_timeout=60)
    app.user = user or {"is_logged_in": False}
    app.run()
    if page:
        app.switch_page(page).run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def _nothing_of_the_org(app: AppTest) -> None:
    shown = _shown(app)
    for secret in SECRETS_OF_THE_ORG:
        assert secret not in shown, (secret, shown)
    assert not app.sidebar.children or not _shown_in(app.sidebar)


def _shown_in(block: Any) -> str:
    return " ".join(str(getattr(e, "value", "")) for e in block)


@pytest.mark.parametrize("page", PAGES)
def test_exposed_with_no_sign_in_configured_shows_how_and_reads_nothing(
        monkeypatch: pytest.MonkeyPatch, config: Path, exposed: None, store_opened: list[str],
        page: str) -> None:
    app = _run(page)
    _nothing_of_the_org(app)
    assert store_opened == []
    [error] = app.error
    assert "no sign-in provider is configured" in error.value and "Nothing is shown" in error.value
    assert any("[auth]" in code.value for code in app.code)  # the secrets.toml to write
    assert not app.button  # nothing to press: nobody can sign in


@pytest.mark.parametrize("page", PAGES)
def test_exposed_and_signed_out_is_asked_to_sign_in_and_reads_nothing(
        monkeypatch: pytest.MonkeyPatch, config: Path, exposed: None, store_opened: list[str],
        page: str) -> None:
    monkeypatch.setattr(access, "auth_problem", lambda provider: None)  # [auth] configured
    app = _run(page, user={"is_logged_in": False})
    _nothing_of_the_org(app)
    assert store_opened == []
    assert app.button(key=LOGIN_KEY).label == "Sign in"
    assert any("sign in to read it" in info.value for info in app.info)


@pytest.mark.parametrize("page", PAGES)
def test_a_reader_outside_the_allow_list_is_refused_on_every_page(
        monkeypatch: pytest.MonkeyPatch, config: Path, exposed: None, store_opened: list[str],
        page: str) -> None:
    monkeypatch.setattr(access, "auth_problem", lambda provider: None)
    app = _run(page,
               user={"is_logged_in": True, "email": "eve@evil-example.com"})
    _nothing_of_the_org(app)
    assert store_opened == []
    assert app.button(key=LOGOUT_KEY).label == "Sign out"
    [error] = app.error
    assert "eve@evil-example.com" in shown(error.value)
    assert "not on this dashboard's allow-list" in error.value


def test_require_login_always_gates_a_loopback_dashboard(
        monkeypatch: pytest.MonkeyPatch, config: Path, store_opened: list[str]) -> None:
    set_dashboard_keys(config, require_login="always")
    monkeypatch.setattr(access, "auth_problem", lambda provider: None)
    app = _run("app_pages/cost.py", user={"is_logged_in": False})
    _nothing_of_the_org(app)
    assert store_opened == []
    assert app.button(key=LOGIN_KEY).label == "Sign in"


@pytest.mark.parametrize("page", PAGES)
def test_an_allowed_reader_sees_every_page(monkeypatch: pytest.MonkeyPatch, config: Path,
                                           exposed: None, page: str) -> None:
    monkeypatch.setattr(access, "auth_problem", lambda provider: None)
    app = _run(page, user={"is_logged_in": True, "email": "Ana@Example.com"})
    assert CENTRAL in _shown(app)  # the sidebar's accounts, at least
    assert app.sidebar.button(key=LOGOUT_KEY).label == "Sign out"
    assert any("Signed in as Ana@Example.com" in shown(c.value) for c in app.sidebar.caption)


def test_loopback_stays_open_without_sign_in(monkeypatch: pytest.MonkeyPatch,
                                             config: Path) -> None:
    app = _run("app_pages/organization.py")
    shown = _shown(app)
    assert [secret for secret in SECRETS_OF_THE_ORG if secret not in shown] == []
    assert not [b for b in app.button if b.key in (LOGIN_KEY, LOGOUT_KEY)]


def test_a_bad_config_on_an_exposed_dashboard_keeps_its_values_in_the_log(
        config: Path) -> None:
    config.write_text(config.read_text().replace('id = "121212121212"', 'id = "12121212121x"'))
    [error] = _run().error
    assert "12121212121x" in error.value  # on loopback: the lines, values and all
    streamlit_config.set_option("server.address", "0.0.0.0")
    try:
        [error] = _run().error
    finally:
        streamlit_config.set_option("server.address", "127.0.0.1")
    assert "12121212121x" not in error.value and "check-config" in error.value
