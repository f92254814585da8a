"""Alert rules: verdicts, runs, spans, cost and heal rows -> conditions with labels."""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd

from alerts.rule import AccountInfo, AlertInputs
from alerts.rules import evaluate
from orgscope.schema_drift import breaking_changes, fields_json
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
    runs,
    verdict,
)

ACCOUNTS = {ORDERS: AccountInfo("order-processing", "orders"),
            PAYMENTS: AccountInfo("payment-service", "payments"),
            CENTRAL: AccountInfo("event-bus", "platform")}


def inputs(**frames: object) -> AlertInputs:
    base: dict[str, object] = {
        "rule_health": health(), "runs": pd.DataFrame(), "latency": {
            "service_errors": pd.DataFrame(), "service_latency": pd.DataFrame()},
        "anomalies": pd.DataFrame(), "forecast": pd.DataFrame(), "heal_actions": heal(),
        "accounts": ACCOUNTS}
    base.update(frames)
    return AlertInputs(**base)  # type: ignore[arg-type]


def by_name(found: AlertInputs) -> dict[str, list[str]]:
    result = evaluate(found, config(), NOW, "2026-11")
    out: dict[str, list[str]] = {}
    for condition in result.conditions:
        out.setdefault(condition.alert_name, []).append(condition.key)
    return out


def test_rule_alerts_from_verdicts_with_labels_and_numbers() -> None:
    rows = health(
        verdict("orders-in", "DISABLED"),
        verdict("order-placed", "FAILING", metrics={"FailedInvocations": 12, "Invocations": 40},
                dlq=[{"queue_arn": f"arn:aws:sqs:{REGION}:{ORDERS}:orders-dlq",
                      "growth": 3, "messages": 7}]),
        verdict("payment-processed", "SILENT", account_id=PAYMENTS,
                matched={"count": 0, "expected": 212.0, "method": "hour_of_week"}),
        verdict("quiet", "DEGRADED", metrics={"ThrottledRules": 4}),
        verdict("fine", "OK", metrics={"Invocations": 100}),
    )
    result = evaluate(inputs(rule_health=rows), config(), NOW, "2026-11")
    found = {c.key: c for c in result.conditions}
    assert sorted(c.alert_name for c in result.conditions) == [
        "dlq_messages", "failed_invocations", "rule_disabled", "rule_silent", "throttled"]
    disabled = found[f"rule_disabled/{ORDERS}/{REGION}/central-bus/orders-in"]
    assert disabled.severity == "critical" and disabled.for_ == timedelta(0)
    assert {k: disabled.labels[k] for k in ("account_id", "account_name", "region", "team",
                                            "bus", "rule")} == {
        "account_id": ORDERS, "account_name": "order-processing", "region": REGION,
        "team": "orders", "bus": "central-bus", "rule": "orders-in"}
    failed = found[f"failed_invocations/{ORDERS}/{REGION}/central-bus/order-placed"]
    assert "12 failed invocations of 40" in failed.summary
    dlq = found[f"dlq_messages/{ORDERS}/{REGION}/central-bus/order-placed"]
    assert "orders-dlq holds 7 messages (+3" in dlq.summary
    silent = found[f"rule_silent/{PAYMENTS}/{REGION}/central-bus/payment-processed"]
    assert silent.labels["team"] == "payments" and "usually 212" in silent.summary
    assert silent.for_ == timedelta(minutes=10)


def test_stale_rules_hold_their_alerts_and_disabled_rules_in_config_are_skipped() -> None:
    key = f"{{}}/{ORDERS}/{REGION}/central-bus/orders-in"
    unreachable = health(verdict("orders-in", "STALE", fired=["STALE", "DISABLED"],
                                 stale={"account": {"reachable": False}}))
    result = evaluate(inputs(rule_health=unreachable), config(), NOW, "2026-11")
    assert result.conditions == []
    assert result.is_held(key.format("rule_disabled"))
    assert result.is_held(key.format("failed_invocations"))
    # metrics not read, inventory fresh: DISABLED is still known, the rest is held
    no_metrics = health(verdict("orders-in", "STALE", fired=["STALE", "DISABLED"],
                                stale={"metrics": "none in window"}))
    result = evaluate(inputs(rule_health=no_metrics), config(), NOW, "2026-11")
    assert [c.key for c in result.conditions] == [key.format("rule_disabled")]
    assert result.is_held(key.format("rule_silent"))
    off = config()
    rules = off.alerts.rules.model_copy(update={
        "rule_disabled": off.alerts.rules.rule_disabled.model_copy(update={"enabled": False})})
    off = off.model_copy(update={"alerts": off.alerts.model_copy(update={"rules": rules})})
    assert evaluate(inputs(rule_health=health(verdict("x", "DISABLED"))), off, NOW,
                    "2026-11").conditions == []


def test_a_rule_created_disabled_raises_no_alert_one_disabled_later_does() -> None:
    rows = health(verdict("created-off", "DISABLED"), verdict("orders-in", "DISABLED"))
    history = pd.DataFrame([
        {"account_id": ORDERS, "region": REGION, "bus": "central-bus", "rule": "created-off",
         "first_seen_at": NOW - timedelta(hours=1), "last_enabled_at": None,
         "disabled_since": NOW - timedelta(hours=1)},
        {"account_id": ORDERS, "region": REGION, "bus": "central-bus", "rule": "orders-in",
         "first_seen_at": NOW - timedelta(hours=1),
         "last_enabled_at": NOW - timedelta(minutes=10),
         "disabled_since": NOW - timedelta(minutes=5)}])
    [found] = evaluate(inputs(rule_health=rows, disabled=history), config(), NOW,
                       "2026-11").conditions
    assert found.labels["rule"] == "orders-in"
    assert "is DISABLED since 2026-11-26 07:55 UTC (ENABLED at 2026-11-26 07:50 UTC)" in \
        found.summary


def test_an_unreadable_inventory_history_holds_rule_disabled() -> None:
    """Without the history nothing tells a rule created disabled from one disabled later:
    a store error on rules_history must not fire rule_disabled for the former (it would
    resolve at the next evaluation: a flap), nor resolve an open one."""
    rows = health(verdict("created-off", "DISABLED"))
    result = evaluate(inputs(rule_health=rows, disabled=None), config(), NOW, "2026-11")
    assert result.conditions == []
    assert result.is_held(f"rule_disabled/{ORDERS}/{REGION}/central-bus/created-off")
    assert result.is_held("heal_maintenance")
    # no history stored yet (an empty frame, not a failed read): the rule is reported
    assert len(evaluate(inputs(rule_health=rows), config(), NOW, "2026-11").conditions) == 1


def test_unreadable_inputs_hold_their_alerts() -> None:
    result = evaluate(inputs(rule_health=None, runs=None), config(), NOW, "2026-11")
    assert result.is_held(f"rule_silent/{ORDERS}/{REGION}/b/r")
    assert result.is_held(f"account_unreachable/{ORDERS}")
    assert not result.is_held("cost_anomaly/orders/AWS Lambda")


def test_account_unreachable_after_n_failed_cycles() -> None:
    assert by_name(inputs(runs=runs(ORDERS, ["ok", "error", "error"]))) == {}
    found = evaluate(inputs(runs=runs(ORDERS, ["ok", "error", "error", "error"])), config(),
                     NOW, "2026-11").conditions
    [condition] = found
    assert condition.key == f"account_unreachable/{ORDERS}"
    assert "last 3 collection cycles (unreachable): AccessDenied on AssumeRole" in \
        condition.summary
    assert condition.labels["team"] == "orders" and condition.severity == "critical"
    # a cycle with one region ok is a cycle read
    mixed = pd.concat([runs(ORDERS, ["error"] * 3),
                       runs(ORDERS, ["ok"]).assign(run_id="cycle-002", region="eu-west-1")])
    assert by_name(inputs(runs=mixed)) == {}


def test_service_errors_and_latency_from_percentiles() -> None:
    table = pd.DataFrame([
        {"bucket_start": NOW, "service": "payment-service", "account_id": PAYMENTS,
         "count": 200, "p50_ms": 80.0, "p95_ms": 900.0, "p99_ms": 3500.0, "error_rate": 0.12,
         "region": REGION},
        {"bucket_start": NOW, "service": "orders-api", "account_id": ORDERS, "count": 5,
         "p50_ms": 80.0, "p95_ms": 900.0, "p99_ms": 9000.0, "error_rate": 1.0,
         "region": REGION},
    ])
    result = evaluate(inputs(latency={"service_errors": table, "service_latency": table}),
                      config(), NOW, "2026-11")
    found = {c.key: c for c in result.conditions}
    assert sorted(found) == [f"service_errors/{PAYMENTS}/payment-service",
                             f"service_latency/{PAYMENTS}/payment-service"]  # 5 spans: too few
    errors = found[f"service_errors/{PAYMENTS}/payment-service"]
    assert "12.0% of 200 requests failed" in errors.summary
    assert errors.labels["team"] == "payments" and errors.labels["region"] == REGION
    assert "p99 latency 3,500 ms" in found[f"service_latency/{PAYMENTS}/payment-service"].summary


def test_cost_anomaly_and_forecast_over_budget() -> None:
    anomalies = pd.DataFrame([
        {"date": NOW.date(), "team": "orders", "service": "Amazon EventBridge",
         "usage_type": "USE1-Event-64K-Chunks", "account_id": ORDERS, "amount": 410.0,
         "baseline": 60.0, "excess": 350.0, "z": 9.3, "usage_amount": 1.0,
         "usage_baseline": 0.1},
        {"date": NOW.date() - timedelta(days=1), "team": "orders",
         "service": "Amazon EventBridge", "usage_type": "x", "account_id": ORDERS,
         "amount": 300.0, "baseline": 60.0, "excess": 240.0, "z": 7.0, "usage_amount": 1.0,
         "usage_baseline": 0.1}])
    forecast = pd.DataFrame([
        {"team": "orders", "to_date": 15000.0, "days": 26, "days_in_month": 30,
         "mean_daily": 600.0, "forecast": 17400.0, "low": 17100.0, "high": 17700.0,
         "budget": 17000.0, "status": "over"},
        {"team": "mobile", "to_date": 8000.0, "days": 26, "days_in_month": 30,
         "mean_daily": 300.0, "forecast": 9200.0, "low": 9000.0, "high": 10100.0,
         "budget": 10000.0, "status": "at risk"}])
    result = evaluate(inputs(anomalies=anomalies, forecast=forecast), config(), NOW, "2026-11")
    found = {c.key: c for c in result.conditions}
    assert sorted(found) == ["cost_anomaly/orders/Amazon EventBridge", "cost_forecast/orders"]
    assert "$410.00 on 2026-11-26, usually $60.00" in \
        found["cost_anomaly/orders/Amazon EventBridge"].summary
    assert "forecast $17,400" in found["cost_forecast/orders"].summary


def test_maintenance_skip_pages_while_many_rules_stay_disabled() -> None:
    skip = heal(heal_action("skip", "skipped", "maintenance: 3 of 4 rules disabled", rule=None,
                            at=NOW - timedelta(minutes=20)))
    many = health(*(verdict(f"r{i}", "DISABLED") for i in range(3)), verdict("ok"))
    [page] = evaluate(inputs(heal_actions=skip, rule_health=many), config(), NOW,
                      "2026-11").conditions[-1:]
    assert page.key == "heal_maintenance" and page.severity == "critical"
    assert page.summary == "maintenance: 3 of 4 rules disabled"
    few = health(verdict("r0", "DISABLED"), *(verdict(f"ok{i}") for i in range(3)))
    names = by_name(inputs(heal_actions=skip, rule_health=few))
    assert "heal_maintenance" not in names  # the share fell back: resolved


def test_a_rules_own_team_tag_labels_its_alerts_instead_of_the_accounts_team() -> None:
    rows = health(verdict("ops-audit", "DISABLED", account_id=CENTRAL),
                  verdict("plain", "DISABLED", account_id=CENTRAL))
    owners = {(CENTRAL, REGION, "central-bus", "ops-audit"): "ops"}
    result = evaluate(inputs(rule_health=rows, rule_teams=owners), config(), NOW, "2026-11")
    teams = {c.labels["rule"]: c.labels["team"] for c in result.conditions}
    assert teams == {"ops-audit": "ops", "plain": "platform"}


def test_account_unreachable_says_whether_the_role_is_missing_or_refuses_the_inventory() -> None:
    refused = ("AccessDeniedException on ListEventBuses: User: arn:aws:sts::1:assumed-role/R "
               "is not authorized to perform: events:ListEventBuses")
    found = evaluate(inputs(runs=runs(ORDERS, ["error"] * 3, error=refused)), config(), NOW,
                     "2026-11").conditions
    [condition] = found
    assert "(refused): the read role was assumed but may not events:ListEventBuses" in \
        condition.summary
    assert condition.details["access"] == "refused"
    skipped = "account unreachable: cannot assume R: AccessDenied on AssumeRole"
    [condition] = evaluate(inputs(runs=runs(ORDERS, ["error"] * 3, error=skipped)), config(),
                           NOW, "2026-11").conditions
    assert condition.summary.endswith("(unreachable): cannot assume R: AccessDenied on AssumeRole")


def test_schema_breaking_change_names_rule_field_versions_and_producer() -> None:
    versions = [{"detail.purpose": "string", "detail.amount": "number"},
                {"detail.purpose": "string", "detail.amount": "number",
                 "detail.currency": "string"},
                {"detail.context.purpose": "string", "detail.amount": "string",
                 "detail.currency": "string"}]
    schemas = pd.DataFrame([{"account_id": CENTRAL, "region": REGION,
                             "source": "quickgrocer.payment-service",
                             "detail_type": "Payment Processed", "version": str(n),
                             "version_created": NOW - timedelta(minutes=10 - n),
                             "fields": fields_json(f)} for n, f in enumerate(versions, 1)])
    pattern = {"source": ["quickgrocer.payment-service"], "detail-type": ["Payment Processed"],
               "detail": {"purpose": ["order"], "amount": [{"numeric": [">", 0]}]}}
    rules = pd.DataFrame([{"account_id": ORDERS, "region": REGION, "bus": "default",
                           "rule": "payment-events-to-order-processing <!channel>",
                           "event_pattern": json.dumps(pattern)}])
    breaks = breaking_changes(rules, schemas, {"quickgrocer.payment-service": [PAYMENTS]})
    result = evaluate(inputs(schema_breaks=breaks), config(), NOW, "2026-11")
    (found,) = [c for c in result.conditions if c.alert_name == "schema_breaking_change"]
    assert found.key == (f"schema_breaking_change/{ORDERS}/{REGION}/default/"
                         "payment-events-to-order-processing <!channel>")
    assert found.labels["team"] == "orders"
    assert "version 3 moved detail.purpose to detail.context.purpose (version 2 had it" \
        in found.summary
    assert "version 3 retyped detail.amount from number to string" in found.summary
    assert f"producer account payment-service ({PAYMENTS})" in found.summary
    assert [b["field"] for b in found.details["breaks"]] == ["detail.amount", "detail.purpose"]
    held = evaluate(inputs(schema_breaks=None), config(), NOW, "2026-11")
    assert held.is_held(f"schema_breaking_change/{ORDERS}/{REGION}/default/x")


def test_rule_disabled_names_who_disabled_it_when_a_change_event_says() -> None:
    """The principal ARN is the monitored account's text: the summary carries it as written,
    and every sink makes summaries literal (tests/alerts/test_slack.py::
    test_hostile_labels_never_page_link_or_format for Slack's)."""
    who = "arn:aws:sts::111111111111:assumed-role/Admin/<!channel> *jo*"
    rows = health(verdict("orders-in", "DISABLED"))
    history = pd.DataFrame([
        {"account_id": ORDERS, "region": REGION, "bus": "central-bus", "rule": "orders-in",
         "first_seen_at": NOW - timedelta(hours=1),
         "last_enabled_at": NOW - timedelta(minutes=10),
         "disabled_since": NOW - timedelta(minutes=5), "disabled_by": who,
         "disabled_at": NOW - timedelta(minutes=6)}])
    [found] = evaluate(inputs(rule_health=rows, disabled=history), config(), NOW,
                       "2026-11").conditions
    assert (f"is DISABLED, disabled by {who} at 2026-11-26 07:54 UTC (ENABLED at "
            "2026-11-26 07:50 UTC)") in found.summary
    assert found.details["disabled_by"] == who
