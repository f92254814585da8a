"""Metrics collector: the pure parts (queries, windows, chunks, parsing, zero-filling)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pandas as pd
import pytest

from collectors.metrics import (
    MAX_DATAPOINTS_PER_CALL,
    MetricsCollectorConfig,
    batches,
    build_series,
    floor_to_period,
    max_periods_per_call,
    metric_queries,
    parse_results,
    plan_chunks,
    read_window,
    rows_for_chunk,
)
from orgscope.collect import Window
from orgscope.datasets import ACCOUNT_METRICS, EVENT_METRICS, RULE_METRICS, RULE_SIGNALS

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ID_RE = re.compile(r"^[a-z][a-zA-Z0-9_]*$")


def rules_frame(*rows: tuple[str, str, str, str]) -> pd.DataFrame:
    return pd.DataFrame([{"account_id": a, "region": r, "bus": b, "rule": n}
                         for a, r, b, n in rows])


RULES = rules_frame(
    ("121212121212", "us-east-1", "central-bus", "to-orders"),
    ("121212121212", "us-east-1", "default", "nightly"),
    ("121212121212", "eu-west-1", "default", "elsewhere"),
    ("777777777777", "us-east-1", "default", "other-account"),
)


# --- series and queries ----------------------------------------------------------------------


def test_series_cover_this_account_and_region_only() -> None:
    series = build_series(RULES, "121212121212", "us-east-1")
    assert len(series) == 2 * len(RULE_METRICS) + len(ACCOUNT_METRICS) + len(RULE_SIGNALS)
    assert {s.rule for s in series} == {"to-orders", "nightly", None}
    assert [s.metric for s in series if s.rule is None] == [*ACCOUNT_METRICS, *RULE_SIGNALS]


def test_series_without_rules_are_the_account_metrics() -> None:
    series = build_series(RULES.iloc[0:0], "121212121212", "us-east-1")
    assert [s.metric for s in series] == list(ACCOUNT_METRICS)


def test_query_ids_are_valid_and_unique() -> None:
    queries = metric_queries(build_series(RULES, "121212121212", "us-east-1"), 300)
    ids = [q["Id"] for q in queries]
    assert all(ID_RE.match(i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_dimensions_per_bus_type_and_stat_per_metric() -> None:
    queries = metric_queries(build_series(RULES, "121212121212", "us-east-1"), 300)
    by_key = {(q["MetricStat"]["Metric"]["MetricName"],
               tuple((d["Name"], d["Value"]) for d in q["MetricStat"]["Metric"].get(
                   "Dimensions", []))): q for q in queries}
    custom = by_key[("MatchedEvents", (("EventBusName", "central-bus"),
                                       ("RuleName", "to-orders")))]
    assert custom["MetricStat"]["Stat"] == "Sum" and custom["MetricStat"]["Period"] == 300
    assert ("MatchedEvents", (("RuleName", "nightly"),)) in by_key
    latency = by_key[("IngestionToInvocationStartLatency", (("RuleName", "nightly"),))]
    assert latency["MetricStat"]["Stat"] == "Average"
    account = by_key[("PutEventsEntriesCount", ())]
    assert "Dimensions" not in account["MetricStat"]["Metric"]
    assert all(q["MetricStat"]["Metric"]["Namespace"] == "AWS/Events" for q in queries)


def test_batches_of_at_most_500() -> None:
    sizes = [len(b) for b in batches(list(range(1201)))]
    assert sizes == [500, 500, 201]
    assert batches([]) == []


# --- windows and chunks ----------------------------------------------------------------------


def settings(**changes: object) -> MetricsCollectorConfig:
    return MetricsCollectorConfig.model_validate(
        {"period_s": 300, "backfill": "6h", "overlap": "10m", "max_chunks_per_run": 6,
         **changes})


def test_floor_to_period() -> None:
    assert floor_to_period(T0 + timedelta(minutes=7, seconds=3), 300) == T0 + timedelta(
        minutes=5)
    assert floor_to_period(T0, 3600) == T0


def test_first_run_backfills_to_the_last_complete_period() -> None:
    window = read_window(T0 + timedelta(minutes=3, seconds=20), None, settings())
    assert window == Window(T0 - timedelta(hours=6), T0)


def test_later_runs_start_overlap_before_the_watermark() -> None:
    window = read_window(T0 + timedelta(minutes=6), T0, settings())
    assert window == Window(T0 - timedelta(minutes=10), T0 + timedelta(minutes=5))


def test_overlap_is_period_aligned_and_never_beyond_the_backfill() -> None:
    window = read_window(T0 + timedelta(minutes=6), T0, settings(overlap="7m"))
    assert window is not None and window.start == T0 - timedelta(minutes=10)
    old = read_window(T0, T0 - timedelta(days=30), settings())
    assert old is not None and old.start == T0 - timedelta(hours=6)


def test_nothing_to_read_before_the_first_period_completes() -> None:
    assert read_window(T0 + timedelta(minutes=2), None, settings(backfill="1m")) is None


def test_chunks_stay_within_the_datapoint_limit() -> None:
    # 500 queries a call: at most 201 periods; with a 1-day span cap of 60-s periods, 201.
    assert max_periods_per_call(500, 60, timedelta(days=1)) == MAX_DATAPOINTS_PER_CALL // 500
    window = Window(T0 - timedelta(days=1), T0)
    chunks = plan_chunks(window, 60, 500, max_chunks=100, max_span=timedelta(days=1))
    for chunk in chunks:
        periods = (chunk.end - chunk.start) / timedelta(seconds=60)
        assert periods == int(periods) and 500 * periods <= MAX_DATAPOINTS_PER_CALL
    assert chunks[0].start == window.start and chunks[-1].end == window.end
    assert all(a.end == b.start for a, b in pairwise(chunks))


def test_chunks_stop_at_max_chunks_per_run() -> None:
    window = Window(T0 - timedelta(hours=10), T0)
    chunks = plan_chunks(window, 300, 161, max_chunks=6, max_span=timedelta(hours=1))
    assert len(chunks) == 6
    assert chunks[-1].end == T0 - timedelta(hours=4)  # the next run continues from here


def test_short_window_is_one_chunk() -> None:
    window = Window(T0 - timedelta(minutes=15), T0)
    assert plan_chunks(window, 300, 161, max_chunks=6) == [window]


# --- parsing and zero-filling ----------------------------------------------------------------


SERIES = build_series(RULES, "121212121212", "us-east-1")
BY_ID = {s.id: s for s in SERIES}
MATCHED = next(s for s in SERIES if s.metric == "MatchedEvents" and s.rule == "to-orders")
LATENCY = next(s for s in SERIES if s.metric == "IngestionToInvocationStartLatency"
               and s.rule == "to-orders")
CHUNK = Window(T0, T0 + timedelta(minutes=15))


def test_parse_merges_pages_and_skips_what_it_cannot_map(caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    results = [
        {"Id": MATCHED.id, "Timestamps": [T0], "Values": [4.0], "StatusCode": "PartialData"},
        {"Id": MATCHED.id, "Timestamps": [T0 + timedelta(minutes=5)], "Values": [6.0]},
        {"Id": "nosuch", "Timestamps": [T0], "Values": [1.0]},
        {"Id": LATENCY.id, "Timestamps": [T0 + timedelta(hours=1), "bad", T0],
         "Values": [9.0, 1.0, 120.5]},
    ]
    values = parse_results(results, BY_ID, CHUNK, "121212121212 us-east-1")
    assert values == {(MATCHED.id, T0): 4.0, (MATCHED.id, T0 + timedelta(minutes=5)): 6.0,
                      (LATENCY.id, T0): 120.5}
    assert "nosuch" in caplog.text and "outside" in caplog.text


def test_counts_are_zero_filled_inside_the_chunk_and_latency_is_not() -> None:
    values = {(MATCHED.id, T0): 4.0, (LATENCY.id, T0): 120.5}
    rows = rows_for_chunk(values, [MATCHED, LATENCY], CHUNK, 300,
                          account_id="121212121212", region="us-east-1")
    matched = [(r["ts"], r["value"]) for r in rows if r["metric"] == "MatchedEvents"]
    assert matched == [(T0, 4.0), (T0 + timedelta(minutes=5), 0.0),
                       (T0 + timedelta(minutes=10), 0.0)]
    latency = [(r["ts"], r["value"]) for r in rows if r["metric"] == LATENCY.metric]
    assert latency == [(T0, 120.5)]
    frame = pd.DataFrame(rows, columns=EVENT_METRICS.columns)
    EVENT_METRICS.to_table(frame)  # matches the contract
    assert set(frame["bus"]) == {"central-bus"}


def test_account_metrics_have_no_bus_or_rule() -> None:
    account = [s for s in SERIES if s.rule is None]
    rows = rows_for_chunk({}, account, CHUNK, 300, account_id="121212121212",
                          region="us-east-1")
    counted = [s for s in account if s.zero_filled]
    assert len(counted) == len(ACCOUNT_METRICS) + len(RULE_SIGNALS) - 1  # latency: no zeros
    assert len(rows) == len(counted) * 3
    assert {(r["bus"], r["rule"], r["value"]) for r in rows} == {(None, None, 0.0)}
