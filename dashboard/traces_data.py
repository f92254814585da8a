"""Data layer of the Traces page: trace search, one trace's waterfall, service map, latency.

Same two layers as :mod:`dashboard.data`: plain functions ``(store, ...) -> DataFrame``
unit-tested on a tmp store, and ``load_*`` wrappers cached for 30 s that take only the store
path and hashable values.

Where the data comes from (docs/traces.md):

* the search reads the derived ``traces`` dataset (one row per stitched trace, written by the
  ``traces`` step): every criterion is a ``?`` parameter of one DuckDB query, and only the
  :data:`MAX_RESULTS` slowest matches leave DuckDB;
* the chosen trace's spans are the ``spans`` rows whose ``trace_id`` is one of the trace's
  ``member_trace_ids``, stitched again by :func:`orgscope.traces.stitch.stitch` for parent
  order and depth;
* the service map is :mod:`orgscope.traces.views` over spans read here with the window and
  the sidebar's accounts, teams and regions pushed down to DuckDB (from the
  :data:`MAP_MAX_TRACES` most recent traces, so a 30-day range stitches a bounded number of
  spans); the latency percentiles are the same view's definition computed in DuckDB over
  every span of the range (:func:`latency`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from dashboard.data import CACHE_TTL_S, open_store
from dashboard.event_flow_data import bucket_for, describe_bucket
from dashboard.filters import TIME_RANGES, Filters
from dashboard.sql import in_list, list_params, text_list
from orgscope.store import Store
from orgscope.targets import arn_account, target_arns
from orgscope.traces import views
from orgscope.traces.stitch import stitch

log = logging.getLogger(__name__)

TRACES = "traces"
SPANS = "spans"
STATUSES: tuple[str, ...] = ("ok", "error", "fault")
#: Rows of the results table (the slowest matches); the page says how many matched in all.
MAX_RESULTS = 500
#: The service map is computed from at most this many of the most recent traces in range.
MAP_MAX_TRACES = 1000
#: Spans of a trace may start a little after the trace's own start and end (asynchronous
#: consumers, clock skew): the span reads widen the trace's window by this much.
SPAN_MARGIN = timedelta(minutes=10)
#: Latency chart points per series, at most.
LATENCY_POINTS = 60
#: A service's p99 "rose" when its latest bucket's p99 is at least this many times its usual
#: p99 (the median p99 of the earlier buckets) and at least P99_RISE_MIN_MS higher.
P99_RISE_FACTOR = 1.5
P99_RISE_MIN_MS = 50.0
#: The buckets a p99 rise is judged in, whatever the range: the latest one against the ones
#: before it, so "rose" means "in the last few minutes" on a 1-hour and a 7-day range alike.
RISE_FREQ = "5min"
#: Buckets with fewer spans than this are too thin to call a rise from.
P99_MIN_COUNT = 3
#: Earlier buckets needed before a rise can be called.
P99_MIN_HISTORY = 3

#: Colours for accounts, assigned in order of account id (all accounts the dashboard knows,
#: so every chart agrees). No pure red or amber: those mean fault and error.
ACCOUNT_PALETTE: tuple[str, ...] = (
    "#8c564b", "#7f7f7f", "#1f77b4", "#ff7f0e", "#bcbd22", "#17becf", "#e377c2",
    "#393b79", "#637939", "#2ca02c", "#9467bd", "#8c6d31", "#00838f", "#7b4173",
)
STATUS_COLOURS: dict[str, str] = {"ok": "#2e9e6b", "error": "#e0a030", "fault": "#d6453d"}

#: What each break in docs/traces.md means, for hovers and captions.
BREAK_HELP: dict[str, str] = {
    "no-traceparent": "event consumer without a traceparent (scheduled, replayed or AWS "
    "service event): the trace cannot be followed back to a producer",
    "producer-missing": "its traceparent names a span that was not collected (another "
    "region, an account not read, or sampled away)",
    "bad-traceparent": "its traceparent is malformed",
    "missing-parent": "its parent span was not collected",
    "cycle": "parent ids that loop",
}


class SearchError(ValueError):
    """A search criterion the page cannot use; the message says what is allowed."""


# --- search criteria -------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceSearch:
    """The Traces page's own search, on top of the sidebar filters. Empty tuples mean "any";
    within one criterion values are alternatives (OR), criteria combine with AND."""

    services: tuple[str, ...] = ()
    account_ids: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    min_duration_ms: float = 0.0
    #: (key, value) pairs every matching trace's merged annotations must hold.
    annotations: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        unknown = [s for s in self.statuses if s not in STATUSES]
        if unknown:
            raise SearchError(f"status {unknown[0]!r} is not one of {', '.join(STATUSES)}")
        if not math.isfinite(self.min_duration_ms) or self.min_duration_ms < 0:
            raise SearchError(f"minimum duration {self.min_duration_ms!r} must be a number of "
                              "milliseconds >= 0")


def parse_annotations(text: str) -> tuple[tuple[str, str], ...]:
    """``'order_id=ord-1 event_rule=orders'`` -> (('order_id', 'ord-1'), ('event_rule',
    'orders')); pairs separated by spaces; raises :class:`SearchError` naming the bad one."""
    pairs = []
    for item in text.split():
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise SearchError(f"annotation filter {item!r}: write key=value, for example "
                              "order_id=ord-12ab (several separated by spaces)")
        pairs.append((key, value))
    return tuple(pairs)


def format_annotations(pairs: Sequence[tuple[str, str]]) -> str:
    return " ".join(f"{key}={value}" for key, value in pairs)


def _json_pointer(key: str) -> str:
    """The JSON pointer of a top-level key ('/a~1b' for 'a/b'), a parameter, never SQL."""
    return "/" + key.replace("~", "~0").replace("/", "~1")


@dataclass(frozen=True)
class Window:
    """[since, until) in UTC."""

    since: datetime
    until: datetime

    def __post_init__(self) -> None:
        if self.since.tzinfo is None or self.until.tzinfo is None:
            raise SearchError("window bounds must carry a time zone (UTC)")
        if self.until <= self.since:
            raise SearchError(f"window: until {self.until:%Y-%m-%d %H:%M} UTC is not after "
                              f"since {self.since:%Y-%m-%d %H:%M} UTC")

    @property
    def length(self) -> timedelta:
        return self.until - self.since

    @classmethod
    def last(cls, time_range: str, now: datetime) -> Window:
        """The sidebar's range ending at ``now`` rounded up to the minute (so that the
        cached reads of one minute share a key)."""
        until = datetime.fromtimestamp(math.ceil(now.timestamp() / 60) * 60, UTC)
        return cls(until - TIME_RANGES.get(time_range, TIME_RANGES["24h"]), until)


# --- presence (no data yet vs could not read) ------------------------------------------------


@dataclass(frozen=True)
class Presence:
    """Whether spans were ever collected and whether the traces step has summarized them."""

    spans: bool
    traces: bool
    traces_dataset: bool


def presence(store: Store) -> Presence:
    """Answers "no spans yet" vs "not stitched yet" before the page searches anything.

    Stitched traces imply spans, so ``spans`` is asked only when there are none: through the
    deduplicated view even ``LIMIT 1`` reads every row of today's many files, on every load.
    """
    has_traces = TRACES in store.datasets
    traces = False
    if has_traces:
        found = store.query(
            "SELECT count(*) > 0 AS present FROM (SELECT 1 FROM traces WHERE merged_into IS NULL "
            "LIMIT 1)")
        traces = bool(found["present"].iloc[0])
    if traces:
        return Presence(spans=True, traces=True, traces_dataset=True)
    spans = store.query("SELECT count(*) > 0 AS present FROM (SELECT 1 FROM spans LIMIT 1)")
    return Presence(spans=bool(spans["present"].iloc[0]), traces=False,
                    traces_dataset=has_traces)


# --- search ------------------------------------------------------------------------------------


def _scope_sql(alias: str) -> str:
    """The sidebar's accounts and teams: a trace touching any of them. Four parameters."""
    return (f"(len(?::VARCHAR[]) = 0 OR list_has_any({alias}.accounts, ?::VARCHAR[])) AND "
            f"(len(?::VARCHAR[]) = 0 OR list_has_any({alias}.teams, ?::VARCHAR[]))")


def scope_params(filters: Filters) -> list[Any]:
    return [*list_params(filters.account_ids), *list_params(filters.teams)]


def _region_sql(alias: str) -> str:
    """The sidebar's regions: a trace with a span in one of them. Four parameters.

    A join of the trace's member ids with the spans (not one list of every trace id in the
    regions tested against each trace: that grew with the square of the traces in range).
    """
    return f"""(len(?::VARCHAR[]) = 0 OR EXISTS (
        SELECT 1 FROM (SELECT unnest({alias}.member_trace_ids) AS member) m
        JOIN spans s ON s.trace_id = m.member
        WHERE list_contains(?::VARCHAR[], s.region) AND s.start >= ? AND s.start < ?))"""


def _region_params(filters: Filters, window: Window) -> list[Any]:
    regions = list(filters.regions)
    return [regions, regions, window.since - SPAN_MARGIN, window.until + SPAN_MARGIN]


def _any_of(column: str) -> str:
    """``column`` (a list) holds one of the ? values, or the list is empty. Two parameters."""
    return f"(len(?::VARCHAR[]) = 0 OR list_has_any({column}, ?::VARCHAR[]))"


def search_traces(store: Store, filters: Filters, search: TraceSearch, window: Window,
                  limit: int = MAX_RESULTS) -> pd.DataFrame:
    """Stitched traces that started in ``window`` and match the sidebar filters and
    ``search``, slowest first, at most ``limit`` rows.

    Columns: the ``traces`` dataset's (trace_id, member_trace_ids, start, end, duration_ms,
    root_service, root_name, root_account_id, accounts, services, teams, span_count, faults,
    errors, throttles, breaks, status, annotations) and ``matches``, how many traces matched
    in all (the same on every row).
    """
    annotation_sql = "".join(
        " AND json_extract_string(t.annotations, ?) = ?" for _ in search.annotations)
    sql = f"""
    SELECT t.* EXCLUDE (date, merged_into, stitched_at), count(*) OVER () AS matches
    FROM traces t
    WHERE t.start >= ? AND t.start < ? AND t.merged_into IS NULL
      AND {_scope_sql("t")}
      AND {_region_sql("t")}
      AND {_any_of("t.services")} AND {_any_of("t.accounts")} AND {_any_of("t.teams")}
      AND {in_list("t.status")}
      AND coalesce(t.duration_ms, 0) >= ?
      {annotation_sql}
    ORDER BY t.duration_ms DESC NULLS LAST, t.start DESC, t.trace_id
    LIMIT ?
    """
    params: list[Any] = [
        window.since, window.until,
        *scope_params(filters),
        *_region_params(filters, window),
        *list_params(search.services), *list_params(search.account_ids),
        *list_params(search.teams), *list_params(search.statuses),
        float(search.min_duration_ms),
    ]
    for key, value in search.annotations:
        params += [_json_pointer(key), value]
    params.append(int(limit))
    frame = store.query(sql, params)
    for column in ("member_trace_ids", "accounts", "services", "teams"):
        if column in frame:
            frame[column] = frame[column].map(text_list)
    return frame.reset_index(drop=True)


def search_choices(store: Store, window: Window) -> dict[str, list[str]]:
    """Services, accounts and teams that appear in traces of ``window`` (for the pickers)."""
    sql = """
    SELECT
        (SELECT coalesce(list(DISTINCT v ORDER BY v), []) FROM
            (SELECT unnest(services) AS v FROM traces WHERE start >= ? AND start < ?
             AND merged_into IS NULL)) AS services,
        (SELECT coalesce(list(DISTINCT v ORDER BY v), []) FROM
            (SELECT unnest(accounts) AS v FROM traces WHERE start >= ? AND start < ?
             AND merged_into IS NULL)) AS accounts,
        (SELECT coalesce(list(DISTINCT v ORDER BY v), []) FROM
            (SELECT unnest(teams) AS v FROM traces WHERE start >= ? AND start < ?
             AND merged_into IS NULL)) AS teams
    """
    bounds = [window.since, window.until]
    row = store.query(sql, bounds * 3).iloc[0]
    return {name: text_list(row[name]) for name in ("services", "accounts", "teams")}


def results_export(results: pd.DataFrame, names: Mapping[str, str]) -> pd.DataFrame:
    """The results table as shown and downloaded: lists joined with ', ', accounts named."""
    columns = ["start", "duration_ms", "status", "root_service", "root_name", "accounts",
               "services", "teams", "span_count", "errors", "faults", "throttles", "breaks",
               "annotations", "trace_id"]
    shown = results.reindex(columns=columns).copy()
    shown["accounts"] = results["accounts"].map(
        lambda ids: ", ".join(names.get(i, i) for i in ids))
    for column in ("services", "teams"):
        shown[column] = results[column].map(", ".join)
    return shown


def trace_label(row: Mapping[str, Any], names: Mapping[str, str]) -> str:
    """'1,234 ms · fault · customer-web POST /orders · 5 accounts · 14:03:07'."""
    duration = row.get("duration_ms")
    took = f"{float(duration):,.0f} ms" if duration is not None and pd.notna(duration) else "?"
    accounts = text_list(row.get("accounts"))
    start = pd.Timestamp(row["start"]).tz_convert(UTC)
    return (f"{took} · {row.get('status')} · {row.get('root_service')} "
            f"{row.get('root_name')} · {len(accounts)} account"
            f"{'s' if len(accounts) != 1 else ''} · {start:%m-%d %H:%M:%S}")


# --- one trace ---------------------------------------------------------------------------------


def trace_spans(store: Store, member_trace_ids: Sequence[str], start: datetime,
                end: datetime) -> pd.DataFrame:
    """The ``spans`` rows of the collected traces that make up one stitched trace.

    ``start``/``end`` are the stitched trace's; spans are read from the partitions of
    [start - SPAN_MARGIN, end + SPAN_MARGIN]. Columns: the ``spans`` dataset's.
    """
    sql = """
    SELECT * EXCLUDE (date) FROM spans
    WHERE list_contains(?::VARCHAR[], trace_id)
      AND date BETWEEN ?::DATE AND ?::DATE AND start >= ? AND start <= ?
    ORDER BY start
    """
    low, high = start - SPAN_MARGIN, end + SPAN_MARGIN
    params = [list(member_trace_ids), low.date(), high.date(), low, high]
    return store.query(sql, params)


def status_of(row: Mapping[str, Any]) -> str:
    """'fault', 'throttle', 'error' or 'ok' for one span."""
    if bool(row.get("fault")):
        return "fault"
    if bool(row.get("throttle")):
        return "throttle"
    if bool(row.get("error")):
        return "error"
    return "ok"


def account_colours(account_ids: Sequence[str]) -> dict[str, str]:
    """A stable colour per account id (by sorted id, so every chart agrees)."""
    return {account: ACCOUNT_PALETTE[index % len(ACCOUNT_PALETTE)]
            for index, account in enumerate(sorted(set(account_ids)))}


WATERFALL_COLUMNS = [
    "row", "span_id", "parent_id", "label", "service", "name", "account_id", "account",
    "region", "offset_ms", "duration_ms", "status", "http_status", "http_method", "http_url",
    "depth", "crossing", "parent_account", "break", "relinked", "hover",
]


def waterfall(spans: pd.DataFrame, trace_id: str, names: Mapping[str, str]) -> pd.DataFrame:
    """One stitched trace as waterfall rows: stitched parent order, offsets from its start.

    ``spans`` are :func:`trace_spans` rows; they are stitched again (order, depth, breaks) and
    the rows of ``trace_id`` kept, or every row when stitching names it otherwise (a trace
    stored before its members were complete).

    Columns: row (0 = top), span_id, parent_id, label (indented by depth), service, name,
    account_id, account (name), region, offset_ms (start after the trace's first span
    start), duration_ms (0 for a span still open), status (ok/error/throttle/fault),
    http_status, http_method, http_url, depth, crossing (its parent is in another account),
    parent_account, break (why it starts a piece of trace, else None), relinked (re-parented
    by traceparent), hover (HTML).
    """
    if spans.empty:
        return pd.DataFrame(columns=WATERFALL_COLUMNS)
    stitched = stitch(spans)
    rows = stitched[stitched["trace_id"] == trace_id]
    if rows.empty:
        rows = stitched
    rows = rows.reset_index(drop=True)
    origin = pd.Timestamp(rows["start"].min())
    account_of = dict(zip(rows["span_id"], rows["account_id"], strict=False))
    records = []
    for index, record_in in enumerate(rows.to_dict("records")):
        span = {str(k): v for k, v in record_in.items()}
        parent = span.get("parent_id")
        parent_account = account_of.get(parent) if isinstance(parent, str) else None
        account_id = str(span["account_id"])
        duration = span.get("duration_ms")
        duration = float(duration) if duration is not None and pd.notna(duration) else 0.0
        broken = span.get("break") if isinstance(span.get("break"), str) else None
        relinked = isinstance(span.get("linked_from"), str)
        record = {
            "row": index, "span_id": span["span_id"], "parent_id": parent,
            "label": "\u00a0\u00a0" * int(span["depth"]) + str(span["name"]),
            "service": span["service"], "name": span["name"], "account_id": account_id,
            "account": names.get(account_id, account_id), "region": span["region"],
            "offset_ms": (pd.Timestamp(span["start"]) - origin).total_seconds() * 1000,
            "duration_ms": duration, "status": status_of(span),
            "http_status": span.get("http_status"), "http_method": span.get("http_method"),
            "http_url": span.get("http_url"), "depth": int(span["depth"]),
            "crossing": parent_account is not None and parent_account != account_id,
            "parent_account": parent_account, "break": broken, "relinked": relinked,
        }
        record["hover"] = _span_hover(record, names)
        records.append(record)
    frame = pd.DataFrame(records, columns=WATERFALL_COLUMNS)
    frame["http_status"] = frame["http_status"].astype("Int64")
    return frame


def _span_hover(span: Mapping[str, Any], names: Mapping[str, str]) -> str:
    lines = [f"<b>{span['service']}</b> · {span['name']}",
             f"{span['account']} ({span['account_id']}) {span['region']}",
             f"{span['duration_ms']:,.1f} ms, from +{span['offset_ms']:,.1f} ms · "
             f"{span['status']}"]
    status = span.get("http_status")
    if status is not None and pd.notna(status):
        method = span.get("http_method") or ""
        lines.append(f"HTTP {method} {span.get('http_url') or ''} → {int(status)}")
    if span["crossing"]:
        parent = span["parent_account"]
        lines.append(f"crosses from {names.get(parent, parent)} into {span['account']}")
    if span["relinked"]:
        lines.append("re-linked to its producer by the event's traceparent")
    if span["break"]:
        lines.append(f"break ({span['break']}): {BREAK_HELP.get(span['break'], '')}")
    return "<br>".join(lines)


# --- service map -------------------------------------------------------------------------------


def _span_scope_sql(alias: str) -> str:
    """Spans of the sidebar's accounts (by id and team) and regions. Six parameters."""
    return f"""{in_list(f"{alias}.account_id")}
      AND (len(?::VARCHAR[]) = 0 OR {alias}.account_id IN (
          SELECT account_id FROM accounts WHERE list_contains(?::VARCHAR[], team)))
      AND {in_list(f"{alias}.region")}"""


def _span_scope_params(filters: Filters) -> list[Any]:
    return [*list_params(filters.account_ids), *list_params(filters.teams),
            *list_params(filters.regions)]


def map_spans(store: Store, filters: Filters, window: Window,
              max_traces: int = MAP_MAX_TRACES) -> tuple[pd.DataFrame, int]:
    """Spans of the ``max_traces`` most recent traces in ``window`` that touch the sidebar's
    accounts and teams (whole traces, so calls into other accounts show), in its regions.

    Returns (spans rows, how many traces matched in all).
    """
    sql = f"""
    WITH chosen AS (
        SELECT t.member_trace_ids, count(*) OVER () AS matched FROM traces t
        WHERE t.start >= ? AND t.start < ? AND t.merged_into IS NULL AND {_scope_sql("t")}
        ORDER BY t.start DESC LIMIT ?
    ),
    ids AS (SELECT DISTINCT unnest(member_trace_ids) AS trace_id FROM chosen)
    SELECT s.* EXCLUDE (date), (SELECT max(matched) FROM chosen) AS matched
    FROM spans s SEMI JOIN ids USING (trace_id)
    WHERE s.start >= ? AND s.start < ? AND {in_list("s.region")}
    """
    params: list[Any] = [
        window.since, window.until, *scope_params(filters), int(max_traces),
        window.since - SPAN_MARGIN, window.until + SPAN_MARGIN,
        *list_params(filters.regions),
    ]
    frame = store.query(sql, params)
    matched = int(frame["matched"].iloc[0]) if len(frame) else 0
    return frame.drop(columns=["matched"]), matched


@dataclass(frozen=True)
class ServiceMap:
    """:func:`orgscope.traces.views.service_map` output, with each node's p99 rise and a
    layout: accounts as boxes, a column per step of the call chain."""

    nodes: pd.DataFrame
    edges: pd.DataFrame
    traces: int
    matched: int
    boxes: pd.DataFrame = field(default_factory=pd.DataFrame)


def p99_rises(percentiles: pd.DataFrame, factor: float = P99_RISE_FACTOR,
              min_increase_ms: float = P99_RISE_MIN_MS) -> pd.DataFrame:
    """Per service and account: the latest bucket's p99 against its usual p99.

    ``percentiles`` is :func:`orgscope.traces.views.latency_percentiles` output. The latest
    bucket with at least :data:`P99_MIN_COUNT` spans is compared with the median p99 of the
    buckets before it (at least :data:`P99_MIN_HISTORY` of them). A rise is a latest p99 at
    least ``factor`` times the usual one and ``min_increase_ms`` above it.

    Columns: service, account_id, latest_p99_ms, usual_p99_ms, ratio, rose (bool).
    """
    columns = ["service", "account_id", "latest_p99_ms", "usual_p99_ms", "ratio", "rose"]
    rows = []
    usable = percentiles[percentiles["count"] >= P99_MIN_COUNT]
    for (service, account), group in usable.groupby(["service", "account_id"], sort=True):
        ordered = group.sort_values("bucket_start")
        if len(ordered) < P99_MIN_HISTORY + 1:
            continue
        latest = float(ordered["p99_ms"].iloc[-1])
        usual = float(ordered["p99_ms"].iloc[:-1].median())
        ratio = latest / usual if usual > 0 else math.inf
        rows.append({"service": str(service), "account_id": str(account),
                     "latest_p99_ms": latest, "usual_p99_ms": usual, "ratio": ratio,
                     "rose": ratio >= factor and latest - usual >= min_increase_ms})
    return pd.DataFrame(rows, columns=columns)


def rise_sources(nodes: pd.DataFrame, edges: pd.DataFrame) -> list[bool]:
    """For each node: its p99 rose and none of the services it calls rose, so the rise
    starts there rather than being waited on downstream (a caller waiting on a slow callee
    rises too)."""
    risen = {(str(s), str(a)) for s, a, r in zip(nodes["service"], nodes["account_id"],
                                                  nodes["rose"], strict=True) if r}
    calls_risen = {(str(e["source_service"]), str(e["source_account_id"]))
                   for e in edges.to_dict("records")
                   if (str(e["target_service"]), str(e["target_account_id"])) in risen
                   and (str(e["target_service"]), str(e["target_account_id"]))
                   != (str(e["source_service"]), str(e["source_account_id"]))}
    return [key in risen and key not in calls_risen
            for key in zip(nodes["service"].astype(str), nodes["account_id"].astype(str),
                           strict=True)]


def map_layout(nodes: pd.DataFrame, edges: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Positions for the service map: accounts as boxes, left to right along the calls.

    Each account takes the column of its earliest service in the call chain (longest path
    from a caller-less service, loops ignored); accounts sharing a column stack downwards,
    and an account's services stack inside its box.

    Returns (nodes with x and y, boxes: account_id, x0, x1, y0, y1).
    """
    if nodes.empty:
        return nodes.assign(x=[], y=[]), pd.DataFrame(columns=["account_id", "x0", "x1", "y0",
                                                                "y1"])
    key = [(str(s), str(a)) for s, a in zip(nodes["service"], nodes["account_id"],
                                            strict=True)]
    callers: dict[tuple[str, str], set[tuple[str, str]]] = {k: set() for k in key}
    for edge in edges.to_dict("records"):
        source = (edge["source_service"], edge["source_account_id"])
        target = (edge["target_service"], edge["target_account_id"])
        if source in callers and target in callers and source != target:
            callers[target].add(source)
    depth: dict[tuple[str, str], int] = {}

    def level(node: tuple[str, str], seen: frozenset[tuple[str, str]]) -> int:
        if node in depth:
            return depth[node]
        above = [level(c, seen | {node}) + 1 for c in callers[node] if c not in seen]
        depth[node] = max(above, default=0)
        return depth[node]

    for node in callers:
        level(node, frozenset())
    account_column: dict[str, int] = {}
    for (_service, account), value in depth.items():
        account_column[account] = min(value, account_column.get(account, value))
    placed = nodes.assign(
        x=[float(account_column[a]) for a in nodes["account_id"]],
        _depth=[depth[k] for k in key],
    )
    boxes, ys = [], {}
    for column in sorted(set(account_column.values())):
        accounts = sorted(a for a, c in account_column.items() if c == column)
        y = 0.0
        for account in accounts:
            members = placed[placed["account_id"] == account].sort_values(["_depth", "service"])
            top = y
            for index in members.index:
                ys[index] = -y
                y += 1.0
            boxes.append({"account_id": account, "x0": column - 0.4, "x1": column + 0.4,
                          "y0": -(y - 1.0) - 0.55, "y1": -top + 0.35})
            y += 0.5
    placed["y"] = [ys[i] for i in placed.index]
    return placed.drop(columns=["_depth"]), pd.DataFrame(
        boxes, columns=["account_id", "x0", "x1", "y0", "y1"])


def service_map(store: Store, filters: Filters, window: Window,
                max_traces: int = MAP_MAX_TRACES) -> ServiceMap:
    """The organization's service map over ``window`` (views.service_map of the stitched
    spans of :func:`map_spans`), each node with its p99 rise (columns ``rose``, ``ratio``,
    ``latest_p99_ms``, ``usual_p99_ms``, ``rise_source``: :func:`rise_sources`) and a
    position (``x``, ``y``)."""
    spans, matched = map_spans(store, filters, window, max_traces)
    stitched = stitch(spans)
    nodes, edges = views.service_map(stitched)
    rises = p99_rises(views.latency_percentiles(spans, RISE_FREQ))
    nodes = nodes.merge(rises, on=["service", "account_id"], how="left")
    nodes["rose"] = nodes["rose"].astype("boolean").fillna(False).astype(bool)
    nodes["rise_source"] = rise_sources(nodes, edges)
    placed, boxes = map_layout(nodes, edges)
    traces = int(stitched["trace_id"].nunique()) if len(stitched) else 0
    return ServiceMap(nodes=placed, edges=edges, traces=traces, matched=matched, boxes=boxes)


# --- latency percentiles -----------------------------------------------------------------------


def latency_bucket(length: timedelta) -> timedelta:
    """The bucket of the latency chart for a window: at most :data:`LATENCY_POINTS`."""
    return bucket_for(length, LATENCY_POINTS)


def latency_freq(length: timedelta) -> str:
    """:func:`latency_bucket` as a pandas frequency ('5min', '180min')."""
    return f"{int(latency_bucket(length).total_seconds() // 60)}min"


def latency(store: Store, filters: Filters, window: Window) -> pd.DataFrame:
    """:func:`orgscope.traces.views.latency_percentiles` of every span that started in
    ``window`` in the sidebar's accounts, teams and regions, in buckets of
    :func:`latency_bucket`, computed in DuckDB: only the buckets reach pandas, whatever the
    number of spans (a busy organization writes hundreds of thousands an hour).

    Same definitions as the view: entry spans (no parent among these spans, or a parent of
    another service or account), a span's duration_ms else end - start, percentiles by linear
    interpolation (3 decimals), error rate the share of entries flagged error or fault (4
    decimals), buckets floored from the epoch by span start. Columns: bucket_start, service,
    account_id, count, p50_ms, p95_ms, p99_ms, error_rate, sorted by the first three.
    """
    sql = f"""
    WITH s AS (
        SELECT s.trace_id, s.span_id, s.parent_id, s.service, s.account_id, s.start,
               coalesce(s.error, false) OR coalesce(s.fault, false) AS bad,
               coalesce(s.duration_ms,
                        date_diff('microsecond', s.start, s."end") / 1000.0) AS ms
        FROM spans s
        WHERE s.start >= ? AND s.start < ? AND {_span_scope_sql("s")}
    ),
    owners AS (
        SELECT trace_id, span_id, any_value(service) AS service,
               any_value(account_id) AS account_id
        FROM s GROUP BY trace_id, span_id
    )
    SELECT time_bucket(?::INTERVAL, s.start, TIMESTAMPTZ '1970-01-01 00:00:00+00')
               AS bucket_start,
           s.service, s.account_id, count(*) AS count,
           round(quantile_cont(s.ms, 0.50), 3) AS p50_ms,
           round(quantile_cont(s.ms, 0.95), 3) AS p95_ms,
           round(quantile_cont(s.ms, 0.99), 3) AS p99_ms,
           round(avg(CASE WHEN s.bad THEN 1.0 ELSE 0.0 END), 4) AS error_rate
    FROM s LEFT JOIN owners o ON o.trace_id = s.trace_id AND o.span_id = s.parent_id
    WHERE o.service IS NULL OR o.service <> s.service OR o.account_id <> s.account_id
    GROUP BY ALL
    ORDER BY bucket_start, s.service, s.account_id
    """
    params = [window.since, window.until, *_span_scope_params(filters),
              latency_bucket(window.length)]
    frame = store.query(sql, params)
    if frame.empty:
        return pd.DataFrame(columns=views.LATENCY_COLUMNS)
    frame["bucket_start"] = pd.to_datetime(frame["bucket_start"], utc=True)
    frame["count"] = frame["count"].astype("int64")
    for column in ("p50_ms", "p95_ms", "p99_ms", "error_rate"):
        frame[column] = frame[column].astype("float64")
    return frame[views.LATENCY_COLUMNS].reset_index(drop=True)


def describe_latency_bucket(length: timedelta) -> str:
    return describe_bucket(latency_bucket(length))


# --- deep links ----------------------------------------------------------------------------------

#: Query parameters the page reads (and the Event-flow page writes).
LINK_PARAMS = ("service", "account", "team", "status", "min_ms", "annotation", "since",
               "until", "trace")


@dataclass(frozen=True)
class Link:
    """A Traces page deep link: the search, an optional window and trace."""

    search: TraceSearch = TraceSearch()
    window: Window | None = None
    trace: str | None = None


def _values(params: Mapping[str, Any], name: str) -> list[str]:
    value = params.get(name)
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else [value]
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def _moment(text: str, name: str) -> datetime:
    try:
        moment = pd.Timestamp(text)
    except ValueError:
        raise SearchError(f"link parameter {name}={text!r}: expected an ISO time such as "
                          "2026-11-26T08:00:00Z") from None
    if pd.isna(moment):
        raise SearchError(f"link parameter {name}={text!r}: expected an ISO time")
    moment = moment.tz_localize(UTC) if moment.tzinfo is None else moment.tz_convert(UTC)
    return moment.to_pydatetime()


def read_link(params: Mapping[str, Any], names: Mapping[str, str]) -> Link:
    """Query parameters -> a :class:`Link`; ``account`` may be an id or a name (``names``:
    id -> name). Raises :class:`SearchError` with one line naming the bad parameter."""
    by_name = {name: account for account, name in names.items()}
    accounts = []
    for value in _values(params, "account"):
        if value.isdigit() and len(value) == 12:
            accounts.append(value)
        elif value in by_name:
            accounts.append(by_name[value])
        else:
            raise SearchError(f"link parameter account={value!r}: not an account id (12 "
                              "digits) or a known account name")
    minimum = 0.0
    for value in _values(params, "min_ms")[-1:]:
        try:
            minimum = float(value)
        except ValueError:
            raise SearchError(f"link parameter min_ms={value!r}: expected milliseconds, "
                              "for example 500") from None
    annotations = tuple(pair for text in _values(params, "annotation")
                        for pair in parse_annotations(text))
    search = TraceSearch(
        services=tuple(_values(params, "service")), account_ids=tuple(accounts),
        teams=tuple(_values(params, "team")), statuses=tuple(_values(params, "status")),
        min_duration_ms=minimum, annotations=annotations)
    since, until = _values(params, "since")[-1:], _values(params, "until")[-1:]
    window = None
    if since or until:
        if not since:
            raise SearchError("link parameter until= needs since= as well")
        start = _moment(since[0], "since")
        end = _moment(until[0], "until") if until else datetime.now(UTC)
        window = Window(start, end)
    traces = _values(params, "trace")
    return Link(search=search, window=window, trace=traces[-1] if traces else None)


def link_params(link: Link) -> dict[str, str]:
    """A :class:`Link` as query parameters (the inverse of :func:`read_link`)."""
    search = link.search
    params: dict[str, str] = {}
    for name, values in (("service", search.services), ("account", search.account_ids),
                         ("team", search.teams), ("status", search.statuses)):
        if values:
            params[name] = ",".join(values)
    if search.min_duration_ms:
        params["min_ms"] = f"{search.min_duration_ms:g}"
    if search.annotations:
        params["annotation"] = format_annotations(search.annotations)
    if link.window is not None:
        params["since"] = link.window.since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        params["until"] = link.window.until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if link.trace:
        params["trace"] = link.trace
    return params


def rule_consumers(store: Store, *, account_id: str, region: str, bus: str, rule: str,
                   window: Window) -> pd.DataFrame:
    """Who consumes a rule's events: the services whose spans carry the annotation
    ``event_rule = rule`` in ``window`` (their account), else the accounts of the rule's
    target ARNs (service unknown).

    Columns: service (None when only the target is known), account_id.
    """
    traced = store.query(
        """
        SELECT DISTINCT service, account_id FROM spans
        WHERE start >= ? AND start < ?
          AND json_extract_string(annotations, '/event_rule') = ?
          AND name <> ?  -- the rule's own subsegment on the bus carries it too
        ORDER BY service, account_id
        """,
        [window.since, window.until, rule, rule],
    )
    if len(traced):
        return traced
    targets = store.query(
        "SELECT targets FROM rules WHERE account_id = ? AND region = ? AND bus = ? AND rule = ?",
        [account_id, region, bus, rule],
    )
    accounts: list[str] = []
    for text in targets["targets"]:
        for arn in target_arns(text):
            account = arn_account(arn)
            if account is not None and account not in accounts:
                accounts.append(account)
    services: list[str | None] = [None] * len(accounts)
    return pd.DataFrame({"service": services, "account_id": accounts},
                        columns=["service", "account_id"])


def consumer_link(consumers: pd.DataFrame, window: Window) -> dict[str, str]:
    """Query parameters of the Traces page filtered to a rule's consumers and window."""
    services = tuple(dict.fromkeys(s for s in consumers["service"] if isinstance(s, str)))
    accounts = tuple(dict.fromkeys(str(a) for a in consumers["account_id"]))
    return link_params(Link(search=TraceSearch(services=services, account_ids=accounts),
                            window=window))


# --- cached wrappers ------------------------------------------------------------------------------


def _filters(account_ids: tuple[str, ...], teams: tuple[str, ...],
             regions: tuple[str, ...]) -> Filters:
    return Filters(account_ids=account_ids, teams=teams, regions=regions)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_presence(store_base: str) -> Presence:
    return presence(open_store(store_base))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner="Searching traces…")
def load_search(store_base: str, *, account_ids: tuple[str, ...], teams: tuple[str, ...],
                regions: tuple[str, ...], search: TraceSearch, window: Window) -> pd.DataFrame:
    return search_traces(open_store(store_base), _filters(account_ids, teams, regions), search,
                         window)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_search_choices(store_base: str, window: Window) -> dict[str, list[str]]:
    return search_choices(open_store(store_base), window)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner="Reading the trace's spans…")
def load_waterfall(store_base: str, *, trace_id: str, member_trace_ids: tuple[str, ...],
                   start: datetime, end: datetime,
                   names: tuple[tuple[str, str], ...]) -> pd.DataFrame:
    spans = trace_spans(open_store(store_base), member_trace_ids, start, end)
    return waterfall(spans, trace_id, dict(names))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner="Drawing the service map…")
def load_service_map(store_base: str, *, account_ids: tuple[str, ...], teams: tuple[str, ...],
                     regions: tuple[str, ...], window: Window) -> ServiceMap:
    return service_map(open_store(store_base), _filters(account_ids, teams, regions), window)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner="Computing latency percentiles…")
def load_latency(store_base: str, *, account_ids: tuple[str, ...], teams: tuple[str, ...],
                 regions: tuple[str, ...], window: Window) -> pd.DataFrame:
    return latency(open_store(store_base), _filters(account_ids, teams, regions), window)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_rule_link(store_base: str, key: str, time_range: str, until: datetime
                   ) -> dict[str, str]:
    """Traces page query parameters for an Event-flow rule (``key``: RuleKey.encode())."""
    account_id, region, bus, rule = key.split("|", 3)
    window = Window(until - TIME_RANGES.get(time_range, TIME_RANGES["24h"]), until)
    consumers = rule_consumers(open_store(store_base), account_id=account_id, region=region,
                               bus=bus, rule=rule, window=window)
    return consumer_link(consumers, window)
