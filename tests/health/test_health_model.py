"""The health model's verdicts and reasons, on exact synthetic frames."""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import pytest
from health_frames import (
    CENTRAL,
    KEY,
    NAMES,
    NOW,
    ORDERS,
    OTHER,
    PERIOD,
    REGION,
    RULE,
    WEB,
    history,
    judge,
    producer,
    replace,
    series,
    steady,
    window_start,
)

from orgscope.config import HealthConfig
from orgscope.datasets import RULE_HEALTH, VERDICTS
from orgscope.health.model import HourlyRules, evaluate
from testkit import synthetic as sy

DLQ = RULE.dlq_arns[0]


def details(result: pd.DataFrame, rule: str) -> dict:
    return json.loads(result.loc[rule, "details"])


def test_steady_traffic_is_ok_with_rule_health_columns() -> None:
    result = judge(history())
    assert sorted(result.reset_index().columns) == sorted(RULE_HEALTH.columns)
    assert set(result["verdict"]) == {"OK"}
    assert list(result.loc[RULE.rule, "reasons"]) == []
    RULE_HEALTH.to_table(result.reset_index())  # the contract holds
    info = details(result, RULE.rule)
    assert info["matched"] == {"metric": "MatchedEvents", "count": 60.0, "expected": 60.0,
                               "method": "hour_of_week", "samples": 4,
                               "bucket": "Tue 14:00 UTC"}


def test_disabled_rule_is_disabled_and_not_called_silent() -> None:
    disabled = sy.SynthRule(**{**RULE.__dict__, "state": "DISABLED"})
    metrics = replace(history(), KEY, "MatchedEvents", window_start(), NOW, 0)
    result = judge(metrics, rules=[disabled, OTHER])
    assert result.loc[RULE.rule, "verdict"] == "DISABLED"
    assert list(result.loc[RULE.rule, "reasons"]) == ["rule is DISABLED (inventory of 14:08 UTC)"]


def test_silent_when_matching_collapses_against_the_hour_of_week() -> None:
    metrics = replace(history(), KEY, "MatchedEvents", window_start(), NOW, 0)
    result = judge(metrics)
    assert result.loc[RULE.rule, "verdict"] == "SILENT"
    assert list(result.loc[RULE.rule, "reasons"]) == [
        "matched 0 events in the last 15m; usually 60 at this hour (Tue 14:00 UTC)"]
    assert result.loc[OTHER.rule, "verdict"] == "OK"


def test_slightly_low_matching_is_not_silent() -> None:
    metrics = replace(history(), KEY, "MatchedEvents", window_start(), NOW, 8)  # 24 of 60
    assert judge(metrics).loc[RULE.rule, "verdict"] == "OK"


def test_quiet_rule_is_not_silent_by_chance() -> None:
    # usually 3 events per 15m, below min_expected_events = 5: zero alone is not news
    metrics = pd.concat([steady(KEY, NOW - timedelta(days=30), NOW, matched=1.0),
                         producer(WEB, NOW - timedelta(days=30), NOW)])
    metrics = replace(metrics, KEY, "MatchedEvents", window_start(), NOW, 0)
    result = judge(metrics, rules=[RULE])
    assert result.loc[RULE.rule, "verdict"] == "OK"


def test_quiet_rule_is_silent_when_its_producer_lost_its_events() -> None:
    # the same quiet rule, but its producer's PutEvents all failed: the silence is explained
    metrics = pd.concat([steady(KEY, NOW - timedelta(days=30), NOW, matched=1.0),
                         producer(WEB, NOW - timedelta(days=30), NOW)])
    metrics = replace(metrics, KEY, "MatchedEvents", window_start(), NOW, 0)
    metrics = replace(metrics, (WEB, REGION, "", ""), "PutEventsFailedEntriesCount",
                      window_start(), NOW, 100)
    result = judge(metrics, rules=[RULE])
    assert result.loc[RULE.rule, "verdict"] == "SILENT"
    assert details(result, RULE.rule)["producers"][0]["failed_entries"] == 300.0


def test_silent_names_the_producer_whose_put_events_fail() -> None:
    metrics = replace(history(), KEY, "MatchedEvents", window_start(), NOW, 0)
    metrics = replace(metrics, (WEB, REGION, "", ""), "PutEventsFailedEntriesCount",
                      window_start(), NOW, 100)
    reasons = list(judge(metrics).loc[RULE.rule, "reasons"])
    assert reasons[0].startswith("matched 0 events in the last 15m; usually 60")
    assert reasons[1] == ("producer 111111111111 (customer-web) of source "
                          "quickgrocer.customer-web: 300 of 300 PutEvents entries failed in "
                          "the last 15m")


def test_producer_losing_its_put_events_makes_a_partly_matching_rule_silent() -> None:
    # matching halved (not "far below"), but the producer lost every entry: SILENT
    metrics = replace(history(), KEY, "MatchedEvents", window_start(), NOW, 10)
    metrics = replace(metrics, (WEB, REGION, "", ""), "PutEventsFailedEntriesCount",
                      window_start(), NOW, 100)
    result = judge(metrics)
    assert result.loc[RULE.rule, "verdict"] == "SILENT"


def test_silent_names_a_producer_removed_from_the_bus_policy() -> None:
    metrics = replace(history(), KEY, "MatchedEvents", window_start(), NOW, 0)
    buses = sy.buses([
        (NOW - timedelta(hours=2), CENTRAL, REGION, "central-bus", [WEB, ORDERS]),
        (NOW - timedelta(minutes=2), CENTRAL, REGION, "central-bus", [ORDERS]),
    ])
    result = judge(metrics, buses=buses)
    assert result.loc[RULE.rule, "verdict"] == "SILENT"
    assert ("producer 111111111111 (customer-web) of source quickgrocer.customer-web is no "
            "longer allowed to PutEvents on bus central-bus (121212121212 (event-bus)): its "
            "policy listed it at 12:10 UTC, not at 14:08 UTC") in result.loc[RULE.rule, "reasons"]
    assert details(result, RULE.rule)["producers"][0]["removed_from"] == [
        f"{CENTRAL}/central-bus"]


def test_failing_on_failed_invocations() -> None:
    metrics = replace(history(), KEY, "FailedInvocations", window_start(), NOW, 2)
    result = judge(metrics)
    assert result.loc[RULE.rule, "verdict"] == "FAILING"
    assert list(result.loc[RULE.rule, "reasons"]) == [
        "6 failed invocations in the last 15m (of 60 invocations; threshold 1)"]


def test_failing_when_the_target_dlq_grows() -> None:
    dlq = sy.dlq_readings([(NOW - timedelta(minutes=20), DLQ, 3),
                           (NOW - timedelta(minutes=10), DLQ, 5),
                           (NOW - timedelta(minutes=1), DLQ, 15)])
    result = judge(history(), dlq=dlq)
    assert result.loc[RULE.rule, "verdict"] == "FAILING"
    assert list(result.loc[RULE.rule, "reasons"]) == [
        "dead-letter queue orders-dlq grew by 12 messages in the last 15m (now 15; "
        "threshold 1)"]


def test_a_full_but_steady_dlq_is_not_failing() -> None:
    dlq = sy.dlq_readings([(NOW - timedelta(minutes=20), DLQ, 40),
                           (NOW - timedelta(minutes=1), DLQ, 40)])
    assert judge(history(), dlq=dlq).loc[RULE.rule, "verdict"] == "OK"


def test_degraded_on_throttling_retries_and_latency() -> None:
    start = window_start()
    metrics = replace(history(), KEY, "ThrottledRules", start, NOW, 1)
    metrics = replace(metrics, KEY, "RetryInvocationAttempts", start, NOW, 5)
    metrics = replace(metrics, KEY, "IngestionToInvocationStartLatency", start, NOW, 400)
    result = judge(metrics)
    assert result.loc[RULE.rule, "verdict"] == "DEGRADED"
    assert list(result.loc[RULE.rule, "reasons"]) == [
        "throttled 3 times in the last 15m (threshold 1)",
        "25% of invocation attempts were retries (15 of 60) in the last 15m (threshold 20%)",
        "ingestion-to-invocation latency 400 ms in the last 15m; usually 90 ms at this hour "
        "(Tue 14:00 UTC) (threshold 2x)",
    ]


def test_precedence_keeps_every_reason_most_severe_first() -> None:
    start = window_start()
    metrics = replace(history(), KEY, "MatchedEvents", start, NOW, 0)
    metrics = replace(metrics, KEY, "ThrottledRules", start, NOW, 2)
    metrics = replace(metrics, KEY, "FailedInvocations", start, NOW, 1)
    result = judge(metrics)
    assert result.loc[RULE.rule, "verdict"] == "FAILING"
    reasons = list(result.loc[RULE.rule, "reasons"])
    assert [r.split(" ")[1] for r in reasons] == ["failed", "0", "6"]
    assert details(result, RULE.rule)["fired"] == ["FAILING", "SILENT", "DEGRADED"]


def test_stale_beats_disabled() -> None:
    disabled = sy.SynthRule(**{**RULE.__dict__, "state": "DISABLED"})
    accounts = sy.accounts(NAMES, NOW, unreachable={CENTRAL: "AccessDenied: no role"})
    result = judge(history(), rules=[disabled], accounts=accounts)
    assert result.loc[RULE.rule, "verdict"] == "STALE"
    assert details(result, RULE.rule)["fired"] == ["STALE", "DISABLED"]


def test_verdict_order_is_the_documented_precedence() -> None:
    assert VERDICTS == ("OK", "DEGRADED", "SILENT", "FAILING", "DISABLED", "STALE")


def test_unreachable_account_is_stale_with_its_reason() -> None:
    accounts = sy.accounts(NAMES, NOW - timedelta(minutes=2), unreachable={
        ORDERS: "AccessDenied: User is not authorized to perform: sts:AssumeRole"})
    metrics = history()
    metrics = metrics[~((metrics["account_id"] == ORDERS)
                        & (pd.to_datetime(metrics["ts"], utc=True) >= window_start(60)))]
    runs = pd.concat([sy.runs([(CENTRAL, REGION)], NOW - timedelta(minutes=3)),
                      sy.runs([(ORDERS, REGION)], NOW - timedelta(minutes=3), status="error",
                              error="account unreachable: AccessDenied")])
    result = judge(metrics, accounts=accounts, runs=runs)
    assert result.loc[OTHER.rule, "verdict"] == "STALE"
    assert list(result.loc[OTHER.rule, "reasons"]) == [
        "account 777777777777 (order-processing) could not be read at 14:08 UTC: "
        "AccessDenied: User is not authorized to perform: sts:AssumeRole"]
    assert result.loc[RULE.rule, "verdict"] == "OK"


def test_stale_when_metrics_runs_keep_failing() -> None:
    runs = pd.concat([
        sy.runs([(CENTRAL, REGION)], NOW - timedelta(minutes=45)),
        sy.runs([(CENTRAL, REGION)], NOW - timedelta(minutes=5), status="error",
                error="ThrottlingException: Rate exceeded"),
        sy.runs([(ORDERS, REGION)], NOW - timedelta(minutes=3)),
    ])
    result = judge(history(), runs=runs)
    assert result.loc[RULE.rule, "verdict"] == "STALE"
    assert list(result.loc[RULE.rule, "reasons"]) == [
        "no successful metrics read of 121212121212/us-east-1 for 45m (last at 13:25 UTC; "
        "stale after 20m); the last run at 14:05 UTC failed: ThrottlingException: Rate "
        "exceeded"]
    assert result.loc[OTHER.rule, "verdict"] == "OK"


def test_stale_when_no_metrics_run_ever_succeeded() -> None:
    runs = sy.runs([(ORDERS, REGION)], NOW - timedelta(minutes=3))
    result = judge(history(), runs=runs)
    assert list(result.loc[RULE.rule, "reasons"]) == [
        "no successful metrics read of 121212121212/us-east-1 yet"]


def test_stale_when_the_rule_has_no_metrics_stored() -> None:
    new_rule = sy.SynthRule(CENTRAL, "brand-new", bus="central-bus")
    result = judge(history(), rules=[RULE, new_rule])
    assert result.loc["brand-new", "verdict"] == "STALE"
    assert list(result.loc["brand-new", "reasons"]) == [
        "no metrics for this rule in the last 15m (none are stored for it; the metrics "
        "collector has not read it)"]


def test_a_rule_read_hourly_is_not_stale_between_full_reads() -> None:
    forwarder = sy.SynthRule(CENTRAL, "orgscope-change-forwarder")
    read_at = NOW - timedelta(minutes=40)  # the last full read, 40 minutes ago
    metrics = pd.concat([history(), steady(forwarder.key, NOW - timedelta(hours=3), read_at,
                                           matched=0.0)], ignore_index=True)
    hourly = HourlyRules(("orgscope-change-*",), timedelta(hours=1, minutes=20))
    result = judge(metrics, rules=[RULE, forwarder], hourly=hourly)
    assert result.loc[forwarder.rule, "verdict"] == "OK", result.loc[forwarder.rule, "reasons"]
    stale = json.loads(result.loc[forwarder.rule, "details"])["stale"]
    assert stale["metrics"].startswith("read by the full tier only")
    # without the setting, or when even the full read is overdue, it is stale as before
    assert judge(metrics, rules=[RULE, forwarder]).loc[forwarder.rule, "verdict"] == "STALE"
    overdue = HourlyRules(("orgscope-change-*",), timedelta(minutes=30))
    assert judge(metrics, rules=[RULE, forwarder], hourly=overdue).loc[
        forwarder.rule, "verdict"] == "STALE"


def test_window_follows_the_newest_stored_period() -> None:
    # the collector is one period behind: the missing last period is not silence
    metrics = history()
    metrics = metrics[pd.to_datetime(metrics["ts"], utc=True) < NOW - timedelta(minutes=5)]
    result = judge(metrics)
    assert set(result["verdict"]) == {"OK"}
    assert details(result, RULE.rule)["window"]["end"] == "2026-11-24T14:05:00+00:00"


@pytest.mark.parametrize("ratio, verdict", [(0.05, "OK"), (0.5, "SILENT")])
def test_silent_ratio_is_the_threshold(ratio: float, verdict: str) -> None:
    metrics = replace(history(), KEY, "MatchedEvents", window_start(), NOW, 6)  # 18 of 60
    assert judge(metrics, cfg=HealthConfig(silent_ratio=ratio)).loc[RULE.rule, "verdict"] == \
        verdict


def test_unmapped_source_gets_possible_causes() -> None:
    rule = sy.SynthRule(CENTRAL, "subs", bus="central-bus",
                        sources=("quickgrocer.subscription-service",))
    start = NOW - timedelta(days=30)
    metrics = pd.concat([steady(rule.key, start, NOW), producer(WEB, start, NOW)])
    metrics = replace(metrics, rule.key, "MatchedEvents", window_start(), NOW, 0)
    metrics = replace(metrics, (WEB, REGION, "", ""), "PutEventsFailedEntriesCount",
                      window_start(), NOW, 100)
    reasons = list(judge(metrics, rules=[rule]).loc["subs", "reasons"])
    assert reasons[1] == ("possible cause: account 111111111111 (customer-web) had 300 "
                          "failed PutEvents entries in the last 15m (source "
                          "quickgrocer.subscription-service is not mapped to an account)")


def test_scheduled_rule_is_judged_on_triggered_rules() -> None:
    # a scheduled rule has no pattern and matches nothing: its pulse is TriggeredRules
    metrics = replace(history(), KEY, "MatchedEvents", NOW - timedelta(days=30), NOW, 0)
    metrics = replace(metrics, KEY, "TriggeredRules", window_start(), NOW, 0)
    inventory = sy.inventory([RULE], NOW).assign(event_pattern=None,
                                                  schedule_expression="rate(5 minutes)")
    result = evaluate(inventory, metrics, sy.dlq_readings([]), sy.accounts(NAMES, NOW),
                      sy.runs([(CENTRAL, REGION)], NOW), sy.buses([]), NOW, HealthConfig(),
                      timedelta(minutes=5))
    assert list(result["reasons"][0]) == [
        "triggered 0 events in the last 15m; usually 60 at this hour (Tue 14:00 UTC)"]


def test_series_helper_marks_account_rows_with_null_rule() -> None:
    frame = series((WEB, REGION, "", ""), "PutEventsEntriesCount", window_start(), NOW, 1.0)
    assert frame["rule"].isna().all() and frame["bus"].isna().all()


@pytest.mark.parametrize(("dtype", "missing"), [
    ("object", None), ("object", float("nan")), ("str", None), ("string", None)])
def test_a_scheduled_rule_beside_patterned_ones_is_judged_whatever_its_missing_pattern_is(
        dtype: str, missing: object) -> None:
    # from Parquet a scheduled rule's pattern is a null in a string column (NaN or NA), not
    # None; one such rule once crashed the whole organization's health step
    inventory = sy.inventory([RULE, OTHER], NOW - timedelta(minutes=2))
    inventory["event_pattern"] = inventory["event_pattern"].astype(dtype)
    scheduled = inventory["rule"] == OTHER.rule
    inventory.loc[scheduled, "event_pattern"] = missing
    inventory["schedule_expression"] = pd.Series(
        ["rate(5 minutes)" if s else None for s in scheduled], dtype=dtype)
    result = evaluate(inventory, history(), sy.dlq_readings([]),
                      sy.accounts(NAMES, NOW - timedelta(minutes=2)),
                      sy.runs([(a, REGION) for a in NAMES], NOW - timedelta(minutes=3)),
                      sy.buses([]), NOW, HealthConfig(), PERIOD).set_index("rule")
    assert result.loc[OTHER.rule, "verdict"] == "OK"
    assert result.loc[RULE.rule, "verdict"] == "OK"
