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
from orgscope.config import HealthConfig
from orgscope.datasets import AVERAGE_METRICS, RULE_METRICS
from orgscope.health.model import BASELINE_METRICS, band_history, usual_band
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


def metrics_present(store: Store) -> bool:
    """Whether any event metric was ever stored (answers "no data yet" vs "all quiet")."""
    frame = store.query("SELECT count(*) > 0 AS present FROM (SELECT 1 FROM event_metrics LIMIT 1)")
    return bool(frame["present"].iloc[0])


def rule_funnel(store: Store, key: RuleKey, since: datetime, until: datetime) -> pd.DataFrame:
    """Sums over [since, until) of the rule's delivery metrics.

    Columns: stage, metric, value, periods (how many periods were stored: 0 means no data,
    which the page tells apart from a stored 0), newest (the start of the newest period
    stored, UTC; NaT without one: between full reads only MatchedEvents is current,
    docs/performance.md "Tiered metrics").
    """
    stages = (*FUNNEL, *FUNNEL_EXTRAS)
    sql = """
    SELECT metric, sum(value) AS value, count(*) AS periods, max(ts) AS newest
    FROM event_metrics
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
            "newest": _utc(record["newest"]) if record else pd.NaT,
        })
    return pd.DataFrame(rows, columns=["stage", "metric", "value", "periods", "newest"])


def behind_matched(funnel: pd.DataFrame) -> pd.Timestamp | None:
    """The newest period the funnel's other stages all reach, when it is older than
    MatchedEvents' newest (the fast tier reads only MatchedEvents every run); else None."""
    newest = funnel.set_index("metric")["newest"].dropna()
    if "MatchedEvents" not in newest or len(newest) < 2:
        return None
    others = newest.drop("MatchedEvents")
    oldest = others.min()
    return pd.Timestamp(oldest) if oldest < newest["MatchedEvents"] else None


def rule_series(
    store: Store,
    key: RuleKey,
    metric: str,
    since: datetime,
    until: datetime,
    *,
    health: HealthConfig | None = None,
    max_points: int = MAX_POINTS,
) -> pd.DataFrame:
    """One metric of one rule in time buckets, with the band of its usual values.

    Buckets are :func:`bucket_for` the range. Sums are summed per bucket, averages (latency)
    averaged. The band is the health model's own baseline (:func:`orgscope.health.model.
    usual_band`, the function the verdicts' baselines come from, with ``health``: the
    config's ``[health]``, defaults when None) of each bucket as a window: the median (and
    10th-90th percentile) of the same hour of the week over the earlier weeks, or the rule's
    own average before the bucket while its history is short, so a fault never becomes its
    own baseline. Metrics the model keeps no baseline of have no band.

    Columns: bucket (UTC), value (NaN where nothing was stored), expected, low, high (NaN
    where there is no baseline).
    """
    bucket = bucket_for(until - since, max_points)
    aggregate = "avg" if metric in AVERAGE_METRICS else "sum"
    # timestamps become naive UTC so that buckets never depend on the DuckDB session's zone
    sql = f"""
    WITH raw AS (
        SELECT timezone('UTC', ts) AS ts, value FROM event_metrics
        WHERE account_id = ? AND region = ? AND bus = ? AND rule = ? AND metric = ?
          AND ts >= ? AND ts < ?
    ),
    periods AS (
        SELECT unnest(generate_series(?::TIMESTAMP, ?::TIMESTAMP - INTERVAL 1 MICROSECOND,
                                      ?::INTERVAL)) AS ts
    )
    SELECT time_bucket(?::INTERVAL, p.ts) AS bucket, {aggregate}(r.value) AS value
    FROM periods p LEFT JOIN raw r ON r.ts = p.ts
    GROUP BY bucket ORDER BY bucket
    """
    start = _floor(since, bucket)
    params = [key.account_id, key.region, key.bus, key.rule, metric, start, until,
              _naive(start), _naive(until), PERIOD, bucket]
    frame = store.query(sql, params)
    frame["bucket"] = pd.to_datetime(frame["bucket"]).dt.tz_localize(UTC)
    band = _band(store, key, metric, frame["bucket"], bucket=bucket, until=until,
                 health=health or HealthConfig())
    return frame.merge(band, on="bucket", how="left")[
        ["bucket", "value", "expected", "low", "high"]]


def _band(store: Store, key: RuleKey, metric: str, starts: pd.Series, *, bucket: timedelta,
          until: datetime, health: HealthConfig) -> pd.DataFrame:
    """The health model's usual value of ``metric`` for each bucket [start, start + bucket),
    the last one cut at ``until`` like the values."""
    columns = ["bucket", "expected", "low", "high"]
    if metric not in BASELINE_METRICS or starts.empty:
        return pd.DataFrame({"bucket": starts, "expected": math.nan, "low": math.nan,
                             "high": math.nan}, columns=columns)
    ends = (starts + bucket).where(starts + bucket <= until, pd.Timestamp(until))
    first, end = starts.min(), ends.max()
    metrics = store.query(
        "SELECT account_id, region, bus, rule, metric, ts, value FROM event_metrics "
        "WHERE account_id = ? AND region = ? AND bus = ? AND rule = ? AND metric = ? "
        "AND ts >= ? AND ts < ?",
        [key.account_id, key.region, key.bus, key.rule, metric,
         first - band_history(health), end])
    windows = pd.DataFrame({"account_id": key.account_id, "region": key.region,
                            "bus": key.bus, "rule": key.rule, "start": starts, "end": ends})
    band = usual_band(metrics, windows, health)
    band = band[band["metric"] == metric].rename(columns={"start": "bucket"})
    return pd.DataFrame({"bucket": starts}).merge(
        band[columns], on="bucket", how="left")[columns]


def _utc(value: object) -> pd.Timestamp:
    stamp = pd.Timestamp(value)  # type: ignore[arg-type]
    return stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _floor(moment: datetime, step: timedelta) -> datetime:
    """``moment`` rounded down to a multiple of ``step`` since the Unix epoch (UTC)."""
    seconds = step.total_seconds()
    return datetime.fromtimestamp(math.floor(moment.timestamp() / seconds) * seconds, UTC)


def metric_choices() -> Sequence[str]:
    """Metrics the time-series chart offers, MatchedEvents first."""
    return RULE_METRICS
