"""Block Kit rendering, links, grouping into messages, routing and the secret cache."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from alerts.lifecycle import AlertState, Notice
from alerts.notify import alert_messages, heal_messages
from alerts.routing import SecretCache, WebhookError, Webhooks, route, secrets_fetcher
from alerts.rule import AlertInputs, RuleContext
from alerts.rules import SCHEMA_BREAKING_CHANGE
from alerts.slack import alert_message, dashboard_link, group_message, heal_message
from orgscope.config import AlertRuleConfig, SlackConfig, SlackRoute
from orgscope.schema_drift import breaking_changes, fields_json
from testkit.hostile import slack_problems
from tests.alerts.alert_frames import CENTRAL, ORDERS, REGION, config, heal, heal_action

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
BASE = "https://orgscope.example.com"


def state(rule: str | None = "orders-in", **changes: Any) -> AlertState:
    values: dict[str, Any] = dict(
        key=f"rule_disabled/{ORDERS}/{REGION}/central-bus/{rule}", alert_name="rule_disabled",
        severity="critical", state="firing", account_id=ORDERS, account_name="order-processing",
        region=REGION, team="orders", bus="central-bus", rule=rule, service=None,
        summary=f"rule {rule} (bus central-bus, {ORDERS}/{REGION}) is DISABLED",
        details=json.dumps({"reasons": ["rule is DISABLED (inventory of 07:58 UTC)"],
                            "failed": 12.0}),
        started_at=T0, fired_at=T0, resolved_at=None, last_notified_at=T0, updated_at=T0,
        silenced_by=None)
    values.update(changes)
    return AlertState(**values)


def texts(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False)


def test_firing_message_names_severity_what_why_numbers_labels_and_links() -> None:
    payload = alert_message(state(), "firing", BASE)
    assert payload["text"].startswith("[CRITICAL] Rule disabled: rule orders-in")
    header = payload["blocks"][0]
    assert header["type"] == "header" and "CRITICAL · Rule disabled" in header["text"]["text"]
    body = texts(payload)
    for expected in ("*What:*", "*Why:*", "rule is DISABLED (inventory of 07:58 UTC)",
                     "failed 12", f"`{ORDERS}` order-processing", REGION, "*Team*\\norders",
                     "*Bus*\\ncentral-bus", "*Rule*\\norders-in"):
        assert expected in body, expected
    buttons = payload["blocks"][-1]["elements"]
    assert buttons[0]["url"] == (f"{BASE}/?account={ORDERS}&region={REGION}&bus=central-bus"
                                 "&rule=orders-in")
    assert buttons[1]["url"] == (f"{BASE}/alerts?alert=rule_disabled%2F{ORDERS}%2F{REGION}"
                                 "%2Fcentral-bus%2Forders-in")


def test_resolved_repeat_and_page_messages() -> None:
    resolved = alert_message(state(state="resolved", resolved_at=T0 + timedelta(minutes=42)),
                             "resolved", BASE)
    assert resolved["text"] == (f"[RESOLVED] Rule disabled: rule orders-in (bus central-bus, "
                                f"{ORDERS}/{REGION})")
    assert "*Firing for* 42m" in texts(resolved)
    assert "(still firing)" in alert_message(state(), "repeat", BASE)["blocks"][0]["text"][
        "text"]
    page = alert_message(state(alert_name="heal_maintenance", key="heal_maintenance",
                               account_id=None, account_name=None, region=None, team=None,
                               bus=None, rule=None, summary="auto-heal stopped: maintenance"),
                         "page", BASE)
    assert page["text"].startswith("<!channel> [CRITICAL]")
    assert "PAGE" in page["blocks"][0]["text"]["text"]
    assert page["blocks"][-1]["elements"][0]["url"] == f"{BASE}/alerts?alert=heal_maintenance"


def test_links_per_kind_of_alert() -> None:
    service = state(alert_name="service_errors", key=f"service_errors/{ORDERS}/orders-api",
                    rule=None, bus=None, service="orders-api")
    assert dashboard_link(service, BASE) == (
        "Traces", f"{BASE}/traces?service=orders-api&account={ORDERS}")
    cost = state(alert_name="cost_forecast", key="cost_forecast/orders", rule=None, bus=None,
                 account_id=None)
    assert dashboard_link(cost, BASE) == ("Cost", f"{BASE}/cost?team=orders")


def test_long_text_is_clipped_to_slacks_limits() -> None:
    payload = alert_message(state(summary="x" * 5000), "firing", BASE)
    assert all(len(b["text"]["text"]) <= 3000 for b in payload["blocks"]
               if b["type"] == "section" and "text" in b)
    assert len(payload["blocks"][0]["text"]["text"]) <= 150


def test_group_message_lists_alerts_and_counts_the_rest() -> None:
    alerts = [state(f"rule-{i:02d}") for i in range(14)]
    payload = group_message(alerts, "firing", BASE, max_lines=10)
    assert payload["text"] == "[CRITICAL] 14 alerts in order-processing (777777777777)"
    body = texts(payload)
    assert "rule-09" in body and "rule-10" not in body and "…and 4 more" in body
    assert f"{BASE}/alerts?account={ORDERS}" in body


def notice(alert: AlertState, kind: str = "firing") -> Notice:
    return Notice(kind, alert, None)


def test_grouping_by_account_channel_and_kind_with_repeatable_ids() -> None:
    cfg = config(group_threshold=3)
    orders = [notice(state(f"r{i}")) for i in range(3)]
    payments = [notice(state("pay", account_id="999999999999", team="payments",
                             key="rule_disabled/999999999999/us-east-1/central-bus/pay"))]
    resolved = [notice(state("old", key="k-old", state="resolved"), "resolved")]
    messages = alert_messages([*orders, *payments, *resolved], cfg, T0)
    assert [(m.kind, m.channel, m.id[:4]) for m in messages] == [
        ("firing", "ORGSCOPE_SLACK_WEBHOOK", "grp-"),
        ("firing", "ORGSCOPE_SLACK_WEBHOOK_PAYMENTS", "msg-"),
        ("resolved", "ORGSCOPE_SLACK_WEBHOOK", "msg-")]
    again = alert_messages([*orders, *payments, *resolved], cfg, T0 + timedelta(minutes=1))
    assert [m.id for m in again] == [m.id for m in messages]
    two = alert_messages(orders[:2], cfg, T0)
    assert [m.id[:4] for m in two] == ["msg-", "msg-"]  # below the threshold


def test_heal_notices_route_by_team_and_skip_skips() -> None:
    rows = heal(heal_action("enable", "enabled", "was ENABLED", heal_id="h1"),
                heal_action("enable", "failed", "AccessDenied", heal_id="h2"),
                heal_action("skip", "skipped", "opt-out: tagged", heal_id="h3"))
    messages = heal_messages(rows, config(), T0)
    assert [m.kind for m in messages] == ["heal", "heal"]
    assert messages[0].payload["text"].startswith(":adhesive_bandage: Auto-heal re-enabled")
    assert messages[1].payload["text"].startswith(":warning: Auto-heal FAILED")
    assert messages[0].alert_key == f"rule_disabled/{CENTRAL}/{REGION}/central-bus/order-placed"
    assert [m.id for m in heal_messages(rows, config(), T0)] == [m.id for m in messages]


def test_routes_first_match_then_default() -> None:
    slack = SlackConfig(routes=[
        SlackRoute(team="payments", severity="critical", webhook_env="PAY_CRIT"),
        SlackRoute(team="*", severity="info", webhook_secret="orgscope/slack/info")],
        default_webhook_env="DEFAULT_HOOK")
    assert route(slack, "payments", "critical") == "PAY_CRIT"
    assert route(slack, "payments", "warning") == "DEFAULT_HOOK"
    assert route(slack, "orders", "info") == "secret:orgscope/slack/info"
    assert route(SlackConfig(default_webhook_secret="s1"), None, "warning") == "secret:s1"
    with pytest.raises(ValueError, match="exactly one of webhook_env"):
        SlackRoute(team="x")


def test_webhooks_from_env_and_secret_cache_with_ttl() -> None:
    now = [0.0]
    reads: list[str] = []

    def fetch(secret_id: str) -> str:
        reads.append(secret_id)
        return json.dumps({"url": f"https://hooks.slack.com/services/{secret_id}"})

    cache = SecretCache(fetch, ttl_s=3600, clock=lambda: now[0])
    hooks = Webhooks(cache, {"HOOK": "https://hooks.slack.com/services/T/B/x", "BAD": "nope"})
    assert hooks.url("HOOK") == "https://hooks.slack.com/services/T/B/x"
    assert hooks.url("secret:a") == "https://hooks.slack.com/services/a"
    now[0] = 3599
    hooks.url("secret:a")
    assert reads == ["a"]
    now[0] = 3601
    hooks.url("secret:a")
    assert reads == ["a", "a"]  # read again after the TTL
    with pytest.raises(WebhookError, match=r"\$UNSET is not set") as unset:
        hooks.url("UNSET")
    assert unset.value.permanent
    with pytest.raises(WebhookError, match="not an http"):
        hooks.url("BAD")


def test_secrets_are_read_through_the_session_factory_in_the_configured_account() -> None:
    calls: list[tuple[str, ...]] = []

    class Client:
        def get_secret_value(self, SecretId: str) -> dict[str, str]:
            return {"SecretString": "https://hooks.slack.com/services/z"}

    class Factory:
        def base_client(self, service: str, region: str) -> Client:
            calls.append(("base", service, region))
            return Client()

        def client(self, account: str, service: str, region: str) -> Client:
            calls.append((account, service, region))
            return Client()

    cfg = config()
    fetch = secrets_fetcher(cfg, Factory())  # type: ignore[arg-type]
    assert fetch("x") == "https://hooks.slack.com/services/z"
    other = cfg.model_copy(update={"slack": cfg.slack.model_copy(update={
        "secrets_account_id": "121212121212", "secrets_region": "eu-west-1"})})
    secrets_fetcher(other, Factory())("x")  # type: ignore[arg-type]
    assert calls == [("base", "secretsmanager", "us-east-1"),
                     ("121212121212", "secretsmanager", "eu-west-1")]


SERVICE = "<!channel> <https://evil.example/login|Open runbook>"


def hostile_state(**changes: Any) -> AlertState:
    """An alert whose every label comes from a monitored account's hostile text."""
    values: dict[str, Any] = dict(
        alert_name="service_errors", key=f"service_errors/{ORDERS}/{SERVICE}", rule=None,
        bus=None, service=SERVICE, account_name="@channel *pay* <@U123> ~now~",
        team="`ops` @here", region="us-east-1\u202e",
        summary=f"service {SERVICE} ({ORDERS}): 40% of 10 requests failed",
        details=json.dumps({"reasons": [f"{SERVICE} failed", "_italic_ https://evil.example"],
                            "failed": "<!here>"}))
    values.update(changes)
    return state(**values)


@pytest.mark.parametrize("kind", ["firing", "repeat", "page", "resolved"])
def test_hostile_labels_never_page_link_or_format(kind: str) -> None:
    payload = alert_message(hostile_state(), kind, BASE)
    assert slack_problems(payload, BASE) == []
    assert "&lt;!channel&gt; &lt;https" in texts(payload)  # shown, as text
    if kind == "page":
        assert payload["text"].startswith("<!channel> ")  # the page's own mention stays


def test_hostile_labels_in_grouped_messages_and_heal_notices() -> None:
    group = group_message([hostile_state(), hostile_state(key="k2")], "firing", BASE, 10)
    assert slack_problems(group, BASE) == []
    row = heal_action("enable", "failed", f"AccessDenied for {SERVICE}")
    row.update(rule=SERVICE, account_name="@everyone", bus="*bus*", disabled_by="<@U1>",
               team="<!here>")
    assert slack_problems(heal_message(row, BASE, "k"), BASE) == []


def test_a_schema_breaking_change_from_hostile_names_never_pages_links_or_formats() -> None:
    """The rule, source, detail-type and field names of a schema_breaking_change all come from
    monitored accounts (a producer names its fields)."""
    field = "<https://evil.example|runbook>"
    versions = [{f"detail.{field}": "string"}, {f"detail.ctx.{field}": "string"}]
    schemas = pd.DataFrame([{"account_id": ORDERS, "region": REGION, "source": "@here",
                             "detail_type": "<!channel>", "version": str(n),
                             "version_created": datetime(2028, 2, 29, tzinfo=UTC),
                             "fields": fields_json(f)} for n, f in enumerate(versions, 1)])
    rules = pd.DataFrame([{"account_id": ORDERS, "region": REGION, "bus": "*bus*",
                           "rule": SERVICE, "event_pattern": json.dumps(
                               {"source": ["@here"], "detail-type": ["<!channel>"],
                                "detail": {field: ["x"]}})}])
    found = SCHEMA_BREAKING_CHANGE.evaluate(
        breaking_changes(rules, schemas, {"@here": [ORDERS]}),
        RuleContext(AlertRuleConfig(), config(), AlertInputs(
            rule_health=None, runs=None, latency={}, anomalies=None, forecast=None,
            heal_actions=None, accounts={}), datetime(2028, 2, 29, tzinfo=UTC), "2028-02"))
    (condition,) = found.conditions
    alert = state(alert_name=condition.alert_name, key=condition.key, rule=SERVICE,
                  bus="*bus*", summary=condition.summary,
                  details=json.dumps(condition.details, default=str))
    for kind in ("firing", "resolved"):
        payload = alert_message(alert, kind, BASE)
        assert slack_problems(payload, BASE) == []
        assert "&lt;https://evil.example|runbook&gt;" in texts(payload).replace("\u2060", "")


def test_a_schema_breaking_change_opens_the_schemas_page_on_its_rule_and_detail_type() -> None:
    """The rule's identity and the detail-type whose newest version breaks it, from the alert
    the rule itself raised; details without a break still open the page on the rule."""
    versions = [{"detail.purpose": "string"}, {"detail.context.purpose": "string"}]
    schemas = pd.DataFrame([{"account_id": CENTRAL, "region": REGION,
                             "source": "quickgrocer.payment-service",
                             "detail_type": "Payment Processed", "version": str(n),
                             "version_created": T0 - timedelta(hours=3 - n),
                             "fields": fields_json(f)} for n, f in enumerate(versions, 1)])
    rules = pd.DataFrame([{"account_id": ORDERS, "region": REGION, "bus": "central-bus",
                           "rule": "payments to orders", "event_pattern": json.dumps(
                               {"source": ["quickgrocer.payment-service"],
                                "detail-type": ["Payment Processed"],
                                "detail": {"purpose": ["order"]}})}])
    found = SCHEMA_BREAKING_CHANGE.evaluate(
        breaking_changes(rules, schemas, {}),
        RuleContext(AlertRuleConfig(), config(), AlertInputs(
            rule_health=None, runs=None, latency={}, anomalies=None, forecast=None,
            heal_actions=None, accounts={}), T0, f"{T0:%Y-%m}"))
    (condition,) = found.conditions
    alert = state(alert_name=condition.alert_name, key=condition.key,
                  rule="payments to orders", summary=condition.summary,
                  details=json.dumps(condition.details, default=str))
    rule_query = f"account={ORDERS}&region={REGION}&bus=central-bus&rule=payments+to+orders"
    assert dashboard_link(alert, BASE) == (
        "Schemas", f"{BASE}/schemas?{rule_query}&detail_type=Payment+Processed")
    buttons = alert_message(alert, "firing", BASE)["blocks"][-1]["elements"]
    assert [b["text"]["text"] for b in buttons] == ["Open Schemas", "Alert"]
    assert buttons[0]["url"] == dashboard_link(alert, BASE)[1]
    for details in ("", "{}", json.dumps({"breaks": [{"field": "detail.purpose"}]}), "[1]"):
        assert dashboard_link(replace(alert, details=details), BASE) == (
            "Schemas", f"{BASE}/schemas?{rule_query}")
