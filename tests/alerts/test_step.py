"""The alerts step over a real store and the local Slack sink: once, grouped, resolved,
heal notices, and no duplicate after a crash between queueing and storing the state."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from alerts import step as alerts_step
from alerts.step import run_alerts
from orgscope.datasets import all_datasets
from orgscope.store import Store
from sim.slack_sink import SlackSink
from tests.alerts.alert_frames import (
    CENTRAL,
    NOW,
    ORDERS,
    PAYMENTS,
    REGION,
    config,
    heal,
    heal_action,
    health,
    verdict,
)


@pytest.fixture
def slack(sink: SlackSink, monkeypatch: pytest.MonkeyPatch) -> SlackSink:
    sink.clear()
    monkeypatch.setenv("ORGSCOPE_SLACK_WEBHOOK", sink.webhook("default"))
    monkeypatch.delenv("ORGSCOPE_SLACK_WEBHOOK_PAYMENTS", raising=False)
    return sink


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(str(tmp_path), all_datasets())


def put_health(store: Store, frame: pd.DataFrame, at: str) -> None:
    store.write("rule_health", frame, f"health-{at}")


def texts(sink: SlackSink) -> list[str]:
    return [str(r.payload["text"]) for r in sink.delivered()]


def test_disabled_rule_fires_once_with_labels_then_resolves_once(store: Store,
                                                                 slack: SlackSink) -> None:
    put_health(store, health(verdict("orders-in", "DISABLED", reasons=["rule is DISABLED"])),
               "1")
    first = run_alerts(config(), store, now=NOW, max_wait_s=2)
    assert first.delivery is not None and first.delivery.sent
    [message] = slack.delivered()
    payload = message.payload
    assert payload["text"].startswith("[CRITICAL] Rule disabled: rule orders-in")
    blob = json.dumps(payload)
    for label in (ORDERS, "order-processing", REGION, "orders", "central-bus", "orders-in"):
        assert label in blob
    assert "http://localhost:8501/?account=777777777777&region=us-east-1&bus=central-bus" \
           "&rule=orders-in" in blob
    # the evaluations after it (a restart included: all state is stored) say nothing more
    for minutes in (5, 30):
        run_alerts(config(), store, now=NOW + timedelta(minutes=minutes), max_wait_s=2)
    assert len(slack.delivered()) == 1
    put_health(store, health(verdict("orders-in", "OK", at=NOW + timedelta(hours=1))), "2")
    run_alerts(config(), store, now=NOW + timedelta(hours=1), max_wait_s=2)
    run_alerts(config(), store, now=NOW + timedelta(hours=1, minutes=5), max_wait_s=2)
    assert texts(slack)[1].startswith("[RESOLVED] Rule disabled")
    assert len(slack.delivered()) == 2
    events = store.query("SELECT state FROM alert_events ORDER BY \"at\"")["state"].tolist()
    assert events == ["firing", "resolved"]
    sent = store.query("SELECT kind, status, attempts, channel FROM notifications ORDER BY "
                       "created_at")
    assert sent.to_dict("records") == [
        {"kind": "firing", "status": "sent", "attempts": 1, "channel": "ORGSCOPE_SLACK_WEBHOOK"},
        {"kind": "resolved", "status": "sent", "attempts": 1,
         "channel": "ORGSCOPE_SLACK_WEBHOOK"}]


def test_many_rules_of_one_account_failing_together_send_one_message(
        store: Store, slack: SlackSink) -> None:
    rows = [verdict(f"rule-{i}", "DISABLED") for i in range(12)]
    put_health(store, health(*rows), "1")
    run = run_alerts(config(), store, now=NOW, max_wait_s=2)
    assert len(run.open_alerts) == 12
    [message] = slack.delivered()
    assert message.payload["text"] == "[CRITICAL] 12 alerts in order-processing (777777777777)"
    assert "…and 2 more" in json.dumps(message.payload, ensure_ascii=False)
    alerts = store.query("SELECT count(*) AS n FROM alerts WHERE state = 'firing'")
    assert int(alerts["n"].iloc[0]) == 12


def test_silenced_alert_is_stored_with_silenced_by_and_sends_nothing(
        store: Store, slack: SlackSink) -> None:
    from alerts.silences import create_silence

    silence = create_silence(store, {"team": "orders"}, NOW + timedelta(hours=1), "ana",
                             "migration", now=NOW - timedelta(minutes=1))
    put_health(store, health(verdict("orders-in", "DISABLED")), "1")
    run_alerts(config(), store, now=NOW, max_wait_s=1)
    assert slack.delivered() == []
    row = store.query("SELECT state, silenced_by FROM alerts").to_dict("records")
    assert row == [{"state": "firing", "silenced_by": silence}]


def test_heal_notices_once_per_action(store: Store, slack: SlackSink) -> None:
    store.write("heal_actions", heal(heal_action("enable", "enabled", "was ENABLED at 07:50")),
                "heal-1")
    run_alerts(config(), store, now=NOW, max_wait_s=2)
    run_alerts(config(), store, now=NOW + timedelta(minutes=5), max_wait_s=2)
    [notice] = slack.delivered()
    assert notice.payload["text"].startswith(":adhesive_bandage: Auto-heal re-enabled "
                                             "order-placed")
    assert CENTRAL in json.dumps(notice.payload)
    kinds = store.query("SELECT kind, alert_key FROM notifications").to_dict("records")
    assert kinds == [{"kind": "heal",
                      "alert_key": f"rule_disabled/{CENTRAL}/{REGION}/central-bus/order-placed"}]


def test_a_crash_between_queueing_and_storing_the_state_sends_once(
        store: Store, slack: SlackSink, monkeypatch: pytest.MonkeyPatch) -> None:
    put_health(store, health(verdict("orders-in", "DISABLED")), "1")

    def crash(*args: object) -> None:
        raise RuntimeError("killed")

    monkeypatch.setattr(alerts_step, "write_advance", crash)
    with pytest.raises(RuntimeError):
        run_alerts(config(), store, now=NOW, max_wait_s=1)
    assert slack.delivered() == []  # queued, not yet posted
    monkeypatch.undo()
    monkeypatch.setenv("ORGSCOPE_SLACK_WEBHOOK", slack.webhook("default"))
    run_alerts(config(), store, now=NOW + timedelta(minutes=1), max_wait_s=2)
    run_alerts(config(), store, now=NOW + timedelta(minutes=2), max_wait_s=2)
    assert len(slack.delivered()) == 1


def test_cost_forecast_alerts_follow_the_cost_review(store: Store, slack: SlackSink) -> None:
    from orgscope.cost.attribution import month_of
    from testkit.cost_sample import fill_cost

    cfg = config()
    fill_cost(store, cfg, NOW.date(), months=2)
    signals = alerts_step.read_cost_signals(cfg, store, NOW)
    over = sorted(signals.forecast.loc[signals.forecast["status"] == "over", "team"])
    assert over  # the reference cost model runs some teams over their budget
    run = run_alerts(cfg, store, now=NOW, max_wait_s=2)
    assert sorted(a.team or "" for a in run.open_alerts if a.alert_name == "cost_forecast") == \
        over
    assert signals.month == month_of(NOW.date())
    # two alerts of one channel go as two messages (three or more would be grouped)
    assert over == ["orders", "payments"]
    texts = sorted(str(m.payload["text"]) for m in slack.delivered())
    assert [text.split(":")[:2] for text in texts] == [
        ["[WARNING] Forecast over budget", " team orders"],
        ["[WARNING] Forecast over budget", " team payments"]]


def test_service_error_rate_from_stored_spans_pends_then_fires(store: Store,
                                                                slack: SlackSink) -> None:
    from orgscope.datasets import SPANS

    start = NOW - timedelta(minutes=14)  # inside the last complete 15-minute window
    rows = [{"trace_id": f"t{i}", "span_id": f"s{i}", "parent_id": None,
             "account_id": "999999999999", "region": REGION, "service": "payment-service",
             "name": "POST /pay", "origin": "AWS::Lambda", "start": start + timedelta(seconds=i),
             "end": start + timedelta(seconds=i, milliseconds=120), "duration_ms": 120.0,
             "fault": i % 5 == 0, "error": False, "throttle": False, "http_method": "POST",
             "http_url": None, "http_status": 500 if i % 5 == 0 else 200, "annotations": None,
             "traceparent": None, "source": "xray", "linked_from": None}
            for i in range(40)]
    frame = pd.DataFrame(rows)
    for column in SPANS.columns:
        if column not in frame:
            frame[column] = None
    store.write("spans", frame[SPANS.columns], "spans-1")
    run_alerts(config(), store, now=NOW, max_wait_s=1)
    [alert] = store.query("SELECT key, state, summary, team FROM alerts").to_dict("records")
    assert alert["key"] == "service_errors/999999999999/payment-service"
    assert alert["state"] == "pending" and alert["team"] == "payments"
    assert "20.0% of 40 requests failed in 15m" in alert["summary"]
    run_alerts(config(), store, now=NOW + timedelta(minutes=5), max_wait_s=2)
    [message] = slack.delivered()
    assert message.payload["text"].startswith("[WARNING] Service errors: service "
                                              "payment-service")
    assert "/traces?service=payment-service&account=999999999999" in json.dumps(
        message.payload)
    # a window without a single span (the trace collectors read nothing) is no evidence of
    # recovery: the alert holds, no resolved message
    run = run_alerts(config(), store, now=NOW + timedelta(minutes=20), max_wait_s=1)
    assert [a.state for a in run.open_alerts] == ["firing"]
    assert len(slack.delivered()) == 1


def test_an_unreachable_account_is_one_message_not_one_per_rule(store: Store,
                                                                slack: SlackSink) -> None:
    from orgscope.datasets import RUNS
    from tests.alerts.alert_frames import runs

    put_health(store, health(*(verdict(f"rule-{i}", "DISABLED") for i in range(8))), "1")
    run_alerts(config(), store, now=NOW, max_wait_s=2)
    assert len(slack.delivered()) == 1  # the eight disabled rules: one grouped message
    # the account's read role goes: every verdict turns STALE, the inventory runs fail
    stale = {"account": {"reachable": False, "reason": "AccessDenied"}}
    later = NOW + timedelta(minutes=15)
    put_health(store, health(*(verdict(f"rule-{i}", "STALE", fired=["STALE", "DISABLED"],
                                       stale=stale, at=later) for i in range(8))), "2")
    failed = runs(ORDERS, ["error"] * 3, end=later).assign(
        collector="inventory", duration_s=1.0, api_calls=0, api_calls_by_operation="{}",
        metrics_requested=0, traces_retrieved=0, rows=0)
    for column in RUNS.columns:  # columns added to runs since: their nulls
        if column not in failed:
            failed[column] = None
    store.write("runs", failed[RUNS.columns], "runs-1")
    run = run_alerts(config(), store, now=later, max_wait_s=2)
    texts_now = [str(r.payload["text"]) for r in slack.delivered()[1:]]
    assert texts_now == [f"[CRITICAL] Account unreachable: account {ORDERS} (order-processing) "
                         "could not be read in its last 3 collection cycles (unreachable): "
                         "AccessDenied on AssumeRole"]
    # the rules' alerts are held, neither resolved nor repeated
    assert sum(a.alert_name == "rule_disabled" and a.state == "firing"
               for a in run.open_alerts) == 8


def test_a_maintenance_skip_pages_once_and_resolves_when_rules_come_back(
        store: Store, slack: SlackSink) -> None:
    rows = [verdict(f"rule-{i}", "DISABLED" if i < 4 else "OK") for i in range(10)]
    put_health(store, health(*rows), "1")
    store.write("heal_actions", heal(heal_action(
        "skip", "skipped", "maintenance: 4 of 10 rules disabled at once", rule=None,
        heal_id="m1")), "heal-1")
    cfg = config(group_threshold=50)  # the four rule alerts one by one, the page on its own
    run_alerts(cfg, store, now=NOW, max_wait_s=2)
    run_alerts(cfg, store, now=NOW + timedelta(minutes=5), max_wait_s=2)
    pages = [r.payload for r in slack.delivered() if "PAGE" in json.dumps(r.payload)]
    assert len(pages) == 1
    assert pages[0]["text"] == ("<!channel> [CRITICAL] Auto-heal stopped: maintenance: 4 of 10 "
                                "rules disabled at once")
    later = NOW + timedelta(minutes=30)
    put_health(store, health(*(verdict(f"rule-{i}", at=later) for i in range(10))), "2")
    run_alerts(cfg, store, now=later, max_wait_s=2)
    resolved = [str(r.payload["text"]) for r in slack.delivered()
                if str(r.payload["text"]).startswith("[RESOLVED]")]
    assert "[RESOLVED] Auto-heal stopped: the organization" in resolved
    assert len(resolved) == 5  # the page and the four rules


def test_the_maintenance_page_counts_skips_as_far_back_as_its_window(store: Store) -> None:
    """[alerts.rules.heal_maintenance] window is honoured beyond the day of heal_actions the
    heal notices read; heal notices still come only from that day (older ones were sent)."""
    rows = [verdict(f"rule-{i}", "DISABLED" if i < 4 else "OK") for i in range(10)]
    put_health(store, health(*rows), "1")
    two_days_ago = NOW - timedelta(days=2)
    store.write("heal_actions", heal(
        heal_action("skip", "skipped", "maintenance: 4 of 10 rules disabled at once",
                    rule=None, heal_id="m1", at=two_days_ago),
        heal_action("enable", "enabled", "was ENABLED", at=two_days_ago, heal_id="h1")),
        "heal-1")
    base = config()
    rules = base.alerts.rules.model_copy(update={
        "heal_maintenance": base.alerts.rules.heal_maintenance.model_copy(
            update={"window": timedelta(days=3)})})
    run = run_alerts(config(rules=rules), store, now=NOW, deliver=False)
    assert [a.state for a in run.open_alerts if a.alert_name == "heal_maintenance"] == \
        ["firing"]
    assert [m.kind for m in run.queued if m.kind in ("heal", "page")] == ["page"]


def test_the_step_reads_the_latest_verdicts_as_the_rule_health_view_does(store: Store) -> None:
    """alerts.step.read_rule_health (narrow columns first, for speed over a long history)
    returns the rows of the rule_health view: each account and region's latest evaluation."""
    later = NOW + timedelta(minutes=5)
    put_health(store, health(verdict("a", "DISABLED"), verdict("b"),
                             verdict("c", account_id=PAYMENTS)), "1")
    put_health(store, health(verdict("a", at=later), verdict("b", "SILENT", at=later)), "2")
    columns = ["account_id", "region", "bus", "rule", "verdict", "evaluated_at"]
    view = store.query("SELECT * EXCLUDE (date) FROM rule_health")
    read = alerts_step.read_rule_health(store)
    assert len(read) == 3
    assert read[columns].sort_values("rule").to_dict("records") == \
        view[columns].sort_values("rule").to_dict("records")
    assert dict(zip(read["rule"], read["verdict"], strict=True)) == \
        {"a": "OK", "b": "SILENT", "c": "OK"}
