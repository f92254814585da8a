"""The event-flow health model: pure functions from stored frames to one verdict per rule.

Nothing here reads the store or the clock: callers pass the frames and ``now``
(:mod:`orgscope.health.update` is the I/O edge). docs/health.md explains each verdict, the
metrics behind it and what to do about it.

Inputs (the stored datasets' columns; extra columns are ignored):

* ``rules``: the latest inventory (account_id, region, bus, rule, state, event_pattern,
  schedule_expression, dlq_arns, collected_at);
* ``metrics``: ``event_metrics`` rows (account_id, region, bus, rule, metric, ts, value), one
  per period; account-level PutEvents* rows have null bus and rule. Count metrics missing for
  a period inside the read range mean 0 (AWS omits zeros);
* ``dlq``: ``dlq_depth`` readings (queue_arn, ts, visible, in_flight);
* ``accounts``: ``accounts`` rows (account_id, name, team, reachable, reason, checked_at);
* ``runs``: ``runs`` rows of the metrics collector (collector, account_id, region,
  started_at, status, error);
* ``buses``: ``event_buses`` snapshots (account_id, region, bus, allowed_principals,
  collected_at), the latest and earlier ones (see :func:`producers.policy_removals`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from orgscope.config import HealthConfig
from orgscope.datasets import RULE_HEALTH, VERDICTS, activity_metric
from orgscope.durations import duration_text
from orgscope.health.producers import (
    PUT_CALLS,
    PUT_ENTRIES,
    PUT_FAILED_CALLS,
    PUT_FAILED_ENTRIES,
    PUT_METRICS,
    latest_snapshot,
    policy_removals,
    source_producers,
    tuples,
)
from orgscope.patterns import pattern_sources
from orgscope.rule_globs import first_match

log = logging.getLogger(__name__)

#: With a producer known to have lost its PutEvents, a rule expecting at least this many events
#: in the window and missing them is SILENT, however quiet it usually is.
MIN_EXPECTED_WITH_PRODUCER_LOSS = 1.0

KEY: list[str] = ["account_id", "region", "bus", "rule"]
HOUR = timedelta(hours=1)
WEEK = timedelta(days=7)
DEFAULT_PERIOD = timedelta(minutes=5)
#: The collector whose successful runs say a rule's metrics are fresh.
METRICS_COLLECTOR = "metrics"

MATCHED = "MatchedEvents"
TRIGGERED = "TriggeredRules"
LATENCY = "IngestionToInvocationStartLatency"
#: Metrics with a learned baseline: the two "how much arrived" counts, and latency.
BASELINE_METRICS: tuple[str, ...] = (MATCHED, TRIGGERED, LATENCY)
#: Window metrics the verdicts read (sums, except latency: the mean of the period averages).
WINDOW_METRICS: tuple[str, ...] = (
    MATCHED, TRIGGERED, "Invocations", "FailedInvocations", "ThrottledRules",
    "InvocationAttempts", "RetryInvocationAttempts", "InvocationsSentToDlq",
    "InvocationsFailedToBeSentToDlq", "DeadLetterInvocations", LATENCY,
)

_BASELINE_COLUMNS = [*KEY, "metric", "method", "expected", "samples", "bucket",
                     "history_start"]
_WINDOW_COLUMNS = ["account_id", "region", "start", "end", "newest"]


# --- small helpers ---------------------------------------------------------------------------


def _utc(value: datetime | pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _num(value: float) -> str:
    """Counts as people read them: 212, 3.5, 0."""
    if not math.isfinite(value):
        return "?"
    if value >= 10 or float(value).is_integer():
        return f"{round(value):,}"
    return f"{value:.1f}"


def _clock(stamp: pd.Timestamp | datetime) -> str:
    return f"{_utc(stamp):%H:%M} UTC"


def _bucket_label(bucket: pd.Timestamp) -> str:
    return f"{bucket:%a %H:00} UTC"


def fallback_lookback(cfg: HealthConfig) -> timedelta:
    """How far back the short-history fallback averages: min_history, and at least a week."""
    return max(cfg.min_history, WEEK)


def _split(metrics: pd.DataFrame, now: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metrics up to ``now`` -> (rule rows, account-level rows), ts as UTC timestamps."""
    frame = metrics[["account_id", "region", "bus", "rule", "metric", "ts", "value"]]
    frame = frame.assign(ts=pd.to_datetime(frame["ts"], utc=True),
                         value=pd.to_numeric(frame["value"], errors="coerce"))
    frame = frame[frame["ts"] <= now]
    is_rule = frame["rule"].notna()
    rule_rows = frame[is_rule].assign(bus=frame.loc[is_rule, "bus"].fillna("default"))
    # one integer id per rule: grouping on it is far cheaper than on four string columns
    rule_rows = rule_rows.assign(rid=rule_rows.groupby(KEY, sort=False).ngroup())
    return rule_rows, frame[~is_rule]


# --- windows and baselines ---------------------------------------------------------------------


def evaluation_windows(metrics: pd.DataFrame, now: datetime, cfg: HealthConfig,
                       period: timedelta = DEFAULT_PERIOD) -> pd.DataFrame:
    """The evaluation window of each (account, region) with metrics.

    ``metrics``: ``event_metrics`` rows. The window ends with the newest period stored for the
    account and region (its start + ``period``, at most ``now``), so a collector one period
    behind does not read as silence, and lasts ``cfg.window``.

    Returns columns account_id, region, start, end, newest (the newest stored period start).
    """
    stamp = _utc(now)
    rule_rows, account_rows = _split(metrics, stamp)
    return _windows(rule_rows, account_rows, stamp, cfg, period)


def _windows(rule_rows: pd.DataFrame, account_rows: pd.DataFrame, stamp: pd.Timestamp,
             cfg: HealthConfig, period: timedelta) -> pd.DataFrame:
    oldest = stamp - pd.Timedelta(cfg.stale_after) - pd.Timedelta(period)
    recent = [frame[frame["ts"] >= oldest] for frame in (rule_rows, account_rows)]
    newest = pd.concat([frame.groupby(["account_id", "region"])["ts"].max()
                        for frame in recent if not frame.empty] or [pd.Series(dtype=object)])
    if newest.empty:
        return pd.DataFrame(columns=_WINDOW_COLUMNS)
    newest = newest.groupby(level=[0, 1]).max().rename("newest").reset_index()
    end = newest["newest"] + pd.Timedelta(period)
    end = end.where(end <= stamp, stamp)
    result: pd.DataFrame = newest.assign(end=end, start=end - pd.Timedelta(cfg.window))
    return result[_WINDOW_COLUMNS]


def _with_windows(keys: pd.DataFrame, windows: pd.DataFrame, now: pd.Timestamp,
                  cfg: HealthConfig) -> pd.DataFrame:
    """``keys`` plus start/end of their (account, region) window; [now - window, now) if none."""
    merged = keys.merge(windows[["account_id", "region", "start", "end"]],
                        on=["account_id", "region"], how="left")
    merged["end"] = pd.to_datetime(merged["end"], utc=True).fillna(now)
    merged["start"] = pd.to_datetime(merged["start"], utc=True).fillna(
        now - pd.Timedelta(cfg.window))
    return merged


def _seconds(delta: pd.Series) -> pd.Series:
    result: pd.Series = delta.dt.total_seconds()
    return result


def baselines(metrics: pd.DataFrame, now: datetime, cfg: HealthConfig,
              windows: pd.DataFrame | None = None,
              period: timedelta = DEFAULT_PERIOD) -> pd.DataFrame:
    """Each rule's usual value of MatchedEvents, TriggeredRules and latency for its window.

    ``metrics``: ``event_metrics`` rows; ``windows``: from :func:`evaluation_windows`
    (computed when None).

    Method, per rule and metric:

    * ``hour_of_week`` when the rule has at least ``cfg.min_history`` of history and at least
      one earlier week holds the same hour of week (the hour the window's midpoint falls in):
      the median over the last ``cfg.baseline_weeks`` weeks of that hour's sum, scaled to the
      window length (counts), or the median of the hour's mean (latency; NaN when the rule
      had no invocations at that hour). A week counts when the rule already had data at the
      start of that hour; counts missing inside it mean 0. All of a rule's baselines use the
      same method.
    * ``trailing_average`` otherwise: the rule's own average rate over its history before the
      window (at most :func:`fallback_lookback` back), scaled to the window (counts), or the
      median of the period values (latency).
    * ``none`` when there is no history before the window.

    Returns columns account_id, region, bus, rule, metric, method, expected (events per window
    for counts, milliseconds for latency; NaN for ``none``), samples (weeks used, or periods
    averaged), bucket (the hour-of-week bucket's start this window maps to), history_start
    (the rule's first stored period).
    """
    stamp = _utc(now)
    rule_rows, account_rows = _split(metrics, stamp)
    if windows is None:
        windows = _windows(rule_rows, account_rows, stamp, cfg, period)
    return _baselines(rule_rows, windows, stamp, cfg)


def _baselines(rule_rows: pd.DataFrame, windows: pd.DataFrame, now: pd.Timestamp,
               cfg: HealthConfig) -> pd.DataFrame:
    if rule_rows.empty:
        return pd.DataFrame(columns=_BASELINE_COLUMNS)
    keys = _rule_keys(rule_rows)
    keys = _with_windows(keys, windows, now, cfg).assign(kid=lambda k: k["rid"], as_of=now)
    return _usual_values(rule_rows, keys, cfg)[_BASELINE_COLUMNS]


def _rule_keys(rule_rows: pd.DataFrame) -> pd.DataFrame:
    """One row per rule of ``rule_rows``: rid, history_start (its first stored period), KEY."""
    keys = rule_rows.groupby("rid")["ts"].min().rename("history_start").reset_index()
    return keys.merge(rule_rows.drop_duplicates("rid")[["rid", *KEY]], on="rid")


def usual_band(metrics: pd.DataFrame, windows: pd.DataFrame, cfg: HealthConfig) -> pd.DataFrame:
    """The usual values of rules over windows of their own, by the same function that gives a
    verdict its baselines (:func:`baselines`): what a verdict judged at each window's end
    would have expected in that window. The Event-flow chart draws its band from this.

    ``metrics``: ``event_metrics`` rows of the rules, from at least
    :func:`band_history` before the first window; ``windows``: account_id, region, bus, rule,
    start, end (any number per rule).

    Returns ``windows``' columns and metric, method, expected (as in :func:`baselines`), low
    and high (the 10th and 90th percentile of the weeks the hour-of-week median is taken
    over, scaled alike; NaN for the other methods), samples; one row per window and
    BASELINE_METRICS metric of a rule with metrics.
    """
    columns = [*KEY, "start", "end", "metric", "method", "expected", "low", "high", "samples"]
    if windows.empty or metrics.empty:
        return pd.DataFrame(columns=columns)
    wanted = windows[[*KEY, "start", "end"]].assign(
        start=pd.to_datetime(windows["start"], utc=True),
        end=pd.to_datetime(windows["end"], utc=True))
    rule_rows, _ = _split(metrics, _utc(wanted["end"].max()))
    if rule_rows.empty:
        return pd.DataFrame(columns=columns)
    keys = _rule_keys(rule_rows).merge(wanted, on=KEY)
    keys = keys.assign(kid=np.arange(len(keys)), as_of=keys["end"])
    return _usual_values(rule_rows, keys, cfg)[columns]


def band_history(cfg: HealthConfig) -> timedelta:
    """How much history before a window :func:`usual_band` reads (the hour-of-week weeks
    and the fallback span)."""
    return max(WEEK * cfg.baseline_weeks, fallback_lookback(cfg))


def _usual_values(rule_rows: pd.DataFrame, keys: pd.DataFrame, cfg: HealthConfig
                  ) -> pd.DataFrame:
    """The baselines of ``keys``: one row per window (kid) of a rule (rid), with start, end,
    as_of (when it is judged) and history_start; see :func:`baselines` for the method."""
    keys = keys.reset_index(drop=True)
    keys["bucket"] = (keys["start"] + (keys["end"] - keys["start"]) / 2).dt.floor("h")
    keys["hours"] = _seconds(keys["end"] - keys["start"]) / HOUR.total_seconds()
    week_s = WEEK.total_seconds()
    span_s = _seconds(keys["bucket"] - keys["history_start"])
    keys["weeks"] = np.clip(np.floor(span_s / week_s), 0, cfg.baseline_weeks).astype(int)
    keys["eligible"] = (keys["weeks"] >= 1) & (
        _seconds(keys["as_of"] - keys["history_start"]) >= cfg.min_history.total_seconds())
    rows = rule_rows[rule_rows["metric"].isin(BASELINE_METRICS)
                     & _maybe_needed(rule_rows["ts"], keys, cfg)]
    rows = rows[["rid", "metric", "ts", "value"]]
    how = _hour_of_week(keys, _weekly(rows, keys, cfg), cfg)
    trail = _trailing(keys, rows, cfg)

    merged = trail.merge(how, on=["kid", "metric"], how="left", suffixes=("_trail", "_how"))
    merged = merged.merge(keys.drop(columns=["bucket", "history_start"]), on="kid")
    # one method per rule: an eligible rule's latency with no samples at this hour stays unknown
    use_how = merged["eligible"].astype(bool)
    merged["method"] = np.where(use_how, "hour_of_week",
                                np.where(merged["expected_trail"].notna(), "trailing_average",
                                         "none"))
    merged["expected"] = merged["expected_how"].where(use_how, merged["expected_trail"])
    merged["low"] = merged["low"].where(use_how)
    merged["high"] = merged["high"].where(use_how)
    merged["samples"] = merged["samples_how"].where(use_how, merged["samples_trail"]) \
        .fillna(0).astype(int)
    return merged.reset_index(drop=True)


def _weekly(rows: pd.DataFrame, keys: pd.DataFrame, cfg: HealthConfig) -> pd.DataFrame:
    """Sum and mean of each window's hour-of-week bucket in each earlier week 1..weeks:
    index (kid, metric, week)."""
    wanted = pd.concat(
        [keys.loc[keys["weeks"] >= week, ["kid", "rid"]].assign(
            week=week, hour=keys["bucket"] - pd.Timedelta(WEEK * week))
         for week in range(1, cfg.baseline_weeks + 1)], ignore_index=True)
    near = pd.Series(False, index=rows.index)
    for week in range(1, cfg.baseline_weeks + 1):  # cheap bounds before flooring every row
        shift = pd.Timedelta(WEEK * week)
        near |= (rows["ts"] >= keys["bucket"].min() - shift) & \
            (rows["ts"] < keys["bucket"].max() - shift + pd.Timedelta(HOUR))
    hourly = rows[near].assign(hour=rows.loc[near, "ts"].dt.floor("h"))
    joined = hourly.merge(wanted, on=["rid", "hour"])
    return joined.groupby(["kid", "metric", "week"])["value"].agg(["sum", "mean"])


def _later(first: pd.Series, second: pd.Series) -> pd.Series:
    """Element-wise the later of two timestamp series (np.maximum iterates tz-aware ones)."""
    return first.where(first >= second, second)


def _maybe_needed(ts: pd.Series, keys: pd.DataFrame, cfg: HealthConfig) -> pd.Series:
    """A cheap superset of the rows any rule's baseline reads: the hour-of-week buckets and
    the fallback span, bounded over all windows at once (before the per-rule merge)."""
    if keys.empty:
        return pd.Series(False, index=ts.index)
    first_bucket, last_bucket = keys["bucket"].min(), keys["bucket"].max()
    needed: pd.Series = (ts >= keys["start"].min() - pd.Timedelta(fallback_lookback(cfg))) & \
        (ts < keys["start"].max())
    for week in range(1, cfg.baseline_weeks + 1):
        shift = pd.Timedelta(WEEK * week)
        needed |= (ts >= first_bucket - shift) & (ts < last_bucket - shift + pd.Timedelta(HOUR))
    return needed


def _hour_of_week(keys: pd.DataFrame, weekly: pd.DataFrame, cfg: HealthConfig) -> pd.DataFrame:
    """Median (and 10th/90th percentile) over the valid weeks of each bucket (zero-filled
    sums, scaled to the window; latency means)."""
    eligible = keys[keys["eligible"]]
    out = []
    for metric in BASELINE_METRICS:
        grid = eligible[["kid", "weeks", "hours"]].assign(metric=metric)
        if grid.empty:
            continue
        column = "mean" if metric == LATENCY else "sum"
        table = grid.merge(_by_week(weekly, column, metric, cfg.baseline_weeks),
                           on=["kid", "metric"], how="left")
        matrix = table[list(range(1, cfg.baseline_weeks + 1))].to_numpy(dtype=float)
        valid = np.arange(1, cfg.baseline_weeks + 1)[None, :] <= table["weeks"].to_numpy()[:, None]
        if metric != LATENCY:
            matrix = np.where(np.isnan(matrix), 0.0, matrix)  # zero-filling inside history
        matrix = np.where(valid, matrix, np.nan)
        counted = (~np.isnan(matrix)).sum(axis=1)
        median, low, high = (np.full(len(matrix), np.nan) for _ in range(3))
        some = counted > 0
        if some.any():
            with np.errstate(all="ignore"):
                median[some] = np.nanmedian(matrix[some], axis=1)
                low[some], high[some] = np.nanquantile(matrix[some], [0.1, 0.9], axis=1)
        if metric != LATENCY:
            scale = table["hours"].to_numpy(dtype=float)
            median, low, high = median * scale, low * scale, high * scale
        out.append(table[["kid", "metric"]].assign(expected=median, low=low, high=high,
                                                   samples=counted))
    if not out:
        return pd.DataFrame(columns=["kid", "metric", "expected", "low", "high", "samples"])
    frame = pd.concat(out, ignore_index=True)
    return frame[frame["expected"].notna()]


def _by_week(weekly: pd.DataFrame, column: str, metric: str, weeks: int) -> pd.DataFrame:
    """One row per window of ``metric``, one column per week 1..weeks (NaN without rows)."""
    week_columns = list(range(1, weeks + 1))
    if weekly.empty:
        return pd.DataFrame(columns=["kid", "metric", *week_columns])
    values = weekly[column].unstack("week").reindex(columns=week_columns)
    values = values[values.index.get_level_values("metric") == metric]
    values.columns = week_columns
    return values.reset_index()


def _trailing(keys: pd.DataFrame, rows: pd.DataFrame, cfg: HealthConfig) -> pd.DataFrame:
    """Average rate before the window, scaled to it (counts); median value (latency).

    Over [max(history_start, start - fallback_lookback), start) of each window; computed for
    the windows without an hour-of-week baseline (the others never use it: NaN).
    """
    low = _later(keys["history_start"], keys["start"] - pd.Timedelta(fallback_lookback(cfg)))
    seconds = _seconds(keys["start"] - low).clip(lower=0)
    stats = _span_stats(keys[~keys["eligible"]], low, rows)
    grid = pd.concat([keys[["kid", "bucket", "history_start", "hours"]].assign(
        metric=m, seconds=seconds) for m in BASELINE_METRICS], ignore_index=True)
    table = grid.merge(stats, on=["kid", "metric"], how="left")
    is_count = table["metric"] != LATENCY
    rate = table["sum"].fillna(0.0) / table["seconds"].where(table["seconds"] > 0)
    expected = np.where(is_count, rate * table["hours"] * HOUR.total_seconds(),
                        table["median"])
    return table.assign(expected=expected, samples=table["count"].fillna(0))[
        ["kid", "metric", "bucket", "history_start", "expected", "samples"]]


def _span_stats(keys: pd.DataFrame, low: pd.Series, rows: pd.DataFrame) -> pd.DataFrame:
    """Sum, median and count of each metric's values in [low, start) of each key's rule."""
    columns = ["kid", "metric", "sum", "median", "count"]
    if keys.empty:
        return pd.DataFrame(columns=columns)
    rows = rows[rows["rid"].isin(keys["rid"]) & rows["value"].notna()]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    ordered = rows.sort_values(["rid", "metric", "ts"], kind="stable")
    series = {(rid, metric): (group["ts"].to_numpy(dtype="datetime64[ns]").view("int64"),
                              group["value"].to_numpy(dtype=float))
              for (rid, metric), group in ordered.groupby(["rid", "metric"], sort=False)}
    out = []
    for kid, rid, start, since in zip(keys["kid"], keys["rid"], keys["start"],
                                      low.loc[keys.index], strict=True):
        for metric in BASELINE_METRICS:
            found = series.get((rid, metric))
            if found is None:
                continue
            times, values = found
            lo, hi = np.searchsorted(times, [_utc(since).value, _utc(start).value])
            part = values[lo:hi]
            out.append((kid, metric, float(part.sum()),
                        float(np.median(part)) if len(part) else math.nan, len(part)))
    return pd.DataFrame(out, columns=columns)


def needs_fallback(rules: pd.DataFrame, metrics: pd.DataFrame, now: datetime,
                   cfg: HealthConfig, period: timedelta = DEFAULT_PERIOD) -> bool:
    """Whether a rule of ``rules`` (the inventory) with metrics has no hour-of-week baseline
    in ``metrics`` (the window and the hour-of-week buckets), so the fallback span must be
    read too."""
    base = baselines(metrics, now, cfg, period=period)
    if base.empty or rules.empty:
        return False
    base = base[base["metric"] == MATCHED].merge(
        rules[KEY].assign(bus=rules["bus"].fillna("default")), on=KEY)
    return bool((base["method"] != "hour_of_week").any())


# --- the window's numbers ----------------------------------------------------------------------


def _earliest_start(windows: pd.DataFrame, now: pd.Timestamp, cfg: HealthConfig
                    ) -> pd.Timestamp:
    """The earliest window start: rows before it are in no window."""
    default = now - pd.Timedelta(cfg.window)
    if windows.empty:
        return default
    return min(default, pd.Timestamp(windows["start"].min()))


def window_totals(rule_rows: pd.DataFrame, windows: pd.DataFrame, now: pd.Timestamp,
                  cfg: HealthConfig) -> pd.DataFrame:
    """Per rule: each WINDOW_METRICS total over its window (NaN latency when none), and
    ``rows``, how many metric rows the window holds (0 = nothing stored)."""
    keys = rule_rows.drop_duplicates("rid")[KEY]
    rows = _with_windows(rule_rows[rule_rows["ts"] >= _earliest_start(windows, now, cfg)],
                         windows, now, cfg)
    rows = rows[(rows["ts"] >= rows["start"]) & (rows["ts"] < rows["end"])]
    sums = rows[rows["metric"] != LATENCY].pivot_table(
        index=KEY, columns="metric", values="value", aggfunc="sum")
    latency = rows[rows["metric"] == LATENCY].groupby(KEY)["value"].mean().rename(LATENCY)
    counts = rows.groupby(KEY).size().rename("rows")
    table = keys.set_index(KEY).join(sums).join(latency).join(counts)
    for metric in WINDOW_METRICS:
        if metric not in table:
            table[metric] = np.nan
    table[[m for m in WINDOW_METRICS if m != LATENCY]] = \
        table[[m for m in WINDOW_METRICS if m != LATENCY]].fillna(0.0)
    table["rows"] = table["rows"].fillna(0).astype(int)
    return table[[*WINDOW_METRICS, "rows"]].reset_index()


def producer_totals(account_rows: pd.DataFrame, windows: pd.DataFrame, now: pd.Timestamp,
                    cfg: HealthConfig) -> pd.DataFrame:
    """Per (account_id, region): the PutEvents sums over that account's window."""
    rows = _with_windows(account_rows[account_rows["ts"] >= _earliest_start(windows, now, cfg)],
                         windows, now, cfg)
    rows = rows[(rows["ts"] >= rows["start"]) & (rows["ts"] < rows["end"])
                & rows["metric"].isin(PUT_METRICS)]
    table = rows.pivot_table(index=["account_id", "region"], columns="metric", values="value",
                             aggfunc="sum")
    for metric in PUT_METRICS:
        if metric not in table:
            table[metric] = 0.0
    return table[list(PUT_METRICS)].fillna(0.0).reset_index()


def dlq_growth(dlq: pd.DataFrame, now: datetime, cfg: HealthConfig) -> pd.DataFrame:
    """Growth of each dead-letter queue over [now - window, now].

    ``dlq``: ``dlq_depth`` readings. Messages = visible + in_flight. Growth is the newest
    reading minus the newest one at or before the window's start (or, with none that old, the
    first reading inside the window).

    Returns columns queue_arn, queue, growth, messages, read_at (the newest reading).
    """
    columns = ["queue_arn", "queue", "growth", "messages", "read_at"]
    if dlq.empty:
        return pd.DataFrame(columns=columns)
    stamp = _utc(now)
    start = stamp - pd.Timedelta(cfg.window)
    frame = dlq.assign(ts=pd.to_datetime(dlq["ts"], utc=True),
                       messages=dlq["visible"].astype(float)
                       + dlq["in_flight"].astype(float).fillna(0.0))
    frame = frame[frame["ts"] <= stamp].sort_values(["queue_arn", "ts"])
    if frame.empty:
        return pd.DataFrame(columns=columns)
    newest = frame.groupby("queue_arn").last()
    older = frame[frame["ts"] <= start].groupby("queue_arn")["messages"].last()
    inside = frame[frame["ts"] > start].groupby("queue_arn")["messages"].first()
    first = older.combine_first(inside).reindex(newest.index)
    return pd.DataFrame({
        "queue_arn": newest.index, "queue": newest["queue"].to_numpy(),
        "growth": (newest["messages"] - first).to_numpy(dtype=float),
        "messages": newest["messages"].to_numpy(dtype=float),
        "read_at": newest["ts"].to_numpy()})


# --- staleness ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Readability:
    """Why the metrics of one (account, region) cannot be trusted now; empty when they can."""

    unreachable: str | None = None
    runs: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def readability(accounts: pd.DataFrame, runs: pd.DataFrame, now: datetime,
                cfg: HealthConfig) -> dict[tuple[str, str | None], Readability]:
    """Per (account_id, region): unreachable account or stale metrics runs, with reasons.

    ``accounts``: ``accounts`` rows (the newest per account is used); ``runs``: ``runs`` rows
    (only the metrics collector's are read). Keys (account_id, None) carry the account-level
    verdict (present only when unreachable); (account_id, region) the runs verdict (``runs``
    None when fresh). A pair with no runs at all is absent: nothing has read it yet.
    """
    stamp = _utc(now)
    out: dict[tuple[str, str | None], Readability] = {}
    if not accounts.empty:
        frame = accounts.assign(checked_at=pd.to_datetime(accounts["checked_at"], utc=True))
        for row in tuples(latest_snapshot(frame, ("account_id",), "checked_at")):
            if bool(row.reachable):
                continue
            name = f" ({row.name})" if getattr(row, "name", None) else ""
            reason = row.reason if isinstance(row.reason, str) and row.reason else "no reason"
            out[(str(row.account_id), None)] = Readability(
                unreachable=f"account {row.account_id}{name} could not be read at "
                            f"{_clock(row.checked_at)}: {reason}",
                details={"reachable": False, "reason": reason,
                         "checked_at": _utc(row.checked_at).isoformat()})
    if runs.empty:
        return out
    mine = runs[runs["collector"] == METRICS_COLLECTOR]
    mine = mine.assign(started_at=pd.to_datetime(mine["started_at"], utc=True))
    mine = mine[mine["started_at"] <= stamp].sort_values("started_at")
    for (account_id, region), group in mine.groupby(["account_id", "region"], sort=False):
        ok = group[group["status"] == "ok"]
        last = group.iloc[-1]
        last_ok = ok["started_at"].iloc[-1] if not ok.empty else None
        details = {"last_run": last["started_at"].isoformat(), "last_status": last["status"],
                   "last_ok": last_ok.isoformat() if last_ok is not None else None}
        if last_ok is not None and stamp - last_ok <= pd.Timedelta(cfg.stale_after):
            out[(str(account_id), str(region))] = Readability(details=details)
            continue
        failed = ""
        if last["status"] != "ok":
            failed = f"; the last run at {_clock(last['started_at'])} failed: {last['error']}"
        if last_ok is None:
            text = f"no successful metrics read of {account_id}/{region} yet{failed}"
        else:
            text = (f"no successful metrics read of {account_id}/{region} for "
                    f"{duration_text(stamp - last_ok)} (last at {_clock(last_ok)}; stale after "
                    f"{duration_text(cfg.stale_after)}){failed}")
        out[(str(account_id), str(region))] = Readability(runs=text, details=details)
    return out


# --- the verdict of one rule -------------------------------------------------------------------


@dataclass
class _Findings:
    """Reasons found for one rule, by the verdict they support."""

    reasons: dict[str, list[str]] = field(default_factory=lambda: {v: [] for v in VERDICTS})

    def add(self, verdict: str, reason: str) -> None:
        self.reasons[verdict].append(reason)

    def verdict(self) -> str:
        found = [v for v in VERDICTS if self.reasons[v]]
        return found[-1] if found else "OK"

    def ordered(self) -> list[str]:
        return [r for v in reversed(VERDICTS) for r in self.reasons[v]]

    def fired(self) -> list[str]:
        return [v for v in reversed(VERDICTS) if self.reasons[v]]


@dataclass(frozen=True)
class HourlyRules:
    """Rules the metrics collector reads in its full tier only (``[collectors.metrics]
    full_only_rules``): between full reads they have no metrics in the window, and that is
    not staleness while their newest is younger than ``max_age`` (``full_interval`` plus
    ``[health] stale_after``)."""

    patterns: tuple[str, ...] = ()
    max_age: timedelta = timedelta(0)

    def pattern(self, rule: Any) -> str | None:
        return first_match(self.patterns, str(rule.account_id), str(rule.region),
                           str(rule.bus), str(rule.rule))


@dataclass(frozen=True)
class _Context:
    """Everything evaluate() precomputed, shared by every rule."""

    now: pd.Timestamp
    cfg: HealthConfig
    windows: dict[tuple[str, str], tuple[pd.Timestamp, pd.Timestamp]]
    totals: dict[tuple[str, str, str, str], dict[str, float]]
    base: dict[tuple[str, str, str, str, str], dict[str, Any]]
    dlq: dict[str, dict[str, Any]]
    readable: dict[tuple[str, str | None], Readability]
    put: dict[tuple[str, str], dict[str, float]]
    removals: pd.DataFrame
    accounts: pd.DataFrame
    names: dict[str, str]
    hourly: HourlyRules = field(default_factory=HourlyRules)


def _window_phrase(ctx: _Context, end: pd.Timestamp) -> str:
    if ctx.now - end < pd.Timedelta(minutes=1):
        return f"in the last {duration_text(ctx.cfg.window)}"
    return f"in the {duration_text(ctx.cfg.window)} to {_clock(end)}"


def _usual(base: dict[str, Any], cfg: HealthConfig) -> str:
    if base["method"] == "hour_of_week":
        return f"at this hour ({_bucket_label(base['bucket'])})"
    return (f"by its own average over the last {duration_text(base['history'])} "
            f"(hour-of-week baselines start after {duration_text(max(cfg.min_history, WEEK))} "
            "of history)")


def _account_label(ctx: _Context, account_id: str) -> str:
    name = ctx.names.get(account_id)
    return f"{account_id} ({name})" if name else account_id


def _producer_findings(ctx: _Context, rule: Any, details: dict[str, Any]
                       ) -> tuple[bool, list[str]]:
    """(producer lost?, reasons) for the sources the rule's pattern names."""
    reasons: list[str] = []
    lost = False
    loss_share = 1.0 - ctx.cfg.silent_ratio
    reported: list[dict[str, Any]] = []
    for source in pattern_sources(rule.event_pattern):
        for producer in source_producers(source, ctx.accounts):
            put = ctx.put.get((producer, rule.region), {})
            entries, failed = put.get(PUT_ENTRIES, 0.0), put.get(PUT_FAILED_ENTRIES, 0.0)
            calls, failed_calls = put.get(PUT_CALLS, 0.0), put.get(PUT_FAILED_CALLS, 0.0)
            removed = ctx.removals[(ctx.removals["producer"] == producer)
                                   & (ctx.removals["region"] == rule.region)]
            record = {"source": source, "account_id": producer, "entries": entries,
                      "failed_entries": failed, "calls": calls, "failed_calls": failed_calls,
                      "removed_from": [f"{r.account_id}/{r.bus}" for r in
                                       tuples(removed)]}
            reported.append(record)
            who = f"producer {_account_label(ctx, producer)} of source {source}"
            if failed > 0 or failed_calls > 0:
                what = (f"{_num(failed)} of {_num(entries)} PutEvents entries failed"
                        if failed > 0 else
                        f"{_num(failed_calls)} of {_num(calls)} PutEvents calls failed")
                reasons.append(f"{who}: {what} {_window_phrase(ctx, ctx.now)}")
                if (entries > 0 and failed >= loss_share * entries) or \
                        (calls > 0 and failed_calls >= loss_share * calls):
                    lost = True
            for row in tuples(removed):
                reasons.append(
                    f"{who} is no longer allowed to PutEvents on bus {row.bus} "
                    f"({_account_label(ctx, str(row.account_id))}): its policy listed it at "
                    f"{_clock(row.last_allowed_at)}, not at {_clock(row.removed_by)}")
                lost = True
    details["producers"] = reported
    return lost, reasons


def _silent(ctx: _Context, rule: Any, totals: dict[str, float], *, findings: _Findings,
            details: dict[str, Any], end: pd.Timestamp) -> None:
    key = (rule.account_id, rule.region, rule.bus, rule.rule)
    metric = activity_metric(rule.event_pattern, rule.schedule_expression)
    scheduled = metric == TRIGGERED
    matched = totals.get(metric, 0.0)
    base = ctx.base.get((*key, metric))
    expected = float(base["expected"]) if base is not None else math.nan
    details["matched"] = {"metric": metric, "count": matched,
                          "expected": expected if math.isfinite(expected) else None,
                          "method": base["method"] if base is not None else "none",
                          "samples": int(base["samples"]) if base is not None else 0,
                          "bucket": _bucket_label(base["bucket"]) if base is not None else None}
    lost, producer_reasons = _producer_findings(ctx, rule, details)
    # Silence is news only when enough was expected to tell it from chance, unless a producer
    # of the rule's sources demonstrably lost its events: then one expected event is enough.
    floor = MIN_EXPECTED_WITH_PRODUCER_LOSS if lost else ctx.cfg.min_expected_events
    if not (math.isfinite(expected) and expected >= floor):
        return
    low = matched < ctx.cfg.silent_ratio * expected
    if not (low or (lost and matched < expected)):
        return
    verb = "triggered" if scheduled else "matched"
    assert base is not None
    findings.add("SILENT", f"{verb} {_num(matched)} events {_window_phrase(ctx, end)}; usually "
                           f"{_num(expected)} {_usual(base, ctx.cfg)}")
    for reason in producer_reasons:
        findings.add("SILENT", reason)
    if low and not producer_reasons:
        _unmapped_hints(ctx, rule, findings)


def _unmapped_hints(ctx: _Context, rule: Any, findings: _Findings) -> None:
    """For a silent rule whose sources map to no account: failing producers in its region,
    and principals removed from its own bus, as possible causes."""
    sources = pattern_sources(rule.event_pattern)
    if not sources or any(source_producers(s, ctx.accounts) for s in sources):
        return
    for (account_id, region), put in sorted(ctx.put.items()):
        if region == rule.region and put.get(PUT_FAILED_ENTRIES, 0.0) > 0:
            findings.add("SILENT", f"possible cause: account {_account_label(ctx, account_id)}"
                         f" had {_num(put[PUT_FAILED_ENTRIES])} failed PutEvents entries "
                         f"{_window_phrase(ctx, ctx.now)} (source {', '.join(sources)} is not "
                         "mapped to an account)")
    own = ctx.removals[(ctx.removals["account_id"] == rule.account_id)
                       & (ctx.removals["region"] == rule.region)
                       & (ctx.removals["bus"] == rule.bus)]
    for row in tuples(own):
        findings.add("SILENT", f"possible cause: {_account_label(ctx, str(row.producer))} was "
                     f"removed from bus {rule.bus}'s policy (listed at "
                     f"{_clock(row.last_allowed_at)}, not at {_clock(row.removed_by)})")


def _failing(ctx: _Context, rule: Any, totals: dict[str, float], *, findings: _Findings,
             details: dict[str, Any], end: pd.Timestamp) -> None:
    cfg, when = ctx.cfg, _window_phrase(ctx, end)
    failed = totals.get("FailedInvocations", 0.0)
    if failed >= cfg.failed_invocations:
        findings.add("FAILING", f"{_num(failed)} failed invocations {when} (of "
                                f"{_num(totals.get('Invocations', 0.0))} invocations; "
                                f"threshold {cfg.failed_invocations})")
    dropped = totals.get("DeadLetterInvocations", 0.0)
    if dropped >= cfg.failed_invocations:
        findings.add("FAILING", f"{_num(dropped)} events could not be delivered and had no "
                                f"dead-letter queue (DeadLetterInvocations) {when}")
    lost = totals.get("InvocationsFailedToBeSentToDlq", 0.0)
    if lost >= cfg.failed_invocations:
        findings.add("FAILING", f"{_num(lost)} failed events could not be sent to the "
                                f"dead-letter queue {when}")
    queues = []
    for arn in _dlq_arns(rule.dlq_arns):
        reading = ctx.dlq.get(arn)
        if reading is None:
            queues.append({"queue_arn": arn, "read": False})
            continue
        queues.append({"queue_arn": arn, "growth": reading["growth"],
                       "messages": reading["messages"],
                       "read_at": _utc(reading["read_at"]).isoformat()})
        if reading["growth"] >= cfg.dlq_growth:
            findings.add("FAILING", f"dead-letter queue {reading['queue']} grew by "
                                    f"{_num(reading['growth'])} messages in the last "
                                    f"{duration_text(cfg.window)} (now "
                                    f"{_num(reading['messages'])}; threshold {cfg.dlq_growth})")
    details["dlq"] = queues


def _dlq_arns(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    return [str(v) for v in value]


def _degraded(ctx: _Context, rule: Any, totals: dict[str, float], *, findings: _Findings,
              details: dict[str, Any], end: pd.Timestamp) -> None:
    cfg, when = ctx.cfg, _window_phrase(ctx, end)
    throttled = totals.get("ThrottledRules", 0.0)
    if throttled >= cfg.throttled:
        findings.add("DEGRADED", f"throttled {_num(throttled)} times {when} "
                                 f"(threshold {cfg.throttled})")
    attempts = totals.get("InvocationAttempts", 0.0)
    retries = totals.get("RetryInvocationAttempts", 0.0)
    ratio = retries / attempts if attempts > 0 else 0.0
    details["retry_ratio"] = round(ratio, 4)
    if retries > 0 and ratio >= cfg.retry_ratio:
        findings.add("DEGRADED", f"{ratio:.0%} of invocation attempts were retries "
                                 f"({_num(retries)} of {_num(attempts)}) {when} "
                                 f"(threshold {cfg.retry_ratio:.0%})")
    latency = totals.get(LATENCY, math.nan)
    base = ctx.base.get((rule.account_id, rule.region, rule.bus, rule.rule, LATENCY))
    usual = float(base["expected"]) if base is not None else math.nan
    details["latency_ms"] = {"window": latency if math.isfinite(latency) else None,
                             "usual": usual if math.isfinite(usual) else None,
                             "method": base["method"] if base is not None else "none"}
    if math.isfinite(latency) and math.isfinite(usual) and usual > 0 and \
            latency > cfg.latency_factor * usual:
        assert base is not None
        findings.add("DEGRADED", f"ingestion-to-invocation latency {latency:,.0f} ms {when}; "
                                 f"usually {usual:,.0f} ms {_usual(base, cfg)} "
                                 f"(threshold {cfg.latency_factor:g}x)")


def _stale(ctx: _Context, rule: Any, totals: dict[str, float] | None, *,
           findings: _Findings, details: dict[str, Any], newest: pd.Timestamp | None) -> None:
    account = ctx.readable.get((rule.account_id, None))
    runs = ctx.readable.get((rule.account_id, rule.region)) or Readability(
        runs=f"no successful metrics read of {rule.account_id}/{rule.region} yet",
        details={"last_run": None})
    stale: dict[str, Any] = {}
    if account is not None:
        findings.add("STALE", str(account.unreachable))
        stale["account"] = account.details
    if runs.runs is not None:
        stale["runs"] = runs.details
        if account is None:  # an unreachable account's runs fail for that same reason
            findings.add("STALE", str(runs.runs))
    if totals is None or totals.get("rows", 0) == 0:
        stale["metrics"] = "none in window"
        hourly = ctx.hourly.pattern(rule)
        if hourly is not None and newest is not None and \
                ctx.now - newest <= pd.Timedelta(ctx.hourly.max_age):
            stale["metrics"] = (f"read by the full tier only (full_only_rules {hourly!r}); "
                                f"newest from {_clock(newest)}")
        elif account is None and runs.runs is None:
            where = f"the newest stored is from {_clock(newest)}" if newest is not None \
                else "none are stored for it"
            findings.add("STALE", "no metrics for this rule in the last "
                                  f"{duration_text(ctx.cfg.window)} ({where}; the metrics "
                                  "collector has not read it)")
    if stale:
        details["stale"] = stale


def _judge(ctx: _Context, rule: Any, newest: dict[tuple[str, str, str, str], pd.Timestamp]
           ) -> dict[str, Any]:
    key = (rule.account_id, rule.region, rule.bus, rule.rule)
    start, end = ctx.windows.get((rule.account_id, rule.region),
                                 (ctx.now - pd.Timedelta(ctx.cfg.window), ctx.now))
    findings = _Findings()
    totals = ctx.totals.get(key)
    details: dict[str, Any] = {"window": {"start": start.isoformat(), "end": end.isoformat()},
                               "state": rule.state}
    _stale(ctx, rule, totals, findings=findings, details=details, newest=newest.get(key))
    if rule.state == "DISABLED":
        findings.add("DISABLED", "rule is DISABLED"
                     + (f" (inventory of {_clock(rule.collected_at)})"
                        if pd.notna(rule.collected_at) else ""))
    if totals is not None and totals.get("rows", 0) > 0:
        details["metrics"] = {m: (None if not math.isfinite(v) else v)
                              for m, v in totals.items() if m != "rows"}
        _failing(ctx, rule, totals, findings=findings, details=details, end=end)
        if rule.state != "DISABLED":
            _silent(ctx, rule, totals, findings=findings, details=details, end=end)
        _degraded(ctx, rule, totals, findings=findings, details=details, end=end)
    else:
        _failing(ctx, rule, {}, findings=findings, details=details, end=end)
    details["fired"] = findings.fired()
    return {"account_id": rule.account_id, "region": rule.region, "bus": rule.bus,
            "rule": rule.rule, "verdict": findings.verdict(), "reasons": findings.ordered(),
            "details": json.dumps(details, sort_keys=True, default=str),
            "evaluated_at": ctx.now.to_pydatetime()}


# --- the model ---------------------------------------------------------------------------------


def _records(frame: pd.DataFrame, keys: Iterable[str]) -> dict[Any, dict[str, Any]]:
    keys = list(keys)
    if frame.empty:
        return {}
    records: dict[Any, dict[Any, Any]] = frame.set_index(keys).to_dict("index")
    return {tuple(str(v) for v in k) if isinstance(k, tuple) else str(k): v
            for k, v in records.items()}


def evaluate(  # noqa: PLR0917 - the frames are the model's explicit inputs, by design
        rules: pd.DataFrame, metrics: pd.DataFrame, dlq: pd.DataFrame,
             accounts: pd.DataFrame, runs: pd.DataFrame, buses: pd.DataFrame,
             now: datetime, cfg: HealthConfig,
             period: timedelta = DEFAULT_PERIOD,
             hourly: HourlyRules | None = None) -> pd.DataFrame:
    """One verdict per rule of ``rules``, with its reasons (frames as in the module docstring).

    Verdicts, most severe first (a rule gets the most severe that applies; every reason is
    kept): STALE (account unreachable, no successful metrics run within ``cfg.stale_after``,
    or no metrics stored for the rule in its window), DISABLED (inventory state), FAILING
    (failed invocations, undeliverable events, a target DLQ growing), SILENT (matching far
    below the rule's usual rate, or a producer of its sources losing its PutEvents), DEGRADED
    (throttling, retries, latency above its usual), OK.

    Returns the ``rule_health`` columns: account_id, region, bus, rule, verdict, reasons (list
    of sentences with the numbers, most severe first), details (JSON text: window, metrics,
    baselines, DLQs, producers, staleness, the verdicts that fired), evaluated_at (= ``now``).
    """
    stamp = _utc(now)
    if rules.empty:
        return RULE_HEALTH.empty_frame()
    rule_rows, account_rows = _split(metrics, stamp)
    windows = _windows(rule_rows, account_rows, stamp, cfg, period)
    base = _baselines(rule_rows, windows, stamp, cfg)
    base_lookup = {}
    for row in tuples(base):
        history = stamp - row.history_start
        base_lookup[(row.account_id, row.region, row.bus, row.rule, row.metric)] = {
            "method": row.method, "expected": row.expected, "samples": row.samples,
            "bucket": row.bucket, "history": history}
    newest: dict[Any, Any] = {}
    if not rule_rows.empty:
        latest = rule_rows.groupby("rid")["ts"].max()
        firsts = rule_rows.drop_duplicates("rid")
        names = dict(zip(firsts["rid"], zip(*(firsts[k] for k in KEY), strict=True),
                         strict=True))
        newest = {names[rid]: ts for rid, ts in latest.items()}
    accounts_latest = accounts if accounts.empty else latest_snapshot(
        accounts.assign(checked_at=pd.to_datetime(accounts["checked_at"], utc=True)),
        ("account_id",), "checked_at")
    ctx = _Context(
        now=stamp, cfg=cfg,
        windows={(str(r.account_id), str(r.region)): (r.start, r.end)
                 for r in tuples(windows)},
        totals=_records(window_totals(rule_rows, windows, stamp, cfg), KEY),
        base=base_lookup,
        dlq=_records(dlq_growth(dlq, stamp, cfg), ["queue_arn"]),
        readable=readability(accounts, runs, stamp, cfg),
        put=_records(producer_totals(account_rows, windows, stamp, cfg),
                     ["account_id", "region"]),
        removals=policy_removals(buses),
        accounts=accounts_latest if not accounts_latest.empty else
        pd.DataFrame(columns=["account_id", "name", "team"]),
        names={str(r.account_id): str(r.name) for r in tuples(accounts_latest)}
        if not accounts_latest.empty else {},
        hourly=hourly or HourlyRules(),
    )
    inventory = rules.assign(bus=rules["bus"].fillna("default"))
    for column in ("event_pattern", "schedule_expression", "dlq_arns", "collected_at"):
        if column not in inventory:
            inventory[column] = None
    for column in ("event_pattern", "schedule_expression", "dlq_arns"):
        # a scheduled rule has no pattern (and most rules no schedule): from Parquet that is
        # NaN or NA, which is truthy or refuses bool(); the judges test for None
        values = inventory[column].astype(object)
        inventory[column] = values.where(values.notna(), None)
    judged = [_judge(ctx, rule, newest) for rule in tuples(inventory)]
    result = pd.DataFrame(judged, columns=RULE_HEALTH.columns)
    log.debug("evaluated %d rules: %s", len(result),
              result["verdict"].value_counts().to_dict())
    return result
