"""Metrics collector tiers: which run reads what, the drill-down, and what a run returns."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from collectors.metrics import (
    LATENCY_BASELINE,
    MetricsCollectorConfig,
    Series,
    collect_metrics,
    companion_series,
    drill_series,
    fast_series,
    full_series,
    loud_signals,
    plan_run,
    read_window,
    rule_owners,
    unpublished_signals,
)
from orgscope.accounts import Account
from orgscope.collect import CollectContext, Window
from orgscope.datasets import ACCOUNT_METRICS, ACCOUNT_SIGNALS, RULE_METRICS, RULE_SIGNALS

# Leap day, a minute past an hour boundary
T0 = datetime(2028, 2, 29, 23, 0, tzinfo=UTC)
ACCOUNT = "121212121212"
RULES = pd.DataFrame([
    {"account_id": ACCOUNT, "region": "us-east-1", "bus": "central-bus", "rule": "to-orders",
     "event_pattern": '{"source": ["shop"]}', "schedule_expression": None},
    {"account_id": ACCOUNT, "region": "us-east-1", "bus": "default", "rule": "nightly",
     "event_pattern": None, "schedule_expression": "cron(0 2 * * ? *)"},
    {"account_id": "777777777777", "region": "us-east-1", "bus": "default", "rule": "other",
     "event_pattern": '{"source": ["x"]}', "schedule_expression": None},
])
BUSES = pd.DataFrame([{"account_id": ACCOUNT, "region": "us-east-1", "bus": "default"}])


def settings(**changes: object) -> MetricsCollectorConfig:
    return MetricsCollectorConfig.model_validate(
        {"period_s": 300, "backfill": "6h", "overlap": "10m", "max_chunks_per_run": 6,
         "interval": "5m", "full_interval": "1h", **changes})


# --- series per tier ---------------------------------------------------------------------------


def test_owners_carry_each_rules_activity_metric() -> None:
    owners = rule_owners(RULES, ACCOUNT, "us-east-1")
    assert owners == [("central-bus", "to-orders", "MatchedEvents"),
                      ("default", "nightly", "TriggeredRules")]


def test_fast_tier_is_one_series_per_rule_plus_the_signals() -> None:
    owners = rule_owners(RULES, ACCOUNT, "us-east-1")
    fast = fast_series(owners)
    per_rule = [(s.metric, s.rule) for s in fast if s.rule is not None]
    assert per_rule == [("MatchedEvents", "to-orders"), ("TriggeredRules", "nightly")]
    assert [s.metric for s in fast if s.rule is None] == [*RULE_SIGNALS, *ACCOUNT_SIGNALS]
    assert len(fast) == len(owners) + len(RULE_SIGNALS) + len(ACCOUNT_SIGNALS)


def test_an_account_without_rules_reads_only_its_producer_signals() -> None:
    assert [s.metric for s in fast_series([])] == list(ACCOUNT_SIGNALS)
    assert [s.metric for s in full_series([])] == list(ACCOUNT_METRICS)


def test_drill_reads_each_loud_signal_for_every_rule_once() -> None:
    owners = rule_owners(RULES, ACCOUNT, "us-east-1")
    fast = fast_series(owners)
    drill = drill_series(owners, ["FailedInvocations", "PutEventsFailedEntriesCount"], fast)
    assert {(s.metric, s.rule) for s in drill if s.rule} == {
        ("FailedInvocations", "to-orders"), ("FailedInvocations", "nightly")}
    # the account signals already read are not asked for again
    assert sorted(s.metric for s in drill if s.rule is None) == sorted(
        set(ACCOUNT_METRICS) - set(ACCOUNT_SIGNALS))
    ids = [s.id for s in fast + drill]
    assert len(set(ids)) == len(ids)
    assert drill_series(owners, [], fast) == []


def test_companions_only_for_the_rules_where_the_signal_was_not_zero() -> None:
    owners = rule_owners(RULES, ACCOUNT, "us-east-1")
    read = fast_series(owners)
    rows = [{"metric": "FailedInvocations", "bus": "central-bus", "rule": "to-orders",
             "value": 0.0},
            {"metric": "FailedInvocations", "bus": "central-bus", "rule": "to-orders",
             "value": 2.0},
            {"metric": "FailedInvocations", "bus": "default", "rule": "nightly", "value": 0.0},
            {"metric": "ThrottledRules", "bus": "default", "rule": "nightly", "value": 4.0}]
    companions = companion_series(rows, ["FailedInvocations"], read)
    assert [(s.metric, s.bus, s.rule) for s in companions] == [
        (metric, "central-bus", "to-orders") for metric in RULE_SIGNALS["FailedInvocations"][1:]]
    assert companions[0].id == f"m{len(read)}"
    assert companion_series(rows, [], read) == []  # ThrottledRules was not loud here


# --- loud signals ------------------------------------------------------------------------------


WINDOW = Window(T0 - timedelta(minutes=15), T0)


def _series(metric: str) -> Series:
    return Series("m0", metric, None, None)


def _values(before: list[float], inside: list[float]) -> dict[tuple[str, datetime], float]:
    values = {}
    for n, value in enumerate(before):
        values[("m0", WINDOW.start - timedelta(minutes=5 * (n + 1)))] = value
    for n, value in enumerate(inside):
        values[("m0", WINDOW.start + timedelta(minutes=5 * n))] = value
    return values


def test_a_count_signal_is_loud_when_not_zero_inside_the_window() -> None:
    failed = [_series("FailedInvocations")]
    assert loud_signals(_values([0, 0], [0, 1, 0]), failed, WINDOW, 1.5) == [
        "FailedInvocations"]
    assert loud_signals(_values([9, 9], [0, 0, 0]), failed, WINDOW, 1.5) == []


def test_latency_is_loud_above_the_factor_times_the_hour_before() -> None:
    latency = [_series("IngestionToInvocationStartLatency")]
    assert loud_signals(_values([100, 100], [100, 400, 100]), latency, WINDOW, 1.5) == [
        "IngestionToInvocationStartLatency"]
    assert loud_signals(_values([100, 100], [120, 130, 110]), latency, WINDOW, 1.5) == []
    assert loud_signals(_values([], [900]), latency, WINDOW, 1.5) == []  # nothing to compare


# --- which run is which tier -------------------------------------------------------------------


def test_first_run_and_catch_up_are_full_in_chunks() -> None:
    first = read_window(T0 + timedelta(minutes=2), None, settings())
    assert first is not None
    assert plan_run(first, None, settings()).tier == "full"
    behind = T0 - timedelta(hours=3)
    window = read_window(T0 + timedelta(minutes=2), behind, settings())
    assert window is not None
    plan = plan_run(window, behind, settings())
    assert plan.tier == "full" and plan.window == window


def test_runs_between_hour_boundaries_are_fast() -> None:
    watermark = T0 + timedelta(minutes=10)
    window = read_window(T0 + timedelta(minutes=16), watermark, settings())
    assert window is not None
    plan = plan_run(window, watermark, settings())
    assert plan.tier == "fast" and plan.window == window


def test_the_first_run_past_a_boundary_reads_the_hour_and_overlap_in_one_read() -> None:
    watermark = T0 - timedelta(minutes=5)  # 22:55, the year's last day of February
    window = read_window(T0 + timedelta(minutes=1), watermark, settings())
    assert window is not None and window.end == T0
    plan = plan_run(window, watermark, settings())
    assert plan.tier == "full"
    assert plan.window == Window(T0 - timedelta(minutes=70), T0)
    assert plan.max_span == timedelta(minutes=70)


def test_tiers_off_when_full_interval_is_not_longer_than_interval() -> None:
    off = settings(full_interval="5m")
    assert not off.tiered
    watermark = T0 + timedelta(minutes=10)
    window = read_window(T0 + timedelta(minutes=16), watermark, off)
    assert window is not None and plan_run(window, watermark, off).tier == "full"


# --- a run against a CloudWatch that answers from a table ----------------------------------------


class FakeCloudWatch:
    """GetMetricData answering each query from ``data`` ((metric, rule) -> value for every
    period), recording the queries of each call."""

    def __init__(self, data: Mapping[tuple[str, str | None], float]) -> None:
        self.data = data
        self.calls: list[list[dict[str, Any]]] = []
        self.starts: list[datetime] = []

    def get_metric_data(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params["MetricDataQueries"])
        self.starts.append(params["StartTime"])
        start, end = params["StartTime"], params["EndTime"]
        stamps = []
        moment = start
        while moment < end:
            stamps.append(moment)
            moment += timedelta(minutes=5)
        results = []
        for query in params["MetricDataQueries"]:
            metric = query["MetricStat"]["Metric"]
            rule = next((d["Value"] for d in metric.get("Dimensions", [])
                         if d["Name"] == "RuleName"), None)
            value = self.data.get((metric["MetricName"], rule))
            results.append({"Id": query["Id"], "StatusCode": "Complete",
                            "Timestamps": stamps if value is not None else [],
                            "Values": [value] * len(stamps) if value is not None else []})
        return {"MetricDataResults": results}


def _ctx(cloudwatch: FakeCloudWatch, now: datetime, watermark: datetime | None,
         **changes: object) -> CollectContext:
    return CollectContext(
        account=Account(id=ACCOUNT, name="shop", team="shop"), region="us-east-1",
        window=Window(now - timedelta(minutes=5), now), collected_at=now,
        client_factory=lambda service: cloudwatch, settings=settings(**changes),
        inputs={"rules": RULES, "event_buses": BUSES}, watermark=watermark)


def _queried(call: list[dict[str, Any]]) -> set[tuple[str, str | None]]:
    found = set()
    for query in call:
        metric = query["MetricStat"]["Metric"]
        rule = next((d["Value"] for d in metric.get("Dimensions", [])
                     if d["Name"] == "RuleName"), None)
        found.add((metric["MetricName"], rule))
    return found


def test_a_quiet_fast_run_is_one_call_and_returns_only_its_window() -> None:
    cloudwatch = FakeCloudWatch({("MatchedEvents", "to-orders"): 7.0})
    now = T0 + timedelta(minutes=21)
    collected = collect_metrics(_ctx(cloudwatch, now, T0 + timedelta(minutes=15)))
    assert collected.tier == "fast"
    assert len(cloudwatch.calls) == 1
    frame = collected.frames["event_metrics"]
    window_start = T0 + timedelta(minutes=5)
    assert frame["ts"].min() == window_start  # the latency hour before is not returned
    assert set(frame["metric"]) <= {"MatchedEvents", "TriggeredRules", *RULE_SIGNALS,
                                    *ACCOUNT_SIGNALS}
    matched = frame[(frame["rule"] == "to-orders")]
    assert list(matched["value"]) == [7.0] * 3
    assert collected.watermark == T0 + timedelta(minutes=20)


def test_a_loud_signal_drills_into_every_rule_in_the_same_run() -> None:
    cloudwatch = FakeCloudWatch({("FailedInvocations", None): 3.0,
                                 ("FailedInvocations", "to-orders"): 3.0,
                                 ("Invocations", "to-orders"): 10.0})
    now = T0 + timedelta(minutes=21)
    collected = collect_metrics(_ctx(cloudwatch, now, T0 + timedelta(minutes=15)))
    assert len(cloudwatch.calls) == 3
    assert _queried(cloudwatch.calls[1]) == {("FailedInvocations", r)
                                             for r in ("to-orders", "nightly")}
    # the companions only for the rule that failed
    assert _queried(cloudwatch.calls[2]) == {
        (m, "to-orders") for m in RULE_SIGNALS["FailedInvocations"][1:]}
    frame = collected.frames["event_metrics"]
    failed = frame[(frame["metric"] == "FailedInvocations") & (frame["rule"] == "to-orders")]
    assert failed["value"].sum() == 9.0
    assert not frame[frame["rule"] == "nightly"].empty


def test_the_run_past_the_boundary_reads_every_series() -> None:
    cloudwatch = FakeCloudWatch({})
    collected = collect_metrics(_ctx(cloudwatch, T0 + timedelta(minutes=1),
                                     T0 - timedelta(minutes=5)))
    assert collected.tier == "full"
    assert len(cloudwatch.calls) == 1
    assert {(m, "to-orders") for m in RULE_METRICS} <= _queried(cloudwatch.calls[0])


def test_fast_read_reaches_back_for_the_latency_baseline() -> None:
    cloudwatch = FakeCloudWatch({})
    now = T0 + timedelta(minutes=21)
    collect_metrics(_ctx(cloudwatch, now, T0 + timedelta(minutes=15)))
    assert cloudwatch.starts == [T0 + timedelta(minutes=5) - LATENCY_BASELINE]


def test_a_signal_seen_on_rules_but_not_across_them_is_named() -> None:
    def row(metric: str, rule: str | None, value: float) -> dict[str, Any]:
        return {"metric": metric, "rule": rule, "value": value}

    rows = [row("FailedInvocations", "to-orders", 2.0), row("FailedInvocations", None, 2.0),
            row("ThrottledRules", "to-orders", 1.0), row("ThrottledRules", None, 0.0),
            row("IngestionToInvocationStartLatency", "to-orders", 80.0),
            row("MatchedEvents", "to-orders", 9.0)]
    assert unpublished_signals(rows) == ["ThrottledRules", "IngestionToInvocationStartLatency"]
    assert unpublished_signals([row("FailedInvocations", None, 0.0)]) == []


def test_orgscope_own_rules_are_read_by_the_full_tier_only() -> None:
    forwarder_only = pd.DataFrame([
        {"account_id": ACCOUNT, "region": "us-east-1", "bus": "default",
         "rule": "orgscope-change-forwarder", "event_pattern": '{"source": ["aws.events"]}',
         "schedule_expression": None}])
    cloudwatch = FakeCloudWatch({})
    ctx = _ctx(cloudwatch, T0 + timedelta(minutes=21), T0 + timedelta(minutes=15))
    ctx = dataclasses.replace(ctx, inputs={"rules": forwarder_only, "event_buses": BUSES})
    collected = collect_metrics(ctx)
    assert collected.tier == "fast"
    # no rule of its own to watch: the account's producer signals only
    assert {m for m, _ in _queried(cloudwatch.calls[0])} == set(ACCOUNT_SIGNALS)
    full = FakeCloudWatch({})
    collect_metrics(dataclasses.replace(ctx, client_factory=lambda service: full,
                                        collected_at=T0 + timedelta(hours=1, minutes=1)))
    assert ("MatchedEvents", "orgscope-change-forwarder") in _queried(full.calls[0])
