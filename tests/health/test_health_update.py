"""update_rule_health against a real Store in tmp_path: reads, evaluates, writes rule_health."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import pandas as pd
from health_frames import (
    CENTRAL,
    KEY,
    NAMES,
    NOW,
    OTHER,
    REGION,
    RULE,
    WEB,
    history,
    replace,
    window_start,
)

from orgscope.config import Config, HealthConfig
from orgscope.datasets import DLQ_DEPTH, EVENT_METRICS, RULE_HEALTH, all_datasets
from orgscope.health.model import WEEK, evaluate
from orgscope.health.update import read_inputs, read_ranges, update_rule_health
from orgscope.store import Store
from testkit import synthetic as sy


def store_for(config: Config) -> Store:
    return Store(config.store.path, all_datasets())


def fill(store: Store, metrics: pd.DataFrame) -> None:
    # one file per day keeps the test quick (the runner writes one per cycle: bench/)
    ts = pd.to_datetime(metrics["ts"], utc=True)
    for day, frame in metrics.groupby(ts.dt.floor("D")):
        store.write(EVENT_METRICS.name, frame, f"c-{pd.Timestamp(str(day)):%Y%m%d}")
    at = NOW - timedelta(minutes=2)
    store.write("accounts", sy.accounts(NAMES, at), "c-acc")
    store.write("runs", pd.concat([sy.runs([(a, REGION) for a in NAMES], at),
                                   sy.runs([(a, REGION) for a in NAMES], at,
                                           collector="inventory")]), "c-runs")
    store.write("rules", sy.inventory([RULE, OTHER], at), "c-inv")
    store.write("event_buses", sy.buses([
        (NOW - timedelta(hours=3), CENTRAL, REGION, "central-bus", [WEB]),
        (at, CENTRAL, REGION, "central-bus", [WEB])]), "c-inv")
    store.write(DLQ_DEPTH.name, sy.dlq_readings([
        (NOW - timedelta(minutes=20), RULE.dlq_arns[0], 0),
        (NOW - timedelta(minutes=1), RULE.dlq_arns[0], 4)]), "c-dlq")


def test_update_rule_health_writes_verdicts_to_the_store(config: Config) -> None:
    store = store_for(config)
    fill(store, replace(history(), KEY, "MatchedEvents", window_start(), NOW, 0))
    result = update_rule_health(config, store, NOW)
    assert dict(zip(result["rule"], result["verdict"], strict=True)) == {
        RULE.rule: "FAILING", OTHER.rule: "OK"}
    files = store.files(RULE_HEALTH.name)
    assert [f.name for f in files] == ["health-20261124T141000Z.parquet"]
    stored = store.query("SELECT rule, verdict, reasons FROM rule_health ORDER BY rule")
    assert list(stored["verdict"]) == ["FAILING", "OK"]
    reasons = list(stored["reasons"][0])
    assert reasons[0].startswith("dead-letter queue orders-dlq grew by 4 messages")
    assert reasons[1].startswith("matched 0 events in the last 15m; usually 60 at this hour")


def test_the_store_read_matches_the_pure_model_on_all_data(config: Config) -> None:
    store = store_for(config)
    metrics = replace(history(), KEY, "MatchedEvents", window_start(), NOW, 0)
    fill(store, metrics)
    inputs = read_inputs(store, NOW, config.health, timedelta(minutes=5))
    assert len(inputs.metrics) < len(metrics) / 5  # only the spans the model needs
    from_store = update_rule_health(config, store, NOW).drop(columns="evaluated_at")
    direct = evaluate(inputs.rules, metrics, inputs.dlq, inputs.accounts, inputs.runs,
                      inputs.buses, NOW, config.health, timedelta(minutes=5))
    pd.testing.assert_frame_equal(from_store.reset_index(drop=True),
                                  direct.drop(columns="evaluated_at").reset_index(drop=True))


def test_short_history_reads_the_fallback_span(config: Config) -> None:
    store = store_for(config)
    fill(store, replace(history(days=3), KEY, "MatchedEvents", window_start(), NOW, 0))
    result = update_rule_health(config, store, NOW).set_index("rule")
    assert list(result.loc[RULE.rule, "reasons"])[-1] == (
        "matched 0 events in the last 15m; usually 60 by its own average over the last 3d "
        "(hour-of-week baselines start after 7d of history)")


def test_empty_store_gives_no_verdicts(config: Config, tmp_path: Path) -> None:
    store = Store(str(tmp_path / "empty"), all_datasets())
    result = update_rule_health(config, store, NOW)
    assert result.empty and list(result.columns) == RULE_HEALTH.columns


def test_read_ranges_cover_the_window_the_fallback_and_each_weeks_hour() -> None:
    cfg = HealthConfig()
    ranges = read_ranges(NOW, cfg, timedelta(minutes=5))
    assert ranges[0].metrics is None
    assert ranges[0].start <= NOW - cfg.window - cfg.stale_after and ranges[0].end > NOW
    spans = sorted((r.start, r.end) for r in ranges)
    assert all(a[1] <= b[0] for a, b in pairwise(spans))  # disjoint
    for week in range(1, cfg.baseline_weeks + 1):
        bucket = NOW.replace(minute=0) - WEEK * week
        assert any(r.start <= bucket and r.end >= bucket + timedelta(hours=1) for r in ranges)
    fallback = NOW - cfg.window - timedelta(days=7)
    assert any(r.start <= fallback < r.end for r in ranges)
