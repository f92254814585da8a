"""The Alerts page over what the real alerting step writes (not hand-made rows): a disabled
rule evaluated by alerts.step.run_alerts, its message delivered to the local Slack sink after a
429, a heal notice, and a silence made on the page that the next evaluation honours."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from alerts.step import run_alerts
from dashboard import access
from dashboard import alerts_data as ad
from dashboard.app_pages.alerts import COMMENT_KEY, CREATE_KEY, MATCHERS_KEY
from orgscope.changes import RuleChange, changes_frame
from orgscope.config import Config
from orgscope.datasets import RULE_CHANGES, all_datasets
from orgscope.plugins import load_config
from orgscope.store import Store
from orgscope.wiring import CONFIG_ENV, STORE_ENV
from sim.slack_sink import Response, SlackSink
from testkit.dashboard_sample import (
    RULE_SPECS,
    Cycle,
    _accounts_frame,
    _buses_frame,
    _rules_frame,
    _runs_frame,
    fill_org_store,
    write_config,
)
from testkit.hostile import markdown_problems, shown, slack_problems
from tests.alerts.alert_frames import CENTRAL, heal, heal_action, health, verdict

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "streamlit_app.py")
RULE = "order-placed-to-orders"
KEY = f"rule_disabled/{CENTRAL}/us-east-1/central-bus/{RULE}"


@pytest.fixture
def sink(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlackSink]:
    server = SlackSink()
    server.start()
    monkeypatch.setenv("ORGSCOPE_SLACK_WEBHOOK", server.webhook("default"))
    yield server
    server.stop()


def _disabled_rule(tmp_path: Path) -> tuple[Path, Config, Store, datetime]:
    """A config and store where the inventory saw RULE ENABLED twice, then DISABLED, and the
    health model said so; (config path, config, store, now)."""
    config_path = write_config(tmp_path, tmp_path / "data")
    config = load_config(config_path)
    store = Store(str(tmp_path / "data"), all_datasets())
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    # two inventory cycles with the rule ENABLED, then one where somebody disabled it
    fill_org_store(store, now - timedelta(minutes=5), cycles=2, unreachable_last=0)
    cycle = Cycle(now, frozenset())
    specs = [(*spec[:5], spec[2] == RULE or spec[5]) for spec in RULE_SPECS]
    store.write("rules", _rules_frame(cycle, "us-east-1", specs), "cycle-3")
    store.write("event_buses", _buses_frame(cycle, "us-east-1"), "cycle-3")
    store.write("accounts", _accounts_frame(cycle), "cycle-3")
    store.write("runs", _runs_frame(cycle, "cycle-3", ["us-east-1"]), "cycle-3")
    store.write("rule_health", health(verdict(RULE, "DISABLED", reasons=["rule is DISABLED"],
                                              account_id=CENTRAL, at=now)), "health-1")
    return config_path, config, store, now


def _alerts_page(monkeypatch: pytest.MonkeyPatch, config_path: Path) -> AppTest:
    """The Alerts page over ``config_path``'s store, read as the local user."""
    monkeypatch.setenv(CONFIG_ENV, str(config_path))
    monkeypatch.delenv(STORE_ENV, raising=False)
    # AppTest runs without `streamlit run --server.address`: decide as on loopback
    monkeypatch.setattr(access, "current_access", lambda settings: access.decide(
        address="127.0.0.1", require_login=settings.require_login, os_user="sre",
        authlib_installed=True, auth_problem=None, user={}, allowed=access.AllowList()))
    app = AppTest.from_file(APP, default_timeout=60).run()
    app.switch_page("app_pages/alerts.py").run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def test_the_page_shows_what_the_alerting_step_wrote(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sink: SlackSink) -> None:
    config_path, config, store, now = _disabled_rule(tmp_path)
    store.write("heal_actions", heal(heal_action("enable", "would-enable",
                                                 "was ENABLED at the previous inventory",
                                                 rule=RULE, at=now)), "heal-1")
    sink.script(Response(429, "rate_limited", {"Retry-After": "1"}))
    run_alerts(config, store, now=now, max_wait_s=5)

    app = _alerts_page(monkeypatch, config_path)
    text = shown("\n".join(str(m.value) for m in app.markdown))
    assert f"key {KEY}" in text and "account **event-bus (121212121212)**" in text
    # the message as the sink received it
    [delivered] = [r for r in sink.delivered()
                   if str(r.payload["text"]).startswith("[CRITICAL] Rule disabled")]
    header = delivered.payload["blocks"][0]["text"]["text"]
    assert f"#### {header}" in text
    # both messages about this rule (the alert, the heal notice): one had to wait for a 429
    assert text.count(":green[**sent**]") == 2
    assert "after 2 attempts" in text and "**heal** message" in text
    heal_rows = next(df.value for df in app.dataframe if "actor" in df.value.columns)
    assert list(heal_rows["result"]) == ["would-enable"]
    assert heal_rows.iloc[0]["account_id"] == CENTRAL

    # a silence made on the page, in the matcher format the step reads back
    app.text_input(key=COMMENT_KEY).input("rule disabled on purpose")
    assert f"rule={RULE}" in app.text_area(key=MATCHERS_KEY).value
    app.button(key=CREATE_KEY).click().run()
    assert not app.exception, [e.message for e in app.exception]
    [silence_id] = list(ad.silences(store, datetime.now(UTC))["id"])
    # (the step evaluates at whole seconds: one second on, the silence has surely started)
    run_alerts(config, store, now=datetime.now(UTC) + timedelta(seconds=1), max_wait_s=1)
    assert ad.alert_by_key(store, KEY, datetime.now(UTC)).iloc[0]["silences"] == [silence_id]


#: A principal ARN as a monitored account could shape it (a role path is free text).
WHO = "arn:aws:sts::121212121212:assumed-role/<!channel>/[jo](https://evil.example) *x*"


def test_the_alert_names_who_disabled_the_rule_as_text(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sink: SlackSink) -> None:
    """A ``rule_changes`` row (a change event, docs/changes.md) puts "disabled by <principal
    ARN> at <time>" in the alert: sent to Slack and shown on the page as text."""
    config_path, config, store, now = _disabled_rule(tmp_path)
    disabled_at = now - timedelta(seconds=30)
    store.write(RULE_CHANGES.name, changes_frame([RuleChange(
        CENTRAL, "us-east-1", "central-bus", RULE, "DisableRule", WHO, "AssumedRole",
        disabled_at, now - timedelta(seconds=28), "ct-1")]), "changes-1")
    run_alerts(config, store, now=now, max_wait_s=5)

    [delivered] = [r for r in sink.delivered()
                   if str(r.payload["text"]).startswith("[CRITICAL] Rule disabled")]
    assert slack_problems(delivered.payload, config.dashboard.base_url) == []
    assert "disabled by arn:aws:sts::121212121212:assumed-role/&lt;!channel&gt;" in \
        json.dumps(delivered.payload)

    app = _alerts_page(monkeypatch, config_path)
    markdown = [str(m.value) for m in app.markdown]
    for text in markdown:
        assert markdown_problems(text, config.dashboard.base_url) == [], text
    assert f"disabled by {WHO} at {disabled_at:%Y-%m-%d %H:%M} UTC" in shown("\n".join(markdown))
