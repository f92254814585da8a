"""One rule's metrics on the Event-flow page: whether any were stored, its delivery funnel,
and a metric's series in chart buckets with the band of its usual values.

Everything that grows with history (``event_metrics``) is aggregated in DuckDB with
``time_bucket`` to at most :data:`dashboard.buckets.MAX_POINTS` points per series, so a
30-day range sends a few hundred points per line to the browser.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pandas as pd

from dashboard.buckets import MAX_POINTS, PERIOD, bucket_for
from dashboard.verdicts import RuleKey
from orgscope.datasets import AVERAGE_METRICS, RULE_METRICS
from orgscope.store import Store

#: Funnel stages: label -> metric summed over the time range.
FUNNEL: tuple[tuple[str, str], ...] = (
    ("Matched", "MatchedEvents"),
    ("Invocations", "Invocations"),
    ("Succeeded", "SuccessfulInvocationAttempts"),
    ("Retried", "RetryInvocationAttempts"),
    ("Failed", "FailedInvocations"),
    ("Sent to DLQ", "InvocationsSentToDlq"),
)
#: Extra sums shown next to the funnel.
FUNNEL_EXTRAS: tuple[tuple[str, str], ...] = (
    ("Throttled", "ThrottledRules"),
    ("Failed to reach the DLQ", "InvocationsFailedToBeSentToDlq"),
)
BASELINE_WEEKS = 4


def metrics_present(store: Store) -> bool:
    """Whether any event metric was ever stored (answers "no data yet" vs "all quiet")."""
    frame = store.query("SELECT count(*) > 0 AS present FROM (SELECT 1 FROM event_metrics LIMIT 1)")
    return bool(frame["present"].iloc[0])


def rule_funnel(store: Store, key: RuleKey, since: datetime, until: datetime) -> pd.DataFrame:
    """Sums over [since, until) of the rule's delivery metrics.

    Columns: stage, metric, value, periods (how many periods were stored: 0 means no data,
    which the page tells apart from a stored 0).
    """
    stages = (*FUNNEL, *FUNNEL_EXTRAS)
    sql = """
    SELECT metric, sum(value) AS value, count(*) AS periods FROM event_metrics
    WHERE account_id = ? AND region = ? AND bus = ? AND rule = ? AND ts >= ? AND ts < ?
      AND list_contains(?::VARCHAR[], metric)
    GROUP BY metric
    """
    params = [key.account_id, key.region, key.bus, key.rule, since, until,
              [metric for _, metric in stages]]
    found = {str(r["metric"]): r for r in store.query(sql, params).to_dict("records")}
    rows = []
    for stage, metric in stages:
        record = found.get(metric)
        rows.append({
            "stage": stage,
            "metric": metric,
            "value": float(record["value"]) if record else 0.0,
            "periods": int(record["periods"]) if record else 0,
        })
    return pd.DataFrame(rows, columns=["stage", "metric", "value", "periods"])


def rule_series(
    store: Store,
    key: RuleKey,
    metric: str,
    since: datetime,
    until: datetime,
    *,
    max_points: int = MAX_POINTS,
    baseline_weeks: int = BASELINE_WEEKS,
) -> pd.DataFrame:
    """One metric of one rule in time buckets, with the band of its usual values.

    Buckets are :func:`bucket_for` the range. Sums are summed per bucket, averages (latency)
    averaged. The usual value of a 5-minute period is taken from the same hour of the week
    in the ``baseline_weeks`` weeks *before* it (median, 10th and 90th percentile of those
    5-minute values), so a fault never becomes its own baseline; while there is less than a
    week of history, from the same hour of the previous days (up to a week). The band is then
    aggregated to the bucket like the metric itself.

    Columns: bucket (UTC), value (NaN where nothing was stored), expected, low, high (NaN
    where there is no history yet).
    """
    bucket = bucket_for(until - since, max_points)
    aggregate = "avg" if metric in AVERAGE_METRICS else "sum"
    # timestamps become naive UTC so that buckets and hours of the week never depend on the
    # DuckDB session's time zone
    sql = f"""
    WITH raw AS (
        SELECT timezone('UTC', ts) AS ts, value FROM event_metrics
        WHERE account_id = ? AND region = ? AND bus = ? AND rule = ? AND metric = ?
          AND ts >= ? AND ts < ?
    ),
    periods AS (
        SELECT unnest(generate_series(?::TIMESTAMP, ?::TIMESTAMP - INTERVAL 1 MICROSECOND,
                                      ?::INTERVAL)) AS ts
    ),
    hours AS (SELECT DISTINCT date_trunc('hour', ts) AS hour FROM periods),
    weekly AS (
        SELECT h.hour, median(r.value) AS expected, quantile_cont(r.value, 0.1) AS low,
               quantile_cont(r.value, 0.9) AS high
        FROM hours h JOIN raw r
          ON isodow(r.ts) = isodow(h.hour) AND hour(r.ts) = hour(h.hour)
         AND r.ts < h.hour - INTERVAL 6 DAY AND r.ts >= h.hour - ?::INTERVAL
        GROUP BY h.hour
    ),
    daily AS (
        SELECT h.hour, median(r.value) AS expected, quantile_cont(r.value, 0.1) AS low,
               quantile_cont(r.value, 0.9) AS high
        FROM hours h JOIN raw r
          ON hour(r.ts) = hour(h.hour)
         AND r.ts < h.hour - INTERVAL 23 HOUR AND r.ts >= h.hour - INTERVAL 7 DAY
        GROUP BY h.hour
    ),
    band AS (
        SELECT h.hour,
               CASE WHEN w.hour IS NULL THEN d.expected ELSE w.expected END AS expected,
               CASE WHEN w.hour IS NULL THEN d.low ELSE w.low END AS low,
               CASE WHEN w.hour IS NULL THEN d.high ELSE w.high END AS high
        FROM hours h LEFT JOIN weekly w USING (hour) LEFT JOIN daily d USING (hour)
    )
    SELECT time_bucket(?::INTERVAL, p.ts) AS bucket,
           {aggregate}(r.value) AS value, {aggregate}(b.expected) AS expected,
           {aggregate}(b.low) AS low, {aggregate}(b.high) AS high
    FROM periods p
    LEFT JOIN raw r ON r.ts = p.ts
    LEFT JOIN band b ON b.hour = date_trunc('hour', p.ts)
    GROUP BY bucket ORDER BY bucket
    """
    start = _floor(since, bucket)
    history = timedelta(weeks=baseline_weeks)
    params = [
        key.account_id, key.region, key.bus, key.rule, metric, start - history, until,
        _naive(start), _naive(until), PERIOD, history, bucket,
    ]
    frame = store.query(sql, params)
    frame["bucket"] = pd.to_datetime(frame["bucket"]).dt.tz_localize(UTC)
    return frame


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _floor(moment: datetime, step: timedelta) -> datetime:
    """``moment`` rounded down to a multiple of ``step`` since the Unix epoch (UTC)."""
    seconds = step.total_seconds()
    return datetime.fromtimestamp(math.floor(moment.timestamp() / seconds) * seconds, UTC)


def metric_choices() -> Sequence[str]:
    """Metrics the time-series chart offers, MatchedEvents first."""
    return RULE_METRICS
