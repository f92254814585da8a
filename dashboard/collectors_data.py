"""Data layer of the Collectors page: the monitoring's own bill and its run history.

Same two layers as :mod:`dashboard.data`: plain functions over a :class:`~orgscope.store.Store`
(unit-tested on a tmp store) and ``load_*`` wrappers cached for 30 s that take only the store
path and hashable filter values. The arithmetic is :mod:`orgscope.bill`'s; this module reads
the store for it and narrows the result to the sidebar's filters.

The run history is aggregated in DuckDB with ``time_bucket`` to at most
:data:`~dashboard.buckets.MAX_POINTS` buckets per collector, pruned to the date
partitions of the time range: a 30-day range of a hundred accounts (about seven million runs)
reaches the browser as a few hundred points per line.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from dashboard.buckets import bucket_for
from dashboard.data import CACHE_TTL_S, account_choices, open_store
from dashboard.filters import Filters
from orgscope import bill, plugins
from orgscope.config import Config
from orgscope.cost.categories import ce_requests_sql
from orgscope.durations import bucket_text
from orgscope.plugins import load_config
from orgscope.store import Store

log = logging.getLogger(__name__)

#: Intervals the what-if offers (the config accepts 30s to 1d).
WHAT_IF_INTERVALS: tuple[str, ...] = (
    "30s", "1m", "2m", "5m", "10m", "15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d",
)

HISTORY_COLUMNS = ["bucket", "collector", "runs", "failed", "api_calls", "metrics_requested",
                   "ce_requests", "traces_retrieved", "dollars"]


def scoped_accounts(choices: pd.DataFrame, filters: Filters) -> tuple[str, ...] | None:
    """The account ids the account and team filters leave (None: no filter, every account,
    including ones the store has no reachability row for)."""
    if not filters.account_ids and not filters.teams:
        return None
    keep = choices
    if filters.account_ids:
        keep = keep[keep["account_id"].isin(filters.account_ids)]
    if filters.teams:
        keep = keep[keep["team"].isin(filters.teams)]
    ids = set(keep["account_id"])
    if filters.account_ids and not filters.teams:
        ids |= set(filters.account_ids)  # an account the store does not list yet
    return tuple(sorted(str(i) for i in ids))


def in_scope(frame: pd.DataFrame, accounts: tuple[str, ...] | None,
             regions: tuple[str, ...]) -> pd.DataFrame:
    """Rows of ``frame`` (account_id, region columns) within the filters."""
    mask = pd.Series(True, index=frame.index)
    if accounts is not None:
        mask &= frame["account_id"].isin(accounts)
    if regions:
        mask &= frame["region"].isin(regions)
    return frame[mask]


def with_names(billed: pd.DataFrame, names: Mapping[str, str]) -> pd.DataFrame:
    """The bill with an ``account`` column (display name, the id when unknown) first."""
    frame = billed.copy()
    frame.insert(0, "account", [names.get(a, a) for a in frame["account_id"]])
    return frame


def run_history(store: Store, since: datetime, until: datetime,
                accounts: tuple[str, ...] | None, regions: tuple[str, ...], *,
                max_points: int) -> pd.DataFrame:
    """Runs per time bucket and collector over [since, until): runs, failed, api_calls,
    metrics_requested, ce_requests, traces_retrieved and the dollars they cost
    (:func:`orgscope.bill.spend`). Buckets are :func:`bucket_for` the range, UTC.

    Columns: :data:`HISTORY_COLUMNS`.
    """
    bucket = bucket_for(until - since, max_points)
    sql = f"""
    SELECT time_bucket(?::INTERVAL, timezone('UTC', started_at)) AS bucket, collector,
           count(*) AS runs, count(*) FILTER (WHERE status <> 'ok') AS failed,
           sum(api_calls) AS api_calls, sum(metrics_requested) AS metrics_requested,
           sum({ce_requests_sql()}) AS ce_requests,
           sum(coalesce(traces_retrieved, 0)) AS traces_retrieved
    FROM runs
    WHERE date >= ?::DATE AND started_at >= ? AND started_at < ?
      AND (? OR list_contains(?::VARCHAR[], account_id))
      AND (len(?::VARCHAR[]) = 0 OR list_contains(?::VARCHAR[], region))
    GROUP BY ALL ORDER BY bucket, collector
    """
    everyone = accounts is None
    params: list[Any] = [bucket, since.date(), since, until, everyone, list(accounts or ()),
                         list(regions), list(regions)]
    frame = store.query(sql, params)
    frame["bucket"] = pd.to_datetime(frame["bucket"]).dt.tz_localize(UTC)
    for column in ("runs", "failed", "api_calls", "metrics_requested", "ce_requests",
                   "traces_retrieved"):
        frame[column] = frame[column].astype("int64")
    frame = _zero_filled(frame, bucket)
    frame["dollars"] = bill.spend(frame["metrics_requested"], frame["ce_requests"],
                                  frame["traces_retrieved"])
    return frame[HISTORY_COLUMNS]


def _zero_filled(frame: pd.DataFrame, bucket: timedelta) -> pd.DataFrame:
    """Every collector in every bucket between the first and the last, 0 where it did not
    run, so a line does not join two runs 8 hours apart as if calls were made between."""
    if frame.empty:
        return frame
    grid = pd.date_range(frame["bucket"].min(), frame["bucket"].max(),
                         freq=pd.Timedelta(bucket))
    index = pd.MultiIndex.from_product([grid, sorted(set(frame["collector"]))],
                                       names=["bucket", "collector"])
    filled = frame.set_index(["bucket", "collector"]).reindex(index, fill_value=0)
    return filled.reset_index()


def history_window(time_range: str, now: datetime) -> tuple[datetime, datetime]:
    """[since, until) of a time range label ending at ``now``, minute-aligned for caching."""
    until = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return until - Filters(time_range=time_range).window, until


def bucket_label(time_range: str, max_points: int) -> str:
    return bucket_text(bucket_for(Filters(time_range=time_range).window, max_points))


# --- cached wrappers ------------------------------------------------------------------------


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_config_cached(config_source: str) -> Config:
    return load_config(config_source)


def usage(store: Store, config: Config, now: datetime) -> pd.DataFrame:
    """:func:`orgscope.bill.read_usage`, each collector's typical run looked for only as far
    back as its interval needs (:func:`orgscope.bill.sample_windows`)."""
    windows = bill.sample_windows(config, plugins.COLLECTORS)
    return bill.read_usage(store, now, windows=windows)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_usage(store_base: str, config_source: str) -> pd.DataFrame:
    return usage(open_store(store_base), load_config(config_source), datetime.now(UTC))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_scope(store_base: str, account_ids: tuple[str, ...],
               teams: tuple[str, ...]) -> tuple[str, ...] | None:
    choices = account_choices(open_store(store_base))
    return scoped_accounts(choices, Filters(account_ids=account_ids, teams=teams))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_history(store_base: str, time_range: str, accounts: tuple[str, ...] | None,
                 regions: tuple[str, ...], max_points: int) -> pd.DataFrame:
    since, until = history_window(time_range, datetime.now(UTC))
    return run_history(open_store(store_base), since, until, accounts, regions,
                       max_points=max_points)
