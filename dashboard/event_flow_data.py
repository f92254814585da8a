"""Data layer of the Event-flow page: rule verdicts, delivery funnels, series, routes, DLQs.

Same two layers as :mod:`dashboard.data`: plain functions ``(store, filters, ...) -> DataFrame``
unit-tested on a tmp store, and ``load_*`` wrappers cached for 30 s that take only the store
path and hashable filter values.

Everything that grows with history (``event_metrics``, ``dlq_depth``) is aggregated in DuckDB
with ``time_bucket`` to at most :data:`MAX_POINTS` points per series, so a 30-day range sends a
few hundred points per line to the browser, never every 5-minute period.

The baseline band of the MatchedEvents chart is computed here, for display only: per rule, the
median and the 10th-90th percentile of the 5-minute values in the same hour of the week over
the :data:`BASELINE_WEEKS` weeks before each period (the same hour of the previous days while
history is shorter than a week). The health model
(``orgscope/health``) owns the baselines its verdicts use; when it exposes them, swap
:func:`rule_series` over to it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from dashboard.data import CACHE_TTL_S, open_store
from dashboard.filters import Filters
from dashboard.sql import in_list, list_params, scope_params, text_list
from orgscope.datasets import AVERAGE_METRICS, RULE_METRICS, VERDICTS
from orgscope.ownership import resource_team
from orgscope.patterns import source_matchers
from orgscope.store import Store
from orgscope.targets import target_arns

log = logging.getLogger(__name__)

#: One colour per verdict, used by every chart, table and headline on the page.
VERDICT_COLOURS: dict[str, str] = {
    "OK": "#2e9e6b",
    "DEGRADED": "#e0a030",
    "SILENT": "#7b61ff",
    "FAILING": "#d6453d",
    "DISABLED": "#9aa0a6",
    "STALE": "#4a4f55",
}
#: A rule in the inventory that the health model has not judged yet.
NO_VERDICT = "NO VERDICT"
NO_VERDICT_COLOUR = "#e8eaed"
#: Streamlit Markdown colour names for the headline labels (closest to VERDICT_COLOURS).
VERDICT_MARKDOWN: dict[str, str] = {
    "OK": "green",
    "DEGRADED": "orange",
    "SILENT": "violet",
    "FAILING": "red",
    "DISABLED": "gray",
    "STALE": "gray",
}
#: What each verdict means, for headline tooltips and docs.
VERDICT_HELP: dict[str, str] = {
    "OK": "Matching at its usual rate and delivering.",
    "DEGRADED": "Delivering, but throttled, retrying or slower than usual.",
    "SILENT": "Enabled but matching far below its usual rate for this hour of the week "
    "(a broken pattern), or its producer's PutEvents fail.",
    "FAILING": "Invocations fail or its dead-letter queue grows: events are being lost.",
    "DISABLED": "The rule is disabled: it delivers nothing.",
    "STALE": "orgscope could not read this rule's account or metrics recently.",
}
#: Most urgent first: the order of the rule picker and the default selection.
URGENCY: tuple[str, ...] = ("FAILING", "SILENT", "DISABLED", "DEGRADED", "STALE", "OK")

MAX_POINTS = 300
PERIOD = timedelta(minutes=5)
#: Bucket sizes a chart may use: the smallest that keeps a series within MAX_POINTS wins.
BUCKETS: tuple[timedelta, ...] = (
    timedelta(minutes=5), timedelta(minutes=10), timedelta(minutes=15), timedelta(minutes=30),
    timedelta(hours=1), timedelta(hours=2), timedelta(hours=3), timedelta(hours=6),
    timedelta(hours=12), timedelta(days=1),
)
BASELINE_WEEKS = 4

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

@dataclass(frozen=True)
class RuleKey:
    """One rule in one account and region."""

    account_id: str
    region: str
    bus: str
    rule: str

    def encode(self) -> str:
        """A string for a widget value (rule names cannot contain '|')."""
        return "|".join((self.account_id, self.region, self.bus, self.rule))

    @classmethod
    def decode(cls, text: str) -> RuleKey:
        account_id, region, bus, rule = text.split("|", 3)
        return cls(account_id, region, bus, rule)


def bucket_for(window: timedelta, max_points: int = MAX_POINTS) -> timedelta:
    """The smallest bucket in :data:`BUCKETS` that splits ``window`` into <= max_points."""
    for bucket in BUCKETS:
        if window / bucket <= max_points:
            return bucket
    days = math.ceil(window / timedelta(days=1) / max_points)
    return timedelta(days=days)


def describe_bucket(bucket: timedelta) -> str:
    minutes = int(bucket.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 24 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // (24 * 60)} d"


# --- verdicts ----------------------------------------------------------------------------------


def rule_verdicts(store: Store, filters: Filters, tag_key: str = "Team",
                  known: Collection[str] | None = None) -> pd.DataFrame:
    """The latest verdict of every rule in scope, most urgent first.

    Rules come from the latest ``rule_health`` evaluation; inventory rules the health model has
    not judged yet are added with verdict :data:`NO_VERDICT`. A rule's team is its own
    ``tag_key`` tag naming one of the ``known`` teams, else its account's
    (:func:`orgscope.ownership.resource_team`); the team
    filter selects rules by that team, so a rule tagged ``Team=ops`` on the platform team's
    central bus is ops's.

    Columns: account_id, account (name; the id when unknown), team, region, bus, rule, verdict,
    reasons (list of sentences), details (JSON text), evaluated_at, state (inventory state or
    None), urgency (0 = most urgent).
    """
    sql = f"""
    WITH scope AS (
        SELECT account_id, name, team FROM accounts
        WHERE {in_list("account_id")}
    ),
    judged AS (
        SELECT h.account_id, h.region, h.bus, h.rule, h.verdict, h.reasons, h.details,
               h.evaluated_at
        FROM rule_health h
        WHERE {in_list("h.region")}
    ),
    listed AS (
        SELECT r.account_id, r.region, r.bus, r.rule, r.state, r.tags FROM rules r
        WHERE {in_list("r.region")}
    ),
    merged AS (
        SELECT coalesce(j.account_id, l.account_id) AS account_id,
               coalesce(j.region, l.region) AS region,
               coalesce(j.bus, l.bus) AS bus,
               coalesce(j.rule, l.rule) AS rule,
               coalesce(j.verdict, ?) AS verdict,
               j.reasons, j.details, j.evaluated_at, l.state, l.tags
        FROM judged j FULL OUTER JOIN listed l
          ON j.account_id = l.account_id AND j.region = l.region AND j.bus = l.bus
             AND j.rule = l.rule
    )
    SELECT m.account_id, coalesce(s.name, m.account_id) AS account,
           s.team AS account_team, m.region, m.bus, m.rule, m.verdict,
           m.reasons, m.details, m.evaluated_at, m.state, m.tags
    FROM merged m LEFT JOIN scope s USING (account_id)
    -- rules of accounts the store has no reachability row for are kept unless narrowed
    WHERE s.account_id IS NOT NULL
       OR (len(?::VARCHAR[]) = 0
           AND m.account_id NOT IN (SELECT account_id FROM accounts))
    """
    params: list[Any] = [
        *list_params(filters.account_ids),
        *list_params(filters.regions),
        *list_params(filters.regions),
        NO_VERDICT,
        list(filters.account_ids),
    ]
    frame = store.query(sql, params)
    teams = [resource_team(tags, account_team if isinstance(account_team, str) else None,
                           tag_key, known) or "(unknown)"
             for tags, account_team in zip(frame["tags"], frame["account_team"], strict=True)]
    frame = frame.drop(columns=["tags", "account_team"])
    frame.insert(2, "team", pd.Series(teams, index=frame.index, dtype=object))
    if filters.teams:
        frame = frame[frame["team"].isin(list(filters.teams))]
    order = {verdict: index for index, verdict in enumerate((*URGENCY, NO_VERDICT))}
    frame["urgency"] = frame["verdict"].map(lambda v: order.get(v, len(order))).astype("int64")
    frame["reasons"] = frame["reasons"].map(text_list)
    frame = frame.sort_values(["urgency", "account", "region", "bus", "rule"], kind="stable")
    return frame.reset_index(drop=True)


def verdict_counts(verdicts: pd.DataFrame) -> dict[str, int]:
    """Rules per verdict, every verdict of :data:`VERDICTS` present (0 when none)."""
    counts = verdicts["verdict"].value_counts()
    return {verdict: int(counts.get(verdict, 0)) for verdict in VERDICTS}


def rule_keys(verdicts: pd.DataFrame) -> list[RuleKey]:
    """The rules of :func:`rule_verdicts`, in its (most urgent first) order."""
    return [
        RuleKey(str(r["account_id"]), str(r["region"]), str(r["bus"]), str(r["rule"]))
        for r in verdicts[["account_id", "region", "bus", "rule"]].to_dict("records")
    ]


def verdict_matrix(verdicts: pd.DataFrame, rows: str = "account") -> pd.DataFrame:
    """One cell per (row, rule) for the heatmap: the most urgent verdict and its reasons.

    ``rows`` is "account" or "team". A rule that exists in several regions (or, by team, in
    several accounts) gets the most urgent of its verdicts; the hover lists each.

    Columns: row, rule, verdict, urgency, hover (HTML for Plotly).
    """
    if rows not in ("account", "team"):
        raise ValueError(f"rows must be 'account' or 'team', not {rows!r}")
    cells = []
    for (row, rule), group in verdicts.groupby([rows, "rule"], sort=False):
        worst = group.sort_values("urgency").iloc[0]
        lines = [f"<b>{rule}</b> · {row}"]
        for record in group.sort_values("urgency").to_dict("records"):
            where = f"{record['account']} {record['region']} · bus {record['bus']}"
            lines.append(f"<b>{record['verdict']}</b> — {where}")
            lines.extend(f"• {reason}" for reason in record["reasons"][:4])
        cells.append(
            {"row": str(row), "rule": str(rule), "verdict": str(worst["verdict"]),
             "urgency": int(worst["urgency"]), "hover": "<br>".join(lines)}
        )
    return pd.DataFrame(cells, columns=["row", "rule", "verdict", "urgency", "hover"])


# --- metrics -------------------------------------------------------------------------------------


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


# --- DLQs ----------------------------------------------------------------------------------------


def dlq_series(
    store: Store, filters: Filters, since: datetime, until: datetime,
    max_points: int = MAX_POINTS,
) -> pd.DataFrame:
    """Depth of every dead-letter queue in scope, bucketed (max per bucket).

    Columns: account_id, account, region, queue, queue_arn, bucket, visible, oldest_age_s.
    """
    bucket = bucket_for(until - since, max_points)
    sql = f"""
    WITH scope AS (
        SELECT account_id, name FROM accounts
        WHERE {in_list("account_id")} AND {in_list("team")}
    )
    SELECT d.account_id, s.name AS account, d.region, d.queue, d.queue_arn,
           time_bucket(?::INTERVAL, timezone('UTC', d.ts)) AS bucket,
           max(d.visible) AS visible,
           max(d.oldest_age_s) AS oldest_age_s
    FROM dlq_depth d JOIN scope s USING (account_id)
    WHERE d.ts >= ? AND d.ts < ? AND {in_list("d.region")}
    GROUP BY ALL ORDER BY d.queue, bucket
    """
    params = [*scope_params(filters), bucket, since, until, *list_params(filters.regions)]
    frame = store.query(sql, params)
    frame["bucket"] = pd.to_datetime(frame["bucket"]).dt.tz_localize(UTC)
    return frame


def dlq_latest(store: Store, filters: Filters) -> pd.DataFrame:
    """The newest reading of every dead-letter queue in scope, deepest first.

    Columns: account_id, account, region, queue, queue_arn, ts, visible, in_flight,
    oldest_age_s.
    """
    sql = f"""
    WITH scope AS (
        SELECT account_id, name FROM accounts
        WHERE {in_list("account_id")} AND {in_list("team")}
    )
    SELECT d.account_id, s.name AS account, d.region, d.queue, d.queue_arn, d.ts, d.visible,
           d.in_flight, d.oldest_age_s
    FROM dlq_depth d JOIN scope s USING (account_id)
    WHERE {in_list("d.region")}
    QUALIFY d.ts = max(d.ts) OVER (PARTITION BY d.account_id, d.region, d.queue_arn)
    ORDER BY d.visible DESC, s.name, d.queue
    """
    params = [*scope_params(filters), *list_params(filters.regions)]
    return store.query(sql, params)


# --- route map -----------------------------------------------------------------------------------


def route_inputs(store: Store, filters: Filters) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The latest rules (with targets and patterns) and buses (with their allowed principals)
    of the accounts and regions in scope."""
    scope = f"""
    WITH scope AS (
        SELECT account_id FROM accounts
        WHERE {in_list("account_id")} AND {in_list("team")}
    )"""
    rules = store.query(
        scope + f"""
        SELECT r.account_id, r.region, r.bus, r.rule, r.state, r.event_pattern, r.targets
        FROM rules r JOIN scope USING (account_id) WHERE {in_list("r.region")}
        ORDER BY r.account_id, r.region, r.bus, r.rule""",
        [*scope_params(filters), *list_params(filters.regions)],
    )
    buses = store.query(
        scope + f"""
        SELECT b.account_id, b.region, b.bus, b.arn, b.allowed_principals
        FROM event_buses b JOIN scope USING (account_id) WHERE {in_list("b.region")}
        ORDER BY b.account_id, b.region, b.bus""",
        [*scope_params(filters), *list_params(filters.regions)],
    )
    return rules, buses


@dataclass(frozen=True)
class RouteMap:
    """A producers -> bus -> rule -> target graph for a Plotly Sankey.

    ``nodes``: label, kind (producer, bus, rule, target), colour, hover.
    ``links``: source, target (node indexes), colour (the rule's verdict), hover.
    """

    nodes: pd.DataFrame
    links: pd.DataFrame


def _bus_of_arn(arn: str) -> tuple[str, str, str] | None:
    """(account_id, region, bus) of an event-bus ARN, else None."""
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[2] == "events" and parts[5].startswith("event-bus/"):
        return parts[4], parts[3], parts[5].removeprefix("event-bus/")
    return None


def _short_arn(arn: str, names: dict[str, str]) -> str:
    """'order-placed-queue · inventory-mgmt' for an SQS queue ARN in account inventory-mgmt."""
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return arn
    service, account, resource = parts[2], parts[4], parts[5]
    name = resource.removeprefix("function:").rsplit("/", 1)[-1]
    kind = "" if service == "sqs" else f"{service} "
    return f"{kind}{name} · {names.get(account, account)}"


class _RouteBuilder:
    """Nodes and links of a :class:`RouteMap`, deduplicated, with a cycle check."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.index: dict[tuple[str, ...], int] = {}
        self.nodes: list[dict[str, str]] = []
        self.links: list[dict[str, Any]] = []
        self.adjacency: dict[int, set[int]] = {}

    def account(self, account_id: str) -> str:
        return self.names.get(account_id, account_id)

    def node(self, key: tuple[str, ...], label: str, kind: str, colour: str, hover: str) -> int:
        if key not in self.index:
            self.index[key] = len(self.nodes)
            self.nodes.append({"label": label, "kind": kind, "colour": colour, "hover": hover})
        return self.index[key]

    def bus(self, account_id: str, region: str, bus: str) -> int:
        return self.node(
            ("bus", account_id, region, bus), f"{bus} · {self.account(account_id)}", "bus",
            BUS_COLOUR, f"bus <b>{bus}</b><br>{self.account(account_id)} ({account_id}) {region}",
        )

    def producer(self, name: str, label: str, hover: str) -> int:
        return self.node(("producer", name), label, "producer", PRODUCER_COLOUR, hover)

    def link(self, source: int, target: int, colour: str, hover: str) -> None:
        if target in self.adjacency.get(source, set()):
            return
        self.adjacency.setdefault(source, set()).add(target)
        self.links.append({"source": source, "target": target, "colour": colour, "hover": hover})

    def reaches(self, start: int, goal: int) -> bool:
        seen: set[int] = set()
        stack = [start]
        while stack:
            current = stack.pop()
            if current == goal:
                return True
            if current not in seen:
                seen.add(current)
                stack.extend(self.adjacency.get(current, ()))
        return False

    def target(self, rule_index: int, rule: str, account_id: str, arn: str, colour: str) -> None:
        target_bus = _bus_of_arn(arn)
        if target_bus is not None and not (
            ("bus", *target_bus) in self.index
            and self.reaches(self.bus(*target_bus), rule_index)
        ):
            cross = target_bus[0] != account_id
            hover = f"{rule} -> bus {target_bus[2]}" + (
                f" in {self.account(target_bus[0])} (cross-account)" if cross else "")
            self.link(rule_index, self.bus(*target_bus), _alpha(colour), hover)
            return
        suffix = " (loop)" if target_bus is not None else ""
        target_index = self.node(("target", arn), _short_arn(arn, self.names) + suffix, "target",
                                 TARGET_COLOUR, arn)
        self.link(rule_index, target_index, _alpha(colour), f"{rule} -> {arn}")


BUS_COLOUR = "#37474f"
PRODUCER_COLOUR = "#90a4ae"
TARGET_COLOUR = "#b0bec5"
PRODUCER_LINK = "rgba(144,164,174,0.35)"


def route_map(
    rules: pd.DataFrame,
    buses: pd.DataFrame,
    verdicts: pd.DataFrame,
    names: dict[str, str],
    *,
    only_not_ok: bool = False,
) -> RouteMap:
    """Build the route graph from :func:`route_inputs` and :func:`rule_verdicts`.

    Producers are the bus policy's allowed principals (accounts) and the sources named by
    rule patterns. A target that is another bus becomes that bus's node, so cross-account
    forwarding reads as one path (a link that would close a loop points at a separate
    "(loop)" node instead: a Sankey cannot draw cycles). ``only_not_ok`` keeps the rules whose
    verdict is not OK, and what leads to them.
    """
    verdict_of = {
        (str(r["account_id"]), str(r["region"]), str(r["bus"]), str(r["rule"])):
            (str(r["verdict"]), list(r["reasons"]))
        for r in verdicts.to_dict("records")
    }
    kept = []
    for r in rules.to_dict("records"):
        key = (str(r["account_id"]), str(r["region"]), str(r["bus"]), str(r["rule"]))
        verdict, reasons = verdict_of.get(key, (NO_VERDICT, []))
        if not (only_not_ok and verdict == "OK"):
            kept.append((key, verdict, reasons, r))
    graph = _RouteBuilder(names)
    principals = {
        (str(b["account_id"]), str(b["region"]), str(b["bus"])): text_list(b["allowed_principals"])
        for b in buses.to_dict("records")
    }
    for bus_key in sorted({(k[0], k[1], k[2]) for k, _, _, _ in kept}):
        bus_index = graph.bus(*bus_key)
        for principal in principals.get(bus_key, []):
            account = principal.rsplit(":", 1)[-1] if principal.startswith("arn:") else principal
            label = graph.account(account) if account.isdigit() else principal
            source = graph.producer(principal, label,
                                    f"allowed to PutEvents on {bus_key[2]}: {principal}")
            graph.link(source, bus_index, PRODUCER_LINK, "bus policy allows PutEvents")
    for (account_id, region, bus, rule), verdict, reasons, r in kept:
        colour = VERDICT_COLOURS.get(verdict, NO_VERDICT_COLOUR)
        bus_index = graph.bus(account_id, region, bus)
        for name in (m.label for m in source_matchers(r["event_pattern"])):
            source = graph.producer(name, name, f"event source {name}")
            graph.link(source, bus_index, PRODUCER_LINK, "source named by a rule pattern")
        why = "<br>".join(reasons[:3])
        rule_index = graph.node(
            ("rule", account_id, region, bus, rule), rule, "rule", colour,
            f"rule <b>{rule}</b> — {verdict}<br>{graph.account(account_id)} {region}<br>{why}")
        graph.link(bus_index, rule_index, _alpha(colour), f"{rule}: {verdict}")
        for arn in target_arns(r["targets"]):
            graph.target(rule_index, rule, account_id, arn, colour)
    return RouteMap(
        nodes=pd.DataFrame(graph.nodes, columns=["label", "kind", "colour", "hover"]),
        links=pd.DataFrame(graph.links, columns=["source", "target", "colour", "hover"]),
    )


def _alpha(hex_colour: str, alpha: float = 0.55) -> str:
    red, green, blue = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def verdict_export(verdicts: pd.DataFrame) -> pd.DataFrame:
    """The verdict table as it is downloaded: reasons joined with ' | '."""
    columns = ["account", "account_id", "team", "region", "bus", "rule", "verdict", "reasons",
               "evaluated_at", "state"]
    return verdicts[columns].assign(reasons=verdicts["reasons"].map(" | ".join))


def window(filters: Filters, now: datetime) -> tuple[datetime, datetime]:
    """[since, until) of the time range, ``until`` rounded up to the next 5-minute period."""
    step = PERIOD.total_seconds()
    until = datetime.fromtimestamp(math.ceil(now.timestamp() / step) * step, UTC)
    return until - filters.window, until


def labels_for(keys: Iterable[RuleKey], verdicts: pd.DataFrame) -> dict[str, str]:
    """Widget labels for rule keys: 'FAILING · rule — account (region)'."""
    wanted = {key.encode() for key in keys}
    result = {}
    for row in verdicts.to_dict("records"):
        key = RuleKey(str(row["account_id"]), str(row["region"]), str(row["bus"]),
                      str(row["rule"])).encode()
        if key in wanted and key not in result:
            result[key] = f"{row['verdict']} · {row['rule']} — {row['account']} ({row['region']})"
    return result


# --- cached wrappers ----------------------------------------------------------------------------


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_rule_verdicts(
    store_base: str, account_ids: tuple[str, ...], teams: tuple[str, ...],
    regions: tuple[str, ...], *, tag_key: str = "Team", known: tuple[str, ...] | None = None,
) -> pd.DataFrame:
    filters = Filters(account_ids=account_ids, teams=teams, regions=regions)
    return rule_verdicts(open_store(store_base), filters, tag_key, known)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_metrics_present(store_base: str) -> bool:
    return metrics_present(open_store(store_base))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_rule_funnel(store_base: str, key: str, time_range: str) -> pd.DataFrame:
    since, until = window(Filters(time_range=time_range), datetime.now(UTC))
    return rule_funnel(open_store(store_base), RuleKey.decode(key), since, until)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_rule_series(store_base: str, key: str, metric: str, time_range: str) -> pd.DataFrame:
    since, until = window(Filters(time_range=time_range), datetime.now(UTC))
    return rule_series(open_store(store_base), RuleKey.decode(key), metric, since, until)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_dlq_series(
    store_base: str, time_range: str, account_ids: tuple[str, ...], teams: tuple[str, ...],
    regions: tuple[str, ...],
) -> pd.DataFrame:
    filters = Filters(time_range=time_range, account_ids=account_ids, teams=teams,
                      regions=regions)
    since, until = window(filters, datetime.now(UTC))
    return dlq_series(open_store(store_base), filters, since, until)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_dlq_latest(
    store_base: str, account_ids: tuple[str, ...], teams: tuple[str, ...],
    regions: tuple[str, ...],
) -> pd.DataFrame:
    filters = Filters(account_ids=account_ids, teams=teams, regions=regions)
    return dlq_latest(open_store(store_base), filters)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_route_inputs(
    store_base: str, account_ids: tuple[str, ...], teams: tuple[str, ...],
    regions: tuple[str, ...],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    filters = Filters(account_ids=account_ids, teams=teams, regions=regions)
    return route_inputs(open_store(store_base), filters)


def metric_choices() -> Sequence[str]:
    """Metrics the time-series chart offers, MatchedEvents first."""
    return RULE_METRICS
