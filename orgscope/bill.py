"""The monitoring's own bill: what orgscope's collectors cost in AWS API charges a month.

docs/performance.md, "The monitoring's own bill", explains what is billed, how the usage is
estimated and how each collector's run grows with its interval. Invariants:

* :func:`read_usage` is the one I/O edge (DuckDB over the ``runs`` dataset, one row per
  (collector, account, region)); everything else here is pure and prices that usage at the
  configured intervals (:func:`bill`) or at any other (:func:`collector_monthly`,
  :func:`interval_curve`).
* Prices come from :mod:`orgscope.cost.categories` (shared with the Cost page), never from
  here: GetMetricData metrics, Cost Explorer requests, X-Ray traces, and the S3 GET and
  LIST requests of the cost collector's data export; every other API orgscope calls is
  free ($0).
* How a run's usage follows its interval is each collector's own declaration, its settings
  model's ``pricing()`` (:class:`orgscope.pricing.Pricing`), turned into a :class:`Schedule`
  (``per_run``, ``chunked`` or ``windowed``); scanned X-Ray traces are not capped by
  ``max_traces_per_run``.
* Dollars per month: runs per month are 30 days / interval; the observed run's window is the
  median gap between a key's runs, not the configured interval.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from orgscope.access import UNREACHABLE_PREFIX
from orgscope.config import Config
from orgscope.cost.categories import (
    CLOUDWATCH_PER_METRIC,
    COST_EXPLORER_PER_REQUEST,
    S3_GET_PER_REQUEST,
    S3_LIST_PER_REQUEST,
    XRAY_PER_TRACE,
    ce_requests_sql,
    operation_calls_sql,
)
from orgscope.pricing import Pricing
from orgscope.store import Store

log = logging.getLogger(__name__)

#: The month the bill is priced over.
MONTH = timedelta(days=30)
#: History read_usage looks at by default: three days hold at least three runs of a daily
#: collector.
LOOKBACK = timedelta(days=3)
#: Newest ok runs per key the typical run is the median of.
SAMPLE = 12

USAGE_COLUMNS = [
    "collector", "account_id", "region", "last_started_at", "last_status", "last_error",
    "last_duration_s", "last_api_calls", "runs", "failed_runs", "sampled_runs", "api_calls",
    "metrics_requested", "ce_requests", "traces_retrieved", "duration_s", "gap_s",
    "s3_get_requests", "s3_list_requests",
]

BILL_COLUMNS = [
    "collector", "account_id", "region", "status", "last_started_at", "last_error",
    "last_duration_s", "last_api_calls", "runs", "failed_runs", "api_calls_per_run",
    "metrics_per_run", "ce_requests_per_run", "traces_per_run", "interval_s", "runs_per_month",
    "api_calls_per_month", "cloudwatch_usd", "cost_explorer_usd", "xray_usd", "monthly_usd",
    "s3_usd",
]


#: How a tier of a collector is named in the usage and the bill: "metrics/fast".
TIER_SEPARATOR = "/"


@dataclass(frozen=True)
class Schedule:
    """One collector's schedule, and how its per-run usage follows the interval (its settings
    model's ``pricing()``). A tier of a collector ("metrics/fast") is a schedule of its own;
    ``displaced_by`` is the interval of the tier whose runs take the place of some of its
    runs (the full tier's, for the fast tier)."""

    collector: str
    enabled: bool
    interval: timedelta
    pricing: Pricing = field(default_factory=Pricing)
    displaced_by: timedelta | None = None

    @property
    def base(self) -> str:
        """The collector's name without the tier."""
        return self.collector.split(TIER_SEPARATOR, 1)[0]

    def runs_per_month(self, interval: timedelta) -> float:
        """Runs of this schedule in a 30-day month at ``interval``: for a tier, less the runs
        of the tier that displaces it (never below 0)."""
        runs = runs_per_month(interval)
        if self.displaced_by is not None:
            runs = max(0.0, runs - runs_per_month(self.displaced_by))
        return runs


def schedules(config: Config, collectors: Iterable[str]) -> dict[str, Schedule]:
    """The configured schedule of each named collector or tier ("metrics/fast"), priced as its
    settings model declares (``pricing()``; per run for unknown ones and for tiers: a tier's
    run reads what it reads whatever the interval)."""
    found = {}
    for name in collectors:
        base, _, tier = name.partition(TIER_SEPARATOR)
        settings = config.collector(base)
        pricing = settings.pricing()
        if tier and tier in pricing.tiers:
            interval = pricing.tiers[tier]
            longest = max(pricing.tiers.values())
            # a tier's run reads what it reads whatever the interval; the overlap and chunk
            # stay for what-ifs beyond the tiers (priced_interval)
            found[name] = Schedule(name, settings.enabled, interval,
                                   Pricing(overlap=pricing.overlap, chunk=pricing.chunk),
                                   displaced_by=longest if interval < longest else None)
        else:
            found[name] = Schedule(name, settings.enabled,
                                   settings.run_interval(bool(config.changes.queue_url)),
                                   pricing)
    return found


def base_names(collectors: pd.Series) -> pd.Series:
    """Each usage or bill row's collector without its tier ("metrics/fast" -> "metrics")."""
    return collectors.astype(str).str.split(TIER_SEPARATOR, n=1).str[0]


def superseded(usage: pd.DataFrame) -> pd.Series:
    """Rows of ``usage`` (a :func:`read_usage` frame) of a collector's runs without a tier
    where the same collector, account and region also has tiered runs: runs from before tiers
    were turned on, which the tiers' rows now price."""
    if usage.empty:
        return pd.Series(False, index=usage.index)
    names = usage["collector"].astype(str)
    base = base_names(names)
    tiered = names != base
    keys = set(zip(base[tiered], usage["account_id"][tiered], usage["region"][tiered],
                   strict=True))
    return pd.Series([not t and (b, a, r) in keys for t, b, a, r in
                      zip(tiered, base, usage["account_id"], usage["region"], strict=True)],
                     index=usage.index)


# --- reading the runs (the I/O edge) ---------------------------------------------------------


def sample_windows(config: Config, collectors: Iterable[str],
                   sample: int = SAMPLE) -> dict[str, timedelta]:
    """How far back each collector's typical run is looked for: enough for ``sample`` runs and
    a spare at its configured interval, at least an hour, at most :data:`LOOKBACK`. An X-Ray
    collector running every minute then reads an hour of runs, not three days of them."""
    found = {}
    for name in collectors:
        interval = config.collector(name).interval
        found[name] = min(LOOKBACK, max(timedelta(hours=1), interval * (sample + 2)))
    return found


def read_usage(store: Store, now: datetime, lookback: timedelta = LOOKBACK,
               sample: int = SAMPLE, windows: Mapping[str, timedelta] | None = None
               ) -> pd.DataFrame:
    """One row per (collector, account_id, region) that ran in the ``lookback`` before ``now``.

    Reads ``runs`` only, pruned to the date partitions of the lookback. Columns
    (:data:`USAGE_COLUMNS`): the newest run's ``last_started_at``, ``last_status``,
    ``last_error``, ``last_duration_s``, ``last_api_calls``; ``runs`` and ``failed_runs`` in
    the lookback; and the typical run: medians of ``api_calls``, ``metrics_requested``,
    ``ce_requests`` (Cost Explorer requests), ``traces_retrieved``, ``duration_s``,
    ``s3_get_requests`` and ``s3_list_requests`` (the cost collector's data export) over the
    newest ``sample`` ok runs (``sampled_runs`` of them; NaN when there is none), and ``gap_s``,
    the median spacing between consecutive runs (NaN with one run). ``windows`` (collector ->
    how far back, :func:`sample_windows`) narrows where the typical run of a collector is
    looked for; the last run is always looked for over the whole lookback.

    The oldest ok run of a key in its window is left out of the typical run when the key has
    another: a key's first run back-fills history (metrics two days, cost 13 months, X-Ray an
    hour) and would make the estimate of a young store many times too high.
    """
    since = now - lookback
    names = sorted(windows or {})
    starts = [max(since, now - (windows or {})[name]) for name in names]
    sql = f"""
    WITH recent AS (
        SELECT CASE WHEN tier IS NULL OR tier = '' THEN collector
                    ELSE collector || '{TIER_SEPARATOR}' || tier END AS collector,
               account_id, region, started_at, duration_s, status, error,
               api_calls, metrics_requested, traces_retrieved, api_calls_by_operation
        FROM runs WHERE date >= ?::DATE AND started_at >= ? AND started_at <= ?
    ),
    summary AS (
        SELECT collector, account_id, region, count(*) AS runs,
               count(*) FILTER (WHERE status <> 'ok') AS failed_runs,
               max(started_at) AS last_started_at,
               arg_max(status, started_at) AS last_status,
               arg_max(error, started_at) AS last_error,
               arg_max(duration_s, started_at) AS last_duration_s,
               arg_max(api_calls, started_at) AS last_api_calls
        FROM recent GROUP BY ALL
    ),
    windows AS (
        SELECT unnest(?::VARCHAR[]) AS collector, unnest(?::TIMESTAMPTZ[]) AS since
    ),
    sampled AS (
        SELECT r.collector, r.account_id, r.region, r.started_at, r.duration_s, r.status,
               r.api_calls, r.metrics_requested,
               coalesce(r.traces_retrieved, 0) AS traces_retrieved,
               {ce_requests_sql("r.api_calls_by_operation")} AS ce_requests,
               {operation_calls_sql("s3:GetObject", "r.api_calls_by_operation")} AS s3_gets,
               {operation_calls_sql("s3:ListObjectsV2", "r.api_calls_by_operation")}
                   AS s3_lists
        FROM recent r LEFT JOIN windows w USING (collector)
        WHERE w.since IS NULL OR r.started_at >= w.since
    ),
    ordered AS (
        SELECT *,
               epoch(started_at - lag(started_at) OVER key_time) AS gap_s,
               CASE WHEN status = 'ok' THEN
                   row_number() OVER (PARTITION BY collector, account_id, region, status = 'ok'
                                      ORDER BY started_at DESC) END AS newest_ok,
               count(*) FILTER (WHERE status = 'ok') OVER (
                   PARTITION BY collector, account_id, region) AS ok_runs
        FROM sampled
        WINDOW key_time AS (PARTITION BY collector, account_id, region ORDER BY started_at)
    ),
    typical AS (
        SELECT collector, account_id, region,
               count(*) FILTER (WHERE newest_ok <= ? AND (ok_runs < 2 OR newest_ok < ok_runs))
                   AS sampled_runs,
               median(gap_s) AS gap_s,
               median(api_calls) FILTER (WHERE newest_ok <= ?
                   AND (ok_runs < 2 OR newest_ok < ok_runs)) AS api_calls,
               median(metrics_requested) FILTER (WHERE newest_ok <= ?
                   AND (ok_runs < 2 OR newest_ok < ok_runs)) AS metrics_requested,
               median(ce_requests) FILTER (WHERE newest_ok <= ?
                   AND (ok_runs < 2 OR newest_ok < ok_runs)) AS ce_requests,
               median(traces_retrieved) FILTER (WHERE newest_ok <= ?
                   AND (ok_runs < 2 OR newest_ok < ok_runs)) AS traces_retrieved,
               median(duration_s) FILTER (WHERE newest_ok <= ?
                   AND (ok_runs < 2 OR newest_ok < ok_runs)) AS duration_s,
               median(s3_gets) FILTER (WHERE newest_ok <= ?
                   AND (ok_runs < 2 OR newest_ok < ok_runs)) AS s3_get_requests,
               median(s3_lists) FILTER (WHERE newest_ok <= ?
                   AND (ok_runs < 2 OR newest_ok < ok_runs)) AS s3_list_requests
        FROM ordered GROUP BY ALL
    )
    SELECT s.collector, s.account_id, s.region, s.last_started_at, s.last_status, s.last_error,
           s.last_duration_s, s.last_api_calls, s.runs, s.failed_runs,
           coalesce(t.sampled_runs, 0) AS sampled_runs, t.api_calls, t.metrics_requested,
           t.ce_requests, t.traces_retrieved, t.duration_s, t.gap_s, t.s3_get_requests,
           t.s3_list_requests
    FROM summary s LEFT JOIN typical t USING (collector, account_id, region)
    ORDER BY s.collector, s.account_id, s.region
    """
    frame = store.query(sql, [since.date(), since, now, names, starts, *[sample] * 8])
    return frame[USAGE_COLUMNS]


# --- pricing (pure) --------------------------------------------------------------------------


def runs_per_month(interval: timedelta) -> float:
    """Runs in a 30-day month at ``interval``."""
    if interval <= timedelta(0):
        raise ValueError(f"interval must be positive, not {interval}")
    return MONTH / interval


def _observed_window(schedule: Schedule, gap_s: float) -> timedelta:
    """The history one observed run read: its spacing (else the interval) plus the overlap."""
    spacing = timedelta(seconds=gap_s) if not math.isnan(gap_s) and gap_s > 0 else schedule.interval
    return spacing + schedule.pricing.overlap


def _chunks(window: timedelta, chunk: timedelta) -> int:
    return max(1, math.ceil(window / chunk))


@dataclass(frozen=True)
class RunUsage:
    """What one steady-state run uses: calls, metrics requested, CE requests, traces, and S3
    GET and LIST requests (a data export)."""

    api_calls: float
    metrics: float
    ce_requests: float
    traces_retrieved: float
    traces_scanned: float
    s3_gets: float = 0.0
    s3_lists: float = 0.0

    @property
    def dollars(self) -> float:
        return (self.metrics * CLOUDWATCH_PER_METRIC + self.ce_requests
                * COST_EXPLORER_PER_REQUEST + self.xray_traces * XRAY_PER_TRACE
                + self.s3_dollars)

    @property
    def s3_dollars(self) -> float:
        """S3 requests: $0.0004 per 1,000 GETs, $0.005 per 1,000 LISTs."""
        return self.s3_gets * S3_GET_PER_REQUEST + self.s3_lists * S3_LIST_PER_REQUEST

    @property
    def xray_traces(self) -> float:
        """Traces X-Ray bills: retrieved plus scanned."""
        return self.traces_retrieved + self.traces_scanned


def spend(metrics_requested: pd.Series, ce_requests: pd.Series,
          traces_retrieved: pd.Series) -> pd.Series:
    """Dollars of recorded usage, element-wise: metrics x $0.00001 + Cost Explorer requests
    x $0.01 + (retrieved + as many scanned) traces x $0.0000005."""
    dollars: pd.Series = (metrics_requested * CLOUDWATCH_PER_METRIC
                          + ce_requests * COST_EXPLORER_PER_REQUEST
                          + 2 * traces_retrieved * XRAY_PER_TRACE)
    return dollars.astype("float64")


def run_usage(observed: Mapping[Any, Any], schedule: Schedule,
              interval: timedelta) -> RunUsage:
    """One run's usage at ``interval``, from the typical observed run (a :func:`read_usage`
    row: api_calls, metrics_requested, ce_requests, traces_retrieved, gap_s, and, when
    present, s3_get_requests and s3_list_requests: the same at any interval)."""
    s3 = [_count(observed, key) for key in ("s3_get_requests", "s3_list_requests")]
    calls = float(observed["api_calls"])
    metrics = float(observed["metrics_requested"])
    ce = float(observed["ce_requests"])
    traces = float(observed["traces_retrieved"])
    seen = _observed_window(schedule, float(observed["gap_s"]))
    pricing = schedule.pricing
    wanted = interval + pricing.overlap
    if pricing.kind == "chunked" and pricing.chunk is not None:
        factor = _chunks(wanted, pricing.chunk) / _chunks(seen, pricing.chunk)
        return RunUsage(calls * factor, metrics * factor, ce, traces, traces, *s3)
    if pricing.kind == "windowed":
        scanned = traces * (wanted / seen)
        retrieved = scanned if pricing.cap is None else min(float(pricing.cap), scanned)
        factor = retrieved / traces if traces else 1.0
        return RunUsage(calls * factor, metrics, ce, retrieved, scanned, *s3)
    return RunUsage(calls, metrics, ce, traces, traces, *s3)


def _count(observed: Mapping[Any, Any], key: str) -> float:
    """A usage count of the row, 0 when absent or NaN (older rows, other collectors)."""
    value = observed.get(key)
    number = float(value) if value is not None else 0.0
    return 0.0 if math.isnan(number) else number


def status_of(last_status: object, last_error: object) -> str:
    """'ok', 'unreachable' (the account's role could not be assumed) or 'error'."""
    if last_status == "ok":
        return "ok"
    if isinstance(last_error, str) and last_error.startswith(UNREACHABLE_PREFIX):
        return "unreachable"
    return "error"


def priced_interval(schedule: Schedule, overrides: Mapping[str, timedelta]
                    ) -> tuple[timedelta, float]:
    """The interval ``schedule`` is priced at when ``overrides`` (collector -> interval) asks
    what if, and the factor its observed run grows by.

    An interval given for a collector with tiers moves its shortest tier, as its configured
    interval would. Its longest tier keeps its interval, unless the collector's is as long
    or longer: then tiers are off and every run reads its whole window in chunks
    (``pricing.chunk``), where the observed full run read one.
    """
    if schedule.collector in overrides:
        return overrides[schedule.collector], 1.0
    wanted = overrides.get(schedule.base)
    if wanted is None:
        return schedule.interval, 1.0
    if schedule.displaced_by is not None:
        return wanted, 1.0
    if wanted < schedule.interval:
        return schedule.interval, 1.0
    pricing = schedule.pricing
    chunks = _chunks(wanted + pricing.overlap, pricing.chunk) if pricing.chunk else 1
    return wanted, float(chunks)


def bill(usage: pd.DataFrame, config: Config,
         intervals: Mapping[str, timedelta] | None = None) -> pd.DataFrame:
    """The monthly bill per (collector, account, region) at the configured intervals, or at
    ``intervals`` (collector -> interval) where given.

    A disabled collector costs $0 (runs_per_month 0) unless ``intervals`` names it. A key
    without an ok run in the lookback has no estimate (NaN dollars), and counts as $0 in the
    totals. Columns: :data:`BILL_COLUMNS`, sorted by monthly_usd, most expensive first.
    """
    overrides = dict(intervals or {})
    usage = usage[~superseded(usage)]
    plans = schedules(config, sorted(set(usage["collector"]) | set(overrides)))
    rows = []
    for record in usage.to_dict("records"):
        schedule = plans[str(record["collector"])]
        interval, factor = priced_interval(schedule, overrides)
        active = schedule.enabled or schedule.collector in overrides or \
            schedule.base in overrides
        per_month = schedule.runs_per_month(interval) if active else 0.0
        has_estimate = bool(record["sampled_runs"])
        if has_estimate:
            use = run_usage(record, schedule, interval)
            use = dataclasses.replace(use, api_calls=use.api_calls * factor,
                                      metrics=use.metrics * factor)
            values = [use.api_calls, use.metrics, use.ce_requests, use.traces_retrieved]
            parts = [use.metrics * CLOUDWATCH_PER_METRIC * per_month,
                     use.ce_requests * COST_EXPLORER_PER_REQUEST * per_month,
                     use.xray_traces * XRAY_PER_TRACE * per_month,
                     use.s3_dollars * per_month]
        else:
            values = [math.nan] * 4
            parts = [math.nan] * 4
        rows.append({
            "collector": schedule.collector, "account_id": record["account_id"],
            "region": record["region"],
            "status": status_of(record["last_status"], record["last_error"]),
            "last_started_at": record["last_started_at"],
            "last_error": record["last_error"], "last_duration_s": record["last_duration_s"],
            "last_api_calls": record["last_api_calls"], "runs": record["runs"],
            "failed_runs": record["failed_runs"], "api_calls_per_run": values[0],
            "metrics_per_run": values[1], "ce_requests_per_run": values[2],
            "traces_per_run": values[3], "interval_s": interval.total_seconds(),
            "runs_per_month": per_month, "api_calls_per_month": values[0] * per_month,
            "cloudwatch_usd": parts[0], "cost_explorer_usd": parts[1], "xray_usd": parts[2],
            "monthly_usd": sum(parts), "s3_usd": parts[3],
        })
    frame = pd.DataFrame(rows, columns=BILL_COLUMNS)
    return frame.sort_values(["monthly_usd", "collector", "account_id", "region"],
                             ascending=[False, True, True, True], na_position="last",
                             kind="stable").reset_index(drop=True)


def by_collector(billed: pd.DataFrame) -> pd.DataFrame:
    """Totals per collector from :func:`bill`: collector, interval_s, accounts, unreachable,
    errors, api_calls_per_month, cloudwatch_usd, cost_explorer_usd, xray_usd, monthly_usd,
    s3_usd."""
    columns = ["collector", "interval_s", "accounts", "unreachable", "errors",
               "api_calls_per_month", "cloudwatch_usd", "cost_explorer_usd", "xray_usd",
               "monthly_usd", "s3_usd"]
    if billed.empty:
        return pd.DataFrame(columns=columns)
    grouped = billed.groupby("collector", sort=True)
    frame = pd.DataFrame({
        "interval_s": grouped["interval_s"].first(),
        "accounts": grouped["account_id"].nunique(),
        "unreachable": grouped["status"].agg(lambda s: int((s == "unreachable").sum())),
        "errors": grouped["status"].agg(lambda s: int((s == "error").sum())),
        "api_calls_per_month": grouped["api_calls_per_month"].sum(min_count=1),
        "cloudwatch_usd": grouped["cloudwatch_usd"].sum(),
        "cost_explorer_usd": grouped["cost_explorer_usd"].sum(),
        "xray_usd": grouped["xray_usd"].sum(),
        "monthly_usd": grouped["monthly_usd"].sum(),
        "s3_usd": grouped["s3_usd"].sum(),
    }).reset_index()
    return frame.sort_values("monthly_usd", ascending=False, kind="stable")[columns] \
        .reset_index(drop=True)


def collector_monthly(usage: pd.DataFrame, config: Config, collector: str,
                      interval: timedelta) -> float:
    """What ``collector`` (all its tiers) would cost a month, over every account, at
    ``interval``."""
    mine = usage[base_names(usage["collector"]) == collector]
    if mine.empty:
        raise ValueError(f"no runs of collector {collector!r} to estimate from "
                         f"(known: {', '.join(sorted(set(usage['collector']))) or 'none'})")
    billed = bill(mine, config, {collector: interval})
    return float(billed["monthly_usd"].sum())


def interval_curve(usage: pd.DataFrame, config: Config, collector: str,
                   intervals: Iterable[timedelta]) -> pd.DataFrame:
    """The monthly dollars of ``collector`` at each interval: interval_s, monthly_usd."""
    rows = [{"interval_s": i.total_seconds(),
             "monthly_usd": collector_monthly(usage, config, collector, i)} for i in intervals]
    return pd.DataFrame(rows, columns=["interval_s", "monthly_usd"])
