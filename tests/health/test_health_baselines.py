"""Baselines: hour of week, the short-history fallback, zero-filling, the window."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
from health_frames import KEY, NOW, PERIOD, RULE, judge, replace, series, steady, window_start

from orgscope.config import HealthConfig
from orgscope.health.model import WEEK, baselines, evaluation_windows, usual_band

CFG = HealthConfig()


def matched_baseline(metrics: pd.DataFrame, cfg: HealthConfig = CFG) -> pd.Series:
    frame = baselines(metrics, NOW, cfg, period=PERIOD)
    return frame[frame["metric"] == "MatchedEvents"].iloc[0]


def test_hour_of_week_uses_the_same_hour_of_earlier_weeks() -> None:
    start = NOW - timedelta(days=29)
    metrics = steady(KEY, start, NOW, matched=2.0)
    for week in range(1, 5):  # Tuesdays 14:00-15:00 are busy: 30 per period
        bucket = NOW.replace(minute=0) - WEEK * week
        metrics = replace(metrics, KEY, "MatchedEvents", bucket, bucket + timedelta(hours=1), 30)
    base = matched_baseline(metrics)
    assert base["method"] == "hour_of_week"
    assert base["samples"] == 4
    assert base["expected"] == 90.0  # 12 periods x 30 per hour, scaled to 15m
    assert f"{base['bucket']:%a %H:%M}" == "Tue 14:00"


def test_median_ignores_one_odd_week() -> None:
    metrics = steady(KEY, NOW - timedelta(days=29), NOW, matched=10.0)
    bucket = NOW.replace(minute=0) - WEEK * 2
    metrics = replace(metrics, KEY, "MatchedEvents", bucket, bucket + timedelta(hours=1), 0)
    assert matched_baseline(metrics)["expected"] == 30.0


def test_only_baseline_weeks_are_used() -> None:
    metrics = steady(KEY, NOW - timedelta(days=29), NOW, matched=10.0)
    for week in (1, 2):
        bucket = NOW.replace(minute=0) - WEEK * week
        metrics = replace(metrics, KEY, "MatchedEvents", bucket, bucket + timedelta(hours=1), 40)
    base = matched_baseline(metrics, HealthConfig(baseline_weeks=2))
    assert (base["samples"], base["expected"]) == (2, 120.0)


def test_short_history_falls_back_to_the_trailing_average() -> None:
    # two days of history: 4 per period for a day, then 8 per period; the window is excluded
    start = NOW - timedelta(days=2)
    metrics = pd.concat([
        series(KEY, "MatchedEvents", start, NOW - timedelta(days=1), 4.0),
        series(KEY, "MatchedEvents", NOW - timedelta(days=1), NOW - timedelta(minutes=15), 8.0),
        series(KEY, "MatchedEvents", NOW - timedelta(minutes=15), NOW, 500.0),
    ])
    base = matched_baseline(metrics)
    assert base["method"] == "trailing_average"
    # (288 x 4 + 285 x 8) events over 573 periods, scaled to 3 periods
    assert abs(base["expected"] - 3 * (288 * 4 + 285 * 8) / 573) < 1e-9


def test_history_shorter_than_min_history_uses_the_fallback_even_with_a_past_week() -> None:
    metrics = steady(KEY, NOW - timedelta(days=8), NOW, matched=10.0)
    assert matched_baseline(metrics, HealthConfig(min_history="14d"))["method"] == \
        "trailing_average"
    assert matched_baseline(metrics)["method"] == "hour_of_week"


def test_fallback_reason_says_what_it_compared_with() -> None:
    start = NOW - timedelta(days=2)
    metrics = replace(steady(KEY, start, NOW), KEY, "MatchedEvents", window_start(), NOW, 0)
    result = judge(metrics, rules=[RULE])
    assert list(result.loc[RULE.rule, "reasons"]) == [
        "matched 0 events in the last 15m; usually 60 by its own average over the last 2d "
        "(hour-of-week baselines start after 7d of history)"]


def test_missing_counts_inside_history_mean_zero() -> None:
    # AWS omits zero counts: a rule busy only in week 4 of its hour has a median of 0
    start = NOW - timedelta(days=29)
    metrics = series(KEY, "MatchedEvents", start, start + timedelta(minutes=5), 1.0)
    bucket = NOW.replace(minute=0) - WEEK * 4
    metrics = pd.concat([metrics, series(KEY, "MatchedEvents", bucket,
                                         bucket + timedelta(hours=1), 50.0)])
    base = matched_baseline(metrics)
    assert (base["method"], base["samples"], base["expected"]) == ("hour_of_week", 4, 0.0)


def test_weeks_before_the_rule_existed_do_not_count_as_zero() -> None:
    start = NOW - timedelta(days=15)
    metrics = steady(KEY, start, NOW, matched=10.0)
    base = matched_baseline(metrics)
    assert (base["samples"], base["expected"]) == (2, 30.0)


def test_no_history_before_the_window_means_no_baseline() -> None:
    metrics = series(KEY, "MatchedEvents", window_start(), NOW, 1.0)
    assert matched_baseline(metrics)["method"] == "none"


def test_window_is_anchored_on_the_newest_period_but_never_past_stale_after() -> None:
    fresh = series(KEY, "MatchedEvents", NOW - timedelta(hours=1), NOW - timedelta(minutes=5),
                   1.0)
    window = evaluation_windows(fresh, NOW, CFG, PERIOD).iloc[0]
    assert (window["start"], window["end"]) == (
        pd.Timestamp(NOW - timedelta(minutes=20)), pd.Timestamp(NOW - timedelta(minutes=5)))
    old = series(KEY, "MatchedEvents", NOW - timedelta(hours=3), NOW - timedelta(hours=1), 1.0)
    assert evaluation_windows(old, NOW, CFG, PERIOD).empty


def _band_at(metrics: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp,
             cfg: HealthConfig = CFG) -> pd.DataFrame:
    account_id, region, bus, rule = KEY
    windows = pd.DataFrame([{"account_id": account_id, "region": region, "bus": bus,
                             "rule": rule, "start": start, "end": end}])
    return usual_band(metrics, windows, cfg)


def test_the_band_at_the_evaluated_window_is_the_verdicts_baseline() -> None:
    """The Event-flow chart's band and the verdict come from one function: at the window a
    verdict judged, the band's usual value is that verdict's expected value."""
    busy = steady(KEY, NOW - timedelta(days=29), NOW, matched=2.0)
    for week in range(1, 5):
        bucket = NOW.replace(minute=0) - WEEK * week
        busy = replace(busy, KEY, "MatchedEvents", bucket, bucket + timedelta(hours=1),
                       10.0 * week)
    short = pd.concat([
        series(KEY, "MatchedEvents", NOW - timedelta(days=2), NOW - timedelta(days=1), 4.0),
        series(KEY, "MatchedEvents", NOW - timedelta(days=1), NOW, 8.0),
    ])
    for metrics, method in ((busy, "hour_of_week"), (short, "trailing_average")):
        window = evaluation_windows(metrics, NOW, CFG, PERIOD).iloc[0]
        verdict = baselines(metrics, NOW, CFG, period=PERIOD)
        band = _band_at(metrics, window["start"], window["end"])
        for name in ("MatchedEvents", "TriggeredRules", "IngestionToInvocationStartLatency"):
            judged = verdict[verdict["metric"] == name].iloc[0]
            drawn = band[band["metric"] == name].iloc[0]
            assert drawn["method"] == judged["method"]
            assert drawn["samples"] == judged["samples"]
            assert (pd.isna(drawn["expected"]) and pd.isna(judged["expected"])) or \
                drawn["expected"] == judged["expected"]
        assert band.loc[band["metric"] == "MatchedEvents", "method"].iloc[0] == method


def test_the_band_spans_the_weeks_the_median_is_taken_over() -> None:
    metrics = steady(KEY, NOW - timedelta(days=29), NOW, matched=2.0)
    for week in range(1, 5):  # 10, 20, 30, 40 per period at this hour in weeks 1-4
        bucket = NOW.replace(minute=0) - WEEK * week
        metrics = replace(metrics, KEY, "MatchedEvents", bucket, bucket + timedelta(hours=1),
                          10.0 * week)
    hour = pd.Timestamp(NOW.replace(minute=0))
    drawn = _band_at(metrics, hour, hour + timedelta(hours=1))
    matched = drawn[drawn["metric"] == "MatchedEvents"].iloc[0]
    # hourly sums 120, 240, 360, 480: median 300, 10th-90th percentile 156-444
    assert (matched["expected"], matched["low"], matched["high"]) == (300.0, 156.0, 444.0)


def test_the_band_of_a_window_with_short_history_is_its_trailing_average() -> None:
    metrics = series(KEY, "MatchedEvents", NOW - timedelta(days=2), NOW, 6.0)
    start = pd.Timestamp(NOW - timedelta(hours=1))
    drawn = _band_at(metrics, start, start + timedelta(minutes=5))
    matched = drawn[drawn["metric"] == "MatchedEvents"].iloc[0]
    assert matched["method"] == "trailing_average" and matched["expected"] == 6.0
    assert pd.isna(matched["low"]) and pd.isna(matched["high"])
