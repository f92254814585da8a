"""Latency percentiles of the Traces page: :func:`orgscope.traces.views.latency_percentiles`
computed in DuckDB (the owner's :func:`~orgscope.traces.views.latency_percentiles_sql`) over
every span of the range in the sidebar's accounts, teams and regions, and the chart's bucket."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd

from dashboard.buckets import bucket_for
from dashboard.filters import Filters
from dashboard.sql import in_list, list_params
from dashboard.trace_criteria import Window
from orgscope.durations import bucket_text
from orgscope.store import Store
from orgscope.traces import views

#: Latency chart points per series, at most.
LATENCY_POINTS = 60


def _span_scope_sql(alias: str) -> str:
    """Spans of the sidebar's accounts (by id and team) and regions. Six parameters."""
    return f"""{in_list(f"{alias}.account_id")}
      AND (len(?::VARCHAR[]) = 0 OR {alias}.account_id IN (
          SELECT account_id FROM accounts WHERE list_contains(?::VARCHAR[], team)))
      AND {in_list(f"{alias}.region")}"""


def _span_scope_params(filters: Filters) -> list[Any]:
    return [*list_params(filters.account_ids), *list_params(filters.teams),
            *list_params(filters.regions)]


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

    Columns: bucket_start, service, account_id, count, p50_ms, p95_ms, p99_ms, error_rate,
    sorted by the first three.
    """
    spans_sql = f"""
        SELECT * FROM spans s
        WHERE s.start >= ? AND s.start < ? AND {_span_scope_sql("s")}"""
    params = [window.since, window.until, *_span_scope_params(filters),
              latency_bucket(window.length)]
    frame = store.query(views.latency_percentiles_sql(spans_sql), params)
    return views.latency_frame(frame)


def describe_latency_bucket(length: timedelta) -> str:
    return bucket_text(latency_bucket(length))
