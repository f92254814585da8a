"""Trace search on the Traces page: presence of spans and traces, the search query, the
pickers' choices, the results table and a result's label.

The search reads the derived ``traces`` dataset (one row per stitched trace, written by the
``traces`` step): every criterion is a ``?`` parameter of one DuckDB query, and only the
:data:`MAX_RESULTS` slowest matches leave DuckDB (docs/traces.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

import pandas as pd

from dashboard.filters import Filters
from dashboard.sql import in_list, list_params, scope_params, text_list
from dashboard.trace_criteria import TraceSearch, Window
from orgscope.store import Store

TRACES = "traces"
SPANS = "spans"
#: Rows of the results table (the slowest matches); the page says how many matched in all.
MAX_RESULTS = 500
#: Spans of a trace may start a little after the trace's own start and end (asynchronous
#: consumers, clock skew): the span reads widen the trace's window by this much.
SPAN_MARGIN = timedelta(minutes=10)


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


def trace_scope_sql(alias: str) -> str:
    """The sidebar's accounts and teams: a trace touching any of them. Four parameters."""
    return (f"(len(?::VARCHAR[]) = 0 OR list_has_any({alias}.accounts, ?::VARCHAR[])) AND "
            f"(len(?::VARCHAR[]) = 0 OR list_has_any({alias}.teams, ?::VARCHAR[]))")


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


def _json_pointer(key: str) -> str:
    """The JSON pointer of a top-level key ('/a~1b' for 'a/b'), a parameter, never SQL."""
    return "/" + key.replace("~", "~0").replace("/", "~1")


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
      AND {trace_scope_sql("t")}
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
