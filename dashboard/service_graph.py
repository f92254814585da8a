"""The organization's service map on the Traces page: spans of the most recent traces,
:func:`orgscope.traces.views.service_map` over them, each node's p99 rise, and a layout
(accounts as boxes, left to right along the calls)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dashboard.filters import Filters
from dashboard.sql import in_list, list_params, scope_params
from dashboard.trace_criteria import Window
from dashboard.traces_search import SPAN_MARGIN, trace_scope_sql
from orgscope.store import Store
from orgscope.traces import views
from orgscope.traces.stitch import stitch

#: The service map is computed from at most this many of the most recent traces in range.
MAP_MAX_TRACES = 1000
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


def map_spans(store: Store, filters: Filters, window: Window,
              max_traces: int = MAP_MAX_TRACES) -> tuple[pd.DataFrame, int]:
    """Spans of the ``max_traces`` most recent traces in ``window`` that touch the sidebar's
    accounts and teams (whole traces, so calls into other accounts show), in its regions.

    Returns (spans rows, how many traces matched in all).
    """
    sql = f"""
    WITH chosen AS (
        SELECT t.member_trace_ids, count(*) OVER () AS matched FROM traces t
        WHERE t.start >= ? AND t.start < ? AND t.merged_into IS NULL AND {trace_scope_sql("t")}
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
