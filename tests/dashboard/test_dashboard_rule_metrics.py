"""One rule's funnel and series with the health model's band (dashboard.rule_metrics) against a tmp
store filled with the sample organization."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from dashboard import buckets, rule_metrics
from dashboard import verdicts as vd
from dashboard.filters import Filters
from orgscope.store import Store
from testkit.dashboard_sample import (
    CENTRAL,
    DEGRADED_RULE,
    FAILING_RULE,
    SILENT_RULE,
)


def _key(verdicts: pd.DataFrame, rule: str) -> vd.RuleKey:
    return next(key for key in vd.rule_keys(verdicts) if key.rule == rule)


def test_funnel_sums_match_the_stored_metrics(flow_store: Store, flow_now: datetime):
    verdicts = vd.rule_verdicts(flow_store, Filters())
    key = _key(verdicts, FAILING_RULE)
    since, until = buckets.window(Filters(time_range="24h"), flow_now)
    funnel = rule_metrics.rule_funnel(flow_store, key, since, until).set_index("metric")
    raw = flow_store.query(
        "SELECT metric, sum(value) AS v FROM event_metrics WHERE rule = ? AND ts >= ? "
        "AND ts < ? GROUP BY metric", [FAILING_RULE, since, until]).set_index("metric")["v"]
    for metric in ("MatchedEvents", "Invocations", "FailedInvocations", "InvocationsSentToDlq"):
        assert funnel.at[metric, "value"] == raw[metric]
    assert funnel.at["FailedInvocations", "value"] > 0
    assert list(funnel["stage"][:6]) == [stage for stage, _ in rule_metrics.FUNNEL]


def test_the_funnel_says_when_its_stages_lag_matched_events(flow_store: Store,
                                                             flow_now: datetime) -> None:
    verdicts = vd.rule_verdicts(flow_store, Filters())
    key = _key(verdicts, FAILING_RULE)
    since, until = buckets.window(Filters(time_range="24h"), flow_now)
    funnel = rule_metrics.rule_funnel(flow_store, key, since, until)
    assert funnel.set_index("metric").at["MatchedEvents", "newest"].tzinfo is not None
    assert rule_metrics.behind_matched(funnel) is None  # the sample reads every series
    newest = funnel.set_index("metric")["newest"]
    lagging = funnel.assign(newest=[t if m == "MatchedEvents" else t - timedelta(minutes=40)
                                    for m, t in zip(funnel["metric"], newest, strict=True)])
    behind = rule_metrics.behind_matched(lagging)
    assert behind == newest["MatchedEvents"] - timedelta(minutes=40)


def test_funnel_of_a_rule_without_metrics_says_no_data(flow_store: Store, flow_now: datetime):
    ghost = vd.RuleKey(CENTRAL, "us-east-1", "central-bus", "no-such-rule")
    funnel = rule_metrics.rule_funnel(flow_store, ghost, flow_now - timedelta(hours=1), flow_now)
    assert funnel["periods"].sum() == 0 and funnel["value"].sum() == 0


def test_series_is_bucketed_to_the_chart_and_keeps_the_totals(flow_store: Store,
                                                              flow_now: datetime):
    verdicts = vd.rule_verdicts(flow_store, Filters())
    key = _key(verdicts, FAILING_RULE)
    since, until = buckets.window(Filters(time_range="30d"), flow_now)
    series = rule_metrics.rule_series(flow_store, key, "MatchedEvents", since, until)
    assert len(series) <= buckets.MAX_POINTS
    assert (series["bucket"].diff().dropna() == pd.Timedelta(hours=3)).all()
    raw = flow_store.query("SELECT sum(value) AS v FROM event_metrics WHERE rule = ? AND "
                      "metric = 'MatchedEvents' AND ts >= ?", [FAILING_RULE, series["bucket"][0]])
    assert series["value"].sum() == pytest.approx(float(raw["v"].iloc[0]))
    # 28 days of the 30 have no data: no data is NaN, not 0
    assert series["value"].isna().sum() > 200


def test_series_shows_a_silent_rule_below_its_band(flow_store: Store, flow_now: datetime):
    verdicts = vd.rule_verdicts(flow_store, Filters())
    key = _key(verdicts, SILENT_RULE)
    since, until = buckets.window(Filters(time_range="6h"), flow_now)
    series = rule_metrics.rule_series(flow_store, key, "MatchedEvents", since, until)
    assert len(series) == 72
    recent = series[series["bucket"] >= pd.Timestamp(flow_now) - timedelta(hours=2)]
    assert (recent["value"].dropna() == 0).all()
    assert pd.isna(series["value"].iloc[-1]), "the period being collected is no data, not 0"
    assert (recent["expected"] > 0).any()
    older = series[series["bucket"] < pd.Timestamp(flow_now) - timedelta(hours=4)]
    assert (older["value"] > 0).any()


def test_latency_is_averaged_not_summed(flow_store: Store, flow_now: datetime):
    verdicts = vd.rule_verdicts(flow_store, Filters())
    key = _key(verdicts, DEGRADED_RULE)
    since, until = buckets.window(Filters(time_range="24h"), flow_now)
    series = rule_metrics.rule_series(flow_store, key, "IngestionToInvocationStartLatency",
                                      since, until)
    values = series["value"].dropna()
    assert values.max() < 400 and values.min() > 50
