"""CloudWatch AWS/Events metrics of every rule in the inventory, read incrementally.

AWS API wrapped: ``cloudwatch:GetMetricData`` (MetricStat queries only, up to 500 a call,
following NextToken), in the account that owns the rules.

Dataset returned: ``event_metrics``, one row per (account_id, region, bus, rule, metric, ts)
with ``value``; ``ts`` is the start of a ``period_s`` period. Account-level PutEvents* metrics
and the failure signals across all rules have null ``bus`` and ``rule``.

docs/datasets.md, "event_metrics", explains which series are read, the windows, the chunks and
the zeros; docs/performance.md, "Tiered metrics", the tiers. Invariants:

* The series (:data:`RULE_METRICS` per rule, :data:`ACCOUNT_METRICS` per account,
  :data:`RULE_SIGNALS` across all rules) come from the latest inventory, never from
  ListMetrics.
* A run reads one tier (:func:`plan_run`): **full**, every series (the first run, a run far
  behind, and the first run past each ``full_interval`` boundary); or **fast**, each rule's
  activity metric and the signals, then in the same run each loud signal's metric for every
  rule and its companions for the rules where it was not zero (:func:`loud_signals`,
  :func:`drill_series`, :func:`companion_series`). ``Collected.tier`` says which.
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
from orgscope.config import CollectorConfig, Duration, Interval
from orgscope.datasets import (
    ACCOUNT_METRICS,
    ACCOUNT_SIGNALS,
    AVERAGE_METRICS,
    EVENT_METRICS,
    RULE_METRICS,
    RULE_SIGNALS,
    activity_metric,
)
from orgscope.pricing import Pricing
from orgscope.rule_globs import first_match

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


#: The rules of orgscope's own change-event templates (orgscope/iam/): the forwarder in every
#: account, and the monitoring bus's rule to the queue.
FULL_ONLY_RULES: tuple[str, ...] = ("orgscope-change-forwarder", "orgscope-changes-to-queue")


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
    #: How often a run reads every series of every rule (the full tier); the runs between
    #: read the fast tier only. At or below ``interval``, every run is full.
    full_interval: Interval = timedelta(hours=1)
    #: The fast tier reads each account's latency across all rules; above this many times its
    #: average over the hour before, it reads every rule's latency too.
    latency_drill_factor: float = Field(default=1.5, ge=1.0, le=100.0)
    #: Rules read by the full tier only (globs as orgscope/rule_globs.py reads them):
    #: orgscope's own change-event rules by default, which carry a change now and then and
    #: would otherwise cost an account its failure signals every run.
    full_only_rules: list[str] = Field(default_factory=lambda: list(FULL_ONLY_RULES))

    @property
    def tiered(self) -> bool:
        """Whether runs between the full ones read the fast tier only."""
        return self.full_interval > self.interval

    def pricing(self) -> Pricing:
        """A run reads ``interval + overlap`` in chunks of at most an hour, each requesting
        every series again; with tiers, the full run reads ``full_interval + overlap`` in one
        read every ``full_interval`` and the fast runs between read their own series."""
        tiers = {"fast": self.interval, "full": self.full_interval} if self.tiered else {}
        return Pricing("chunked", overlap=self.overlap, chunk=MAX_CHUNK_SPAN, tiers=tiers)



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


Owner = tuple[str, str, str]


def rule_owners(rules: pd.DataFrame, account_id: str, region: str) -> list[Owner]:
    """(bus, rule, activity metric) of every rule of one account and region, sorted; rules of
    other accounts or regions are skipped."""
    if not len(rules):
        return []
    mine = rules[(rules["account_id"] == account_id) & (rules["region"] == region)]
    patterns = mine["event_pattern"] if "event_pattern" in mine else [None] * len(mine)
    schedules = mine["schedule_expression"] if "schedule_expression" in mine \
        else [None] * len(mine)
    found = {(str(bus), str(rule)): activity_metric(pattern, schedule)
             for bus, rule, pattern, schedule in zip(mine["bus"], mine["rule"], patterns,
                                                     schedules, strict=True)}
    return [(bus, rule, metric) for (bus, rule), metric in sorted(found.items())]


def _numbered(pairs: Iterable[tuple[str, str | None, str | None]]) -> list[Series]:
    """Series with ids ``m<n>``: valid GetMetricData ids (lowercase first letter, then
    [a-zA-Z0-9_])."""
    return [Series(f"m{n}", metric, bus, rule) for n, (metric, bus, rule) in enumerate(pairs)]


def build_series(rules: pd.DataFrame, account_id: str, region: str) -> list[Series]:
    """The full tier: every rule's RULE_METRICS, the account's ACCOUNT_METRICS and, when it has
    rules, the RULE_SIGNALS across all of them."""
    return full_series(rule_owners(rules, account_id, region))


def full_series(owners: Sequence[Owner]) -> list[Series]:
    """The full tier of one account and region (see :func:`build_series`)."""
    pairs: list[tuple[str, str | None, str | None]] = [
        (metric, bus, rule) for bus, rule, _ in owners for metric in RULE_METRICS]
    pairs += [(metric, None, None) for metric in ACCOUNT_METRICS]
    if owners:
        pairs += [(metric, None, None) for metric in RULE_SIGNALS]
    return _numbered(pairs)


def fast_series(owners: Sequence[Owner]) -> list[Series]:
    """The fast tier of one account and region: each rule's activity metric (MatchedEvents,
    TriggeredRules for a scheduled rule), the RULE_SIGNALS across all rules when it has any,
    and the account's ACCOUNT_SIGNALS."""
    pairs: list[tuple[str, str | None, str | None]] = [
        (metric, bus, rule) for bus, rule, metric in owners]
    if owners:
        pairs += [(metric, None, None) for metric in RULE_SIGNALS]
    pairs += [(metric, None, None) for metric in ACCOUNT_SIGNALS]
    return _numbered(pairs)


def drill_series(owners: Sequence[Owner], signals: Iterable[str],
                 read: Sequence[Series]) -> list[Series]:
    """Step one of a drill-down: each loud rule signal's own metric for every rule, and the
    rest of ACCOUNT_METRICS for a loud account signal; never a series in ``read``. Ids
    continue after ``read``'s."""
    wanted: list[tuple[str, str | None, str | None]] = []
    for signal in signals:
        if signal in RULE_SIGNALS:
            wanted += [(signal, bus, rule) for bus, rule, _ in owners]
        elif signal in ACCOUNT_SIGNALS:
            wanted += [(metric, None, None) for metric in ACCOUNT_METRICS]
    return _more(wanted, read)


def companion_series(rows: Iterable[Mapping[str, Any]], signals: Iterable[str],
                     read: Sequence[Series]) -> list[Series]:
    """Step two: the metrics the verdicts quote beside each loud rule signal (RULE_SIGNALS'
    companions: Invocations beside FailedInvocations, say), for the rules whose own series of
    it was above zero in ``rows``; never a series in ``read``."""
    loud = {signal for signal in signals if signal in RULE_SIGNALS}
    wanted: list[tuple[str, str | None, str | None]] = []
    for row in rows:
        metric, rule = row["metric"], row["rule"]
        if rule is not None and metric in loud and float(row["value"]) > 0:
            wanted += [(companion, row["bus"], rule) for companion in RULE_SIGNALS[metric][1:]]
    return _more(wanted, read)


def _more(wanted: Iterable[tuple[str, str | None, str | None]], read: Sequence[Series]
          ) -> list[Series]:
    """``wanted`` (metric, bus, rule) not in ``read``, once each, ids after ``read``'s."""
    done = {(s.metric, s.bus, s.rule) for s in read}
    fresh = list(dict.fromkeys(w for w in wanted if w not in done))
    return [Series(f"m{len(read) + n}", metric, bus, rule)
            for n, (metric, bus, rule) in enumerate(fresh)]


def loud_signals(values: Mapping[tuple[str, datetime], float], series: Sequence[Series],
                 window: Window, latency_factor: float) -> list[str]:
    """The signals of the fast tier that call for a drill-down: a count signal with a value
    above zero in ``window``; the latency across all rules when its average in ``window`` is
    above ``latency_factor`` times its average before ``window.start``."""
    loud: list[str] = []
    for item in series:
        if item.rule is not None or item.metric not in {*RULE_SIGNALS, *ACCOUNT_SIGNALS}:
            continue
        inside = [v for (sid, ts), v in values.items() if sid == item.id
                  and window.start <= ts < window.end]
        if item.metric in AVERAGE_METRICS:
            before = [v for (sid, ts), v in values.items() if sid == item.id
                      and ts < window.start]
            if inside and before and sum(before) > 0 and \
                    sum(inside) / len(inside) > latency_factor * sum(before) / len(before):
                loud.append(item.metric)
        elif any(v > 0 for v in inside):
            loud.append(item.metric)
    return loud


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


#: What the fast tier also reads before its window: the hour its latency is compared with.
LATENCY_BASELINE = timedelta(hours=1)


@dataclass(frozen=True)
class Plan:
    """What one run reads: its tier ("full" or "fast"), the window whose rows it returns,
    and the span one read may cover."""

    tier: str
    window: Window
    max_span: timedelta = MAX_CHUNK_SPAN


def plan_run(window: Window, watermark: datetime | None, settings: MetricsCollectorConfig
             ) -> Plan:
    """The tier of a run reading ``window`` (:func:`read_window`).

    Full, reading ``window`` in chunks as it comes: the first run (back-fill), a run with tiers
    off, or one that fell more than ``full_interval`` behind. Full, reading the last
    ``full_interval + overlap`` in one read: the first run after a ``full_interval`` boundary
    (epoch-aligned) passed. Fast otherwise: ``window`` in one read.
    """
    every = settings.full_interval
    if watermark is None or not settings.tiered or window.end - window.start > every:
        return Plan("full", window)
    boundary = floor_to_period(window.end, int(every.total_seconds()))
    if boundary > floor_to_period(watermark, int(every.total_seconds())):
        span = every + settings.overlap
        start = min(window.start, floor_to_period(window.end - span, settings.period_s))
        return Plan("full", Window(start, window.end), max_span=window.end - start)
    return Plan("fast", window, max_span=window.end - window.start)


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


def _read(cloudwatch: Any, series: Sequence[Series], chunk: Window, period_s: int,
          where: str) -> dict[tuple[str, datetime], float]:
    """Every value of ``series`` in ``chunk``: one GetMetricData call per 500 series."""
    by_id = {item.id: item for item in series}
    results: list[dict[str, Any]] = []
    for batch in batches(metric_queries(series, period_s)):
        results.extend(_metric_data_pages(cloudwatch, batch, chunk))
    return parse_results(results, by_id, chunk, where)


def _chunked(cloudwatch: Any, series: Sequence[Series], plan: Plan,
             settings: MetricsCollectorConfig, where: str, *, account_id: str, region: str
             ) -> tuple[list[dict[str, Any]], datetime]:
    """The rows of ``series`` over ``plan.window`` in chunks; and how far they reach."""
    widest = max(len(batch) for batch in batches(series))
    chunks = plan_chunks(plan.window, settings.period_s, widest, settings.max_chunks_per_run,
                         plan.max_span)
    rows: list[dict[str, Any]] = []
    for chunk in chunks:
        values = _read(cloudwatch, series, chunk, settings.period_s, where)
        rows.extend(rows_for_chunk(values, series, chunk, settings.period_s,
                                   account_id=account_id, region=region))
    return rows, chunks[-1].end


def _fast(cloudwatch: Any, owners: Sequence[Owner], plan: Plan,
          settings: MetricsCollectorConfig, where: str, *, account_id: str, region: str
          ) -> tuple[list[dict[str, Any]], list[str]]:
    """The fast tier over ``plan.window`` (its series read from an hour earlier, for the
    latency baseline), then the drill-down its loud signals call for: each signal's metric for
    every rule, then its companions for the rules where it was not zero. The rows of the
    window and the signals that were loud."""
    window = plan.window
    series = fast_series(owners)
    wide = Window(window.start - LATENCY_BASELINE, window.end)
    values = _read(cloudwatch, series, wide, settings.period_s, where)
    rows = [row for row in rows_for_chunk(values, series, wide, settings.period_s,
                                          account_id=account_id, region=region)
            if row["ts"] >= window.start]
    loud = loud_signals(values, series, window, settings.latency_drill_factor)
    mine = {"account_id": account_id, "region": region}
    drill = drill_series(owners, loud, series)
    if drill:
        more, _ = _chunked(cloudwatch, drill, plan, settings, where, **mine)
        rows += more
        companions = companion_series(more, loud, [*series, *drill])
        if companions:
            rows += _chunked(cloudwatch, companions, plan, settings, where, **mine)[0]
    return rows, loud


def unpublished_signals(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The RULE_SIGNALS a full read found on some rule but not across all rules: AWS did not
    publish that series without dimensions here, so the fast tier cannot see the signal."""
    per_rule: dict[str, float] = {}
    across: dict[str, float] = {}
    for row in rows:
        metric = row["metric"]
        if metric not in RULE_SIGNALS:
            continue
        into = across if row["rule"] is None else per_rule
        into[metric] = into.get(metric, 0.0) + float(row["value"])
    return [metric for metric in RULE_SIGNALS
            if per_rule.get(metric, 0.0) > 0 and not across.get(metric, 0.0) > 0]


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
    owners = rule_owners(ctx.input("rules"), ctx.account.id, ctx.region)
    watched = [owner for owner in owners if first_match(
        settings.full_only_rules, ctx.account.id, ctx.region, owner[0], owner[1]) is None]
    plan = plan_run(window, ctx.watermark, settings)
    cloudwatch = ctx.client("cloudwatch")
    mine = {"account_id": ctx.account.id, "region": ctx.region}
    if plan.tier == "full":
        series = full_series(owners)
        rows, watermark = _chunked(cloudwatch, series, plan, settings, where, **mine)
        detail = f"{len(series)} series"
        missing = unpublished_signals(rows) if owners and settings.tiered else []
        if missing:
            log.warning("metrics %s: %s came back on rules but not across all rules: the "
                        "fast tier cannot see %s here until the next full read; set "
                        "[collectors.metrics] full_interval = interval to read every series "
                        "every run", where, ", ".join(missing),
                        "them" if len(missing) > 1 else "it")
    else:
        rows, loud = _fast(cloudwatch, watched, plan, settings, where, **mine)
        watermark = plan.window.end
        detail = f"{len(watched)} of {len(owners)} rules" + (
            f", drilled into {', '.join(loud)}" if loud else "")
    behind = window.end - watermark
    log.info("metrics %s: %s tier, %s, %s..%s, %d rows%s", where, plan.tier, detail,
             plan.window.start.isoformat(), watermark.isoformat(), len(rows),
             f"; back-fill continues next run ({behind} to go)" if behind else "")
    frame = pd.DataFrame(rows, columns=EVENT_METRICS.columns) if rows else \
        EVENT_METRICS.empty_frame()
    return Collected({EVENT_METRICS.name: frame}, watermark, tier=plan.tier)


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
