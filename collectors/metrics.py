"""CloudWatch AWS/Events metrics of every rule in the inventory, read incrementally.

AWS API wrapped: ``cloudwatch:GetMetricData`` (MetricStat queries only, up to 500 a call,
following NextToken), in the account that owns the rules.

Dataset returned: ``event_metrics``, one row per (account_id, region, bus, rule, metric, ts)
with ``value``; ``ts`` is the start of a ``period_s`` period. Account-level PutEvents* metrics
have null ``bus`` and ``rule``.

docs/datasets.md, "event_metrics", explains which series are read, the windows, the chunks and
the zeros. Invariants:

* The series (:data:`RULE_METRICS` per rule, :data:`ACCOUNT_METRICS` per account) come from
  the latest inventory, never from ListMetrics.
* The window ends at the start of the current, incomplete period; chunks stay within AWS's
  100,800 datapoints a call and :data:`MAX_CHUNK_SPAN`, at most ``max_chunks_per_run`` a run;
  the watermark returned is the end of the last chunk read.
* Count metrics AWS omits at zero are returned as 0 for every period of the chunks read;
  ``IngestionToInvocationStartLatency`` is never filled (no row means no data).
* A result or datapoint that cannot be mapped back to a series is logged and skipped.
* Re-read overlap periods are returned again: the newest row per key is the one to believe.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import pandas as pd
from pydantic import AfterValidator, Field

from orgscope.collect import (
    CollectContext,
    Collected,
    Collector,
    Window,
    pages,
    probe_metric_data,
)
from orgscope.config import CollectorConfig, Duration
from orgscope.datasets import ACCOUNT_METRICS, AVERAGE_METRICS, EVENT_METRICS, RULE_METRICS
from orgscope.pricing import Pricing

log = logging.getLogger(__name__)

NAMESPACE = "AWS/Events"
DEFAULT_BUS = "default"


#: GetMetricData limits (per call).
MAX_QUERIES_PER_CALL = 500
MAX_DATAPOINTS_PER_CALL = 100_800
#: Longest span one call covers. AWS would allow more (100,800 datapoints), but short calls
#: keep each response small, let a back-fill advance its watermark in steps, and keep the
#: simulator (whose GetMetricData cost grows with periods x datapoints in the window) fast.
#: A back-fill of 2 days costs 48 x series metrics requested once (about $0.08 for 160 series).
MAX_CHUNK_SPAN = timedelta(hours=1)


def _period(value: int) -> int:
    if value % 60 or not 60 <= value <= 3600:
        raise ValueError("must be a multiple of 60 seconds between 60 and 3600")
    return value


class MetricsCollectorConfig(CollectorConfig):
    """CloudWatch AWS/Events metrics: resolution, back-fill and re-read of late datapoints."""

    period_s: Annotated[int, AfterValidator(_period)] = 300
    backfill: Duration = timedelta(days=2)
    overlap: Duration = timedelta(minutes=10)
    max_chunks_per_run: int = Field(default=6, ge=1, le=1000)

    def pricing(self) -> Pricing:
        """A run reads ``interval + overlap`` in chunks of at most an hour, each requesting
        every series again."""
        return Pricing("chunked", overlap=self.overlap, chunk=MAX_CHUNK_SPAN)



@dataclass(frozen=True)
class Series:
    """One metric asked for: its query id, name, owner (bus/rule or the account) and stat."""

    id: str
    metric: str
    bus: str | None
    rule: str | None

    @property
    def stat(self) -> str:
        return "Average" if self.metric in AVERAGE_METRICS else "Sum"

    @property
    def zero_filled(self) -> bool:
        """Count metrics: AWS omits them at zero, so a missing period means 0."""
        return self.metric not in AVERAGE_METRICS

    def dimensions(self) -> list[dict[str, str]]:
        if self.rule is None:
            return []
        if self.bus in (None, DEFAULT_BUS):
            return [{"Name": "RuleName", "Value": self.rule}]
        return [{"Name": "EventBusName", "Value": str(self.bus)},
                {"Name": "RuleName", "Value": self.rule}]


# --- pure helpers: series, queries, windows --------------------------------------------------


def build_series(rules: pd.DataFrame, account_id: str, region: str) -> list[Series]:
    """Every series to ask for in one account and region: each rule's RULE_METRICS (rules of
    other accounts or regions are skipped), then ACCOUNT_METRICS. Ids are ``m<n>``: valid
    GetMetricData ids (lowercase first letter, then [a-zA-Z0-9_])."""
    owners: list[tuple[str | None, str | None]] = []
    if len(rules):
        mine = rules[(rules["account_id"] == account_id) & (rules["region"] == region)]
        pairs = {(str(bus), str(rule)) for bus, rule in zip(mine["bus"], mine["rule"],
                                                            strict=True)}
        owners.extend(sorted(pairs))
    series: list[Series] = []
    for bus, rule in owners:
        for metric in RULE_METRICS:
            series.append(Series(f"m{len(series)}", metric, bus, rule))
    for metric in ACCOUNT_METRICS:
        series.append(Series(f"m{len(series)}", metric, None, None))
    return series


def metric_queries(series: Sequence[Series], period_s: int) -> list[dict[str, Any]]:
    """GetMetricData MetricDataQueries (MetricStat, Sum or Average) for ``series``."""
    queries = []
    for item in series:
        metric: dict[str, Any] = {"Namespace": NAMESPACE, "MetricName": item.metric}
        dimensions = item.dimensions()
        if dimensions:
            metric["Dimensions"] = dimensions
        queries.append({
            "Id": item.id,
            "MetricStat": {"Metric": metric, "Period": period_s, "Stat": item.stat},
            "ReturnData": True,
        })
    return queries


def batches(items: Sequence[Any], size: int = MAX_QUERIES_PER_CALL) -> list[list[Any]]:
    """``items`` in lists of at most ``size`` (one GetMetricData call each)."""
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def floor_to_period(moment: datetime, period_s: int) -> datetime:
    """The start of the ``period_s`` period containing ``moment`` (UTC, epoch-aligned)."""
    seconds = int(moment.astimezone(UTC).timestamp())
    return datetime.fromtimestamp(seconds - seconds % period_s, tz=UTC)


def read_window(collected_at: datetime, watermark: datetime | None,
                settings: MetricsCollectorConfig) -> Window | None:
    """What this run should read, before chunking; None when there is nothing to read.

    Without a watermark: from ``backfill`` before ``collected_at``. With one: from ``overlap``
    before it (never further back than the back-fill horizon). Both ends period-aligned; the
    end is the start of the current period, which is not complete yet.
    """
    period = settings.period_s
    end = floor_to_period(collected_at, period)
    horizon = floor_to_period(collected_at - settings.backfill, period)
    if watermark is None:
        start = horizon
    else:
        start = max(floor_to_period(watermark - settings.overlap, period), horizon)
    return Window(start, end) if start < end else None


def max_periods_per_call(queries_per_call: int, period_s: int,
                         max_span: timedelta = MAX_CHUNK_SPAN) -> int:
    """Periods one call may cover: queries x periods <= 100,800, and span <= ``max_span``."""
    by_datapoints = MAX_DATAPOINTS_PER_CALL // max(1, queries_per_call)
    by_span = max(1, int(max_span.total_seconds()) // period_s)
    return max(1, min(by_datapoints, by_span))


def plan_chunks(window: Window, period_s: int, queries_per_call: int, max_chunks: int,
                max_span: timedelta = MAX_CHUNK_SPAN) -> list[Window]:
    """``window`` cut, oldest first, into at most ``max_chunks`` chunks of whole periods, each
    within :func:`max_periods_per_call`. The chunks may stop short of ``window.end``: the
    rest is read by the next run."""
    step = timedelta(seconds=period_s * max_periods_per_call(queries_per_call, period_s,
                                                             max_span))
    chunks: list[Window] = []
    start = window.start
    while start < window.end and len(chunks) < max_chunks:
        end = min(start + step, window.end)
        chunks.append(Window(start, end))
        start = end
    return chunks


def period_starts(chunk: Window, period_s: int) -> list[datetime]:
    step = timedelta(seconds=period_s)
    count = math.ceil((chunk.end - chunk.start) / step)
    return [chunk.start + i * step for i in range(count)]


def _utc(stamp: Any) -> datetime:
    """A returned timestamp (timezone-aware datetime, or ISO text) as UTC; TypeError or
    ValueError for anything else."""
    if isinstance(stamp, str):
        stamp = datetime.fromisoformat(stamp)
    if not isinstance(stamp, datetime) or stamp.tzinfo is None:
        raise TypeError(f"not a timezone-aware timestamp: {stamp!r}")
    return stamp.astimezone(UTC)


def parse_results(results: Iterable[Mapping[str, Any]], series: Mapping[str, Series],
                  chunk: Window, where: str = "") -> dict[tuple[str, datetime], float]:
    """MetricDataResults (possibly several pages of the same ids) -> {(series id, period
    start): value}. Results with an unknown id, datapoints outside ``chunk`` and values that
    are not numbers are logged and skipped."""
    values: dict[tuple[str, datetime], float] = {}
    for result in results:
        query_id = str(result.get("Id", ""))
        if query_id not in series:
            log.warning("metrics %s: result for unknown query id %r skipped", where, query_id)
            continue
        status = result.get("StatusCode", "Complete")
        if status not in ("Complete", "PartialData"):
            log.warning("metrics %s: %s of %s came back %s: %s", where,
                        series[query_id].metric, series[query_id].rule or "account", status,
                        result.get("Messages"))
        for stamp, value in zip(result.get("Timestamps", []), result.get("Values", []),
                                strict=False):
            try:
                ts = _utc(stamp)
                number = float(value)
            except (TypeError, ValueError) as error:
                log.warning("metrics %s: bad datapoint %r=%r of %s skipped: %s", where, stamp,
                            value, query_id, error)
                continue
            if not chunk.start <= ts < chunk.end or math.isnan(number):
                log.warning("metrics %s: datapoint %r=%r of %s outside %s..%s skipped", where,
                            stamp, value, query_id, chunk.start, chunk.end)
                continue
            values[(query_id, ts)] = number
    return values


def rows_for_chunk(values: Mapping[tuple[str, datetime], float], series: Sequence[Series],
                   chunk: Window, period_s: int, *, account_id: str, region: str
                   ) -> list[dict[str, Any]]:
    """``event_metrics`` rows of one chunk: every value read, plus 0 for each period of the
    chunk a count series has no value for (latency is never filled)."""
    periods = period_starts(chunk, period_s)
    rows: list[dict[str, Any]] = []
    for item in series:
        for ts in periods:
            value = values.get((item.id, ts))
            if value is None:
                if not item.zero_filled:
                    continue
                value = 0.0
            rows.append({"account_id": account_id, "region": region, "bus": item.bus,
                         "rule": item.rule, "metric": item.metric, "ts": ts, "value": value})
    return rows


# --- AWS edge --------------------------------------------------------------------------------


def _metric_data_pages(cloudwatch: Any, queries: list[dict[str, Any]], chunk: Window
                       ) -> Iterator[dict[str, Any]]:
    """GetMetricData for one batch of queries over one chunk, following NextToken."""
    params: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": chunk.start,
                              "EndTime": chunk.end, "ScanBy": "TimestampAscending"}
    for page in pages(cloudwatch.get_metric_data, params):
        yield from page.get("MetricDataResults", [])


def _inventoried(ctx: CollectContext) -> bool:
    """Whether the inventory has a snapshot of this account and region (every account has a
    default bus, so a successful inventory always stores at least one)."""
    buses = ctx.inputs.get("event_buses")
    if buses is None or not len(buses):
        return False
    mine = buses[(buses["account_id"] == ctx.account.id) & (buses["region"] == ctx.region)]
    return bool(len(mine))


def collect_metrics(ctx: CollectContext) -> Collected:
    """AWS/Events metrics of one account and region since the watermark (see module doc)."""
    settings = ctx.settings if isinstance(ctx.settings, MetricsCollectorConfig) \
        else MetricsCollectorConfig()
    where = f"{ctx.account.id} {ctx.region}"
    empty = {EVENT_METRICS.name: EVENT_METRICS.empty_frame()}
    if not _inventoried(ctx):
        log.info("metrics %s: no inventory of this account and region yet; nothing read, "
                 "watermark kept", where)
        return Collected(empty, ctx.watermark)
    window = read_window(ctx.collected_at, ctx.watermark, settings)
    if window is None:
        return Collected(empty, ctx.watermark)
    series = build_series(ctx.input("rules"), ctx.account.id, ctx.region)
    by_id = {item.id: item for item in series}
    query_batches = batches(metric_queries(series, settings.period_s))
    widest = max(len(batch) for batch in query_batches)
    chunks = plan_chunks(window, settings.period_s, widest, settings.max_chunks_per_run)
    cloudwatch = ctx.client("cloudwatch")
    rows: list[dict[str, Any]] = []
    for chunk in chunks:
        results: list[dict[str, Any]] = []
        for batch in query_batches:
            results.extend(_metric_data_pages(cloudwatch, batch, chunk))
        values = parse_results(results, by_id, chunk, where)
        rows.extend(rows_for_chunk(values, series, chunk, settings.period_s,
                                   account_id=ctx.account.id, region=ctx.region))
    watermark = chunks[-1].end
    behind = window.end - watermark
    log.info("metrics %s: %d series, %s..%s in %d chunk(s), %d rows%s", where, len(series),
             window.start.isoformat(), watermark.isoformat(), len(chunks), len(rows),
             f"; back-fill continues next run ({behind} to go)" if behind else "")
    frame = pd.DataFrame(rows, columns=EVENT_METRICS.columns) if rows else \
        EVENT_METRICS.empty_frame()
    return Collected({EVENT_METRICS.name: frame}, watermark)


METRICS = Collector(
    name="metrics",
    settings=MetricsCollectorConfig,
    feeds=("health", "flow_cost"),
    fn=collect_metrics,
    datasets=(EVENT_METRICS,),
    scope="regional",
    description="CloudWatch AWS/Events metrics of every inventoried rule, plus PutEvents.",
    iam_actions=("cloudwatch:GetMetricData",),
    inputs=("rules", "event_buses"),
    probes=(("cloudwatch:GetMetricData", probe_metric_data),),
)
