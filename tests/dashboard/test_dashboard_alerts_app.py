"""The Alerts page through Streamlit's AppTest: empty states, the alerts, silences, sign-in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import access
from dashboard import alerts_data as ad
from dashboard.app_pages.alerts import (
    ALERT_KEY,
    COMMENT_KEY,
    CREATE_KEY,
    MATCHERS_KEY,
    UNTIL_KEY,
)
from orgscope.datasets import all_datasets
from orgscope.store import Store
from orgscope.wiring import CONFIG_ENV, STORE_ENV
from testkit.alerts_sample import FIRING_KEY, FIRING_RULE, RESOLVED_KEY, SILENCE_ID, fill_alerts
from testkit.dashboard_sample import failing_disk, set_dashboard_keys, write_config
from testkit.hostile import shown

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "streamlit_app.py")


def _access_at(address: str) -> Any:
    """current_access as if the server were bound to ``address`` (server.address cannot be set
    while a process runs); everything else (st.user, secrets, Authlib) is the real edge."""
    real = access.current_access

    def patched(settings: Any) -> access.Access:
        original = st.get_option
        try:
            st.get_option = lambda key: address if key == "server.address" else original(key)
            return real(settings)
        finally:
            st.get_option = original

    return patched


def _app(monkeypatch: pytest.MonkeyPatch, config: Path, *, address: str = "127.0.0.1",
         user: dict[str, Any] | None = None, link: str | None = None) -> AppTest:
    monkeypatch.setenv(CONFIG_ENV, str(config))
    monkeypatch.delenv(STORE_ENV, raising=False)
    app = AppTest.from_file(APP, default_timeout=60)
    if user is not None:
        app.user = user
    app.run()
    monkeypatch.setattr(access, "current_access", _access_at(address))
    if link:
        app.query_params["alert"] = link
    app.switch_page("app_pages/alerts.py").run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def _text(app: AppTest) -> str:
    return shown("\n".join(str(m.value) for m in app.markdown))


@pytest.fixture
def filled(tmp_path: Path) -> tuple[Path, Store]:
    config = write_config(tmp_path, tmp_path / "data")
    store = Store(str(tmp_path / "data"), all_datasets())
    fill_alerts(store, datetime.now(UTC).replace(microsecond=0))
    return config, store


def test_nothing_evaluated_yet_names_the_command(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    app = _app(monkeypatch, write_config(tmp_path, tmp_path / "data"))
    info = app.info[0].value
    assert "No alerts have been evaluated" in info and "orgscope alerts --once" in info
    assert not app.error


def test_firing_alerts_labels_messages_and_heal_log(monkeypatch: pytest.MonkeyPatch,
                                                    filled: tuple[Path, Store]) -> None:
    app = _app(monkeypatch, filled[0])
    metrics = {m.label: m.value for m in app.metric}
    assert (metrics["Firing"], metrics["Pending"], metrics["Silenced"]) == ("2", "1", "1")
    text = _text(app)
    assert f"rule **{FIRING_RULE}**" in text and "account **event-bus (121212121212)**" in text
    assert f"silenced by {SILENCE_ID}" in text
    # the most urgent alert is selected; its Slack message is rendered and its raw JSON shown
    assert app.selectbox(key=ALERT_KEY).value == FIRING_KEY
    assert f"#### CRITICAL: rule {FIRING_RULE} is disabled" in text
    assert "after 3 attempts" in text
    assert any('"type": "header"' in code.value for code in app.code)
    heal = [df.value for df in app.dataframe if "actor" in df.value.columns]
    assert heal and list(heal[0]["result"]) == ["skipped", "skipped", "enabled"]


def test_the_deep_link_selects_its_alert(monkeypatch: pytest.MonkeyPatch,
                                         filled: tuple[Path, Store]) -> None:
    app = _app(monkeypatch, filled[0], link=RESOLVED_KEY)
    assert app.selectbox(key=ALERT_KEY).value == RESOLVED_KEY
    assert "Resolved" in _text(app)


def test_no_alert_firing_is_good_news(monkeypatch: pytest.MonkeyPatch,
                                      filled: tuple[Path, Store]) -> None:
    app = _app(monkeypatch, filled[0])
    app.sidebar.multiselect(key="orgscope.filter.teams").select("mobile").run()
    assert any("No alerts firing" in s.value for s in app.success)


def test_create_a_silence_on_loopback_as_the_local_user(monkeypatch: pytest.MonkeyPatch,
                                                        filled: tuple[Path, Store]) -> None:
    config, store = filled
    app = _app(monkeypatch, config)
    assert app.text_area(key=MATCHERS_KEY).value.startswith("alert_name=rule_disabled")
    app.text_input(key=COMMENT_KEY).input("rule disabled on purpose")
    app.button(key=CREATE_KEY).click().run()
    assert not app.exception, [e.message for e in app.exception]
    assert any("created by local:" in shown(s.value) for s in app.success)
    # the firing alert it matches counts as silenced at once; the form starts afresh
    assert {m.label: m.value for m in app.metric}["Silenced"] == "2"
    assert app.text_input(key=COMMENT_KEY).value == ""
    silences = ad.silences(store, datetime.now(UTC))
    new = silences[silences["comment"] == "rule disabled on purpose"].iloc[0]
    assert new["created_by"].startswith("local:")
    assert new["matchers"]["rule"] == FIRING_RULE
    # the new silence is listed with an Expire button; expiring it records who
    app.button(key=f"alerts.expire.{new['id']}").click().run()
    assert any("expired by local:" in shown(s.value) for s in app.success)
    after = ad.silences(store, datetime.now(UTC)).set_index("id")
    assert after.loc[new["id"], "status"] == "expired"


def test_a_bad_matcher_is_refused_with_the_reason(monkeypatch: pytest.MonkeyPatch,
                                                  filled: tuple[Path, Store]) -> None:
    app = _app(monkeypatch, filled[0])
    app.text_area(key=MATCHERS_KEY).input("colour=red")
    app.text_input(key=COMMENT_KEY).input("x")
    app.button(key=CREATE_KEY).click().run()
    assert any("unknown label 'colour'" in e.value for e in app.error)


def test_exposed_and_signed_in_records_the_email(monkeypatch: pytest.MonkeyPatch,
                                                 filled: tuple[Path, Store]) -> None:
    config, store = filled
    set_dashboard_keys(config, allowed_domains=["example.com"])
    app = _app(monkeypatch, config, address="0.0.0.0",
               user={"is_logged_in": True, "email": "ana@example.com"})
    app.text_input(key=COMMENT_KEY).input("maintenance window")
    app.button(key=CREATE_KEY).click().run()
    assert any("created by ana@example.com" in shown(s.value) for s in app.success)
    silences = ad.silences(store, datetime.now(UTC))
    assert "ana@example.com" in set(silences["created_by"])


def test_an_unreadable_store_is_not_no_alerts(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    config = write_config(tmp_path, tmp_path / "data")
    failing_disk(monkeypatch)
    app = _app(monkeypatch, config)
    assert any("Could not read the alert datasets" in e.value for e in app.error)
    assert not any("No alerts have been evaluated" in i.value for i in app.info)


def test_a_silence_until_a_given_time(monkeypatch: pytest.MonkeyPatch,
                                      filled: tuple[Path, Store]) -> None:
    config, store = filled
    app = _app(monkeypatch, config)
    until = (datetime.now(UTC) + timedelta(days=2)).replace(second=0, microsecond=0)
    app.datetime_input(key=UNTIL_KEY).set_value(until.replace(tzinfo=None))
    app.text_input(key=COMMENT_KEY).input("until the release")
    app.button(key=CREATE_KEY).click().run()
    assert not app.exception, [e.message for e in app.exception]
    silences = ad.silences(store, datetime.now(UTC))
    ends = silences[silences["comment"] == "until the release"]["ends_at"].tolist()
    assert [pd.Timestamp(t).to_pydatetime() for t in ends] == [until]
