"""The ``traces`` step: stitch the recent spans again and store one summary per trace.

Reads ``spans`` (every account and source) from ``[traces] window + max_duration`` before now,
stitches them (orgscope/traces/stitch.py) and writes ``traces``
(orgscope/traces/views.py ``trace_summaries``, plus ``merged_into`` and ``stitched_at``) for
the traces that *started* within the last ``window``. docs/traces.md, "The ``traces`` step and
dataset", explains why ``max_duration`` more is read and when the window reaches further back
(the first run, a pause longer than ``window``; never further than the span collectors'
``backfill``). Invariants:

* Idempotent: every run re-stitches the whole window, and the dataset's unique key
  (``trace_id``) keeps the newest row.
* A collected trace that was stored on its own and has since joined another gets a row with
  ``merged_into`` set to the trace it joined, replacing its standalone row; readers skip rows
  with ``merged_into`` (:func:`read_traces`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from orgscope.config import Config
from orgscope.datasets import SPANS, TRACES
from orgscope.store import Store
from orgscope.traces.stitch import STITCHED_COLUMNS, stitch
from orgscope.traces.views import SUMMARY_COLUMNS, trace_summaries

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TracesUpdate:
    """What one run of the step did: the stitched spans it read, the ``traces`` rows of its
    window (``rows``, without traces seen only in part) and those it wrote because they were
    new or changed (``written``)."""

    at: datetime
    since: datetime
    stitched: pd.DataFrame
    rows: pd.DataFrame
    written: pd.DataFrame

    @property
    def current(self) -> pd.DataFrame:
        """The window's traces, without the rows of traces that joined another."""
        return self.rows[self.rows["merged_into"].isna()] if len(self.rows) else self.rows

    @property
    def current_spans(self) -> pd.DataFrame:
        """The stitched spans of the window's current traces (what export may send): not
        those of a trace seen only in part (:func:`sees_less`), nor of traces that started
        before the window."""
        current = set(self.current["trace_id"]) if len(self.rows) else set()
        return self.stitched[self.stitched["trace_id"].isin(current)] \
            if len(self.stitched) else self.stitched

    @property
    def traces(self) -> int:
        return len(self.current)

    def summary(self) -> str:
        current = self.current
        joined = int((current["member_trace_ids"].map(len) > 1).sum()) if len(current) else 0
        broken = int((current["breaks"] > 0).sum()) if len(current) else 0
        return (f"traces: {self.traces} since {self.since:%H:%M} UTC stitched from "
                f"{len(self.stitched)} spans ({joined} joined across a broken trace id, "
                f"{broken} with breaks; {len(self.written)} rows new or changed)")


def run_id(now: datetime) -> str:
    return f"traces-{now:%Y%m%dT%H%M%SZ}"


def account_teams(config: Config, store: Store) -> dict[str, str]:
    """account id -> team: the stored ``accounts`` snapshot, overridden by config.toml."""
    teams: dict[str, str] = {}
    frame = store.query("SELECT account_id, team FROM accounts")
    for account_id, team in zip(frame["account_id"], frame["team"], strict=True):
        if isinstance(team, str) and team:
            teams[str(account_id)] = team
    teams.update({account.id: account.team for account in config.accounts})
    return teams


def read_spans(store: Store, since: datetime) -> pd.DataFrame:
    """Stored spans that started at or after ``since`` (``spans`` columns)."""
    columns = ", ".join(f'"{c}"' for c in SPANS.columns)
    return store.query(f"SELECT {columns} FROM spans WHERE start >= ?", [since])


def summarize(stitched: pd.DataFrame, teams: Mapping[str, str], since: datetime,
              stitched_at: datetime) -> pd.DataFrame:
    """``traces`` rows: a summary of every stitched trace that started at or after ``since``,
    and a ``merged_into`` row for every other collected trace id each one joined."""
    summaries = trace_summaries(stitched, teams)
    if summaries.empty:
        return TRACES.empty_frame()
    summaries = summaries[summaries["start"] >= pd.Timestamp(since)].reset_index(drop=True)
    summaries["merged_into"] = None
    # every collected trace that joined a written one, summarized on its own, in one pass
    joined = stitched[stitched["trace_id"].isin(set(summaries["trace_id"]))
                      & (stitched["original_trace_id"] != stitched["trace_id"])]
    parts = [summaries]
    if len(joined):
        into = dict(zip(joined["original_trace_id"], joined["trace_id"], strict=True))
        alone = trace_summaries(joined.assign(trace_id=joined["original_trace_id"]), teams)
        alone["merged_into"] = alone["trace_id"].map(into)
        parts.append(alone)
    frame = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(
        len(p) for p in parts) else TRACES.empty_frame()
    frame["stitched_at"] = stitched_at
    return frame[TRACES.columns].reset_index(drop=True)


#: What makes a stored summary out of date (``stitched_at`` aside).
_COMPARED = [c for c in TRACES.columns if c != "stitched_at"]


def _text(value: Any) -> str:
    """A cell as comparable text: lists (DuckDB gives arrays) joined, missing as ''."""
    if isinstance(value, str):
        return value
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    if value is None or value is pd.NA or value is pd.NaT or \
            (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _signatures(frame: pd.DataFrame) -> list[str]:
    """One text per row of ``traces`` columns, equal when the rows say the same."""
    columns = []
    for column in _COMPARED:
        values = frame[column]
        if column in ("start", "end"):
            values = pd.to_datetime(values, utc=True).dt.as_unit("us").astype("int64")
        elif column == "duration_ms":
            values = values.astype(float).round(3)
        columns.append([_text(v) for v in values.tolist()])
    return ["|".join(parts) for parts in zip(*columns, strict=True)]


def changed(rows: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """The rows that are new or differ from the stored row of the same ``trace_id``."""
    if rows.empty or stored.empty:
        return rows
    before = dict(zip(stored["trace_id"], _signatures(stored), strict=True))
    now = _signatures(rows)
    keep = [before.get(trace) != signature
            for trace, signature in zip(rows["trace_id"], now, strict=True)]
    return rows[keep].reset_index(drop=True)


def sees_less(rows: pd.DataFrame, stored: pd.DataFrame) -> pd.Series:
    """True for the rows that see less of their trace than the stored row of the same
    ``trace_id`` did (pure).

    Spans are never removed, so a trace only grows: its start moves earlier, its span count
    rises, a collected trace that joined its producer stays joined. A row with a later start,
    fewer spans, or no ``merged_into`` where the stored row had one was stitched from a read
    that no longer reaches the trace's first spans (a trace longer than ``max_duration``, or
    a consumer that started more than ``max_duration`` after its producer, once the window
    has moved on): writing it would replace a whole trace with its tail, or split a joined
    consumer off again as a trace of its own.
    """
    if rows.empty or stored.empty:
        return pd.Series(False, index=rows.index)
    last = stored.drop_duplicates("trace_id", keep="last").set_index("trace_id")
    before = last.reindex(rows["trace_id"])
    before.index = rows.index
    start = pd.to_datetime(rows["start"], utc=True).dt.as_unit("us")
    stored_start = pd.to_datetime(before["start"], utc=True).dt.as_unit("us")
    later = (stored_start < start).fillna(False)
    fewer = (pd.to_numeric(before["span_count"]) > pd.to_numeric(rows["span_count"])
             ).fillna(False)
    split = before["merged_into"].notna() & rows["merged_into"].isna()
    return (later | fewer | split).astype(bool)


def window_start(moment: datetime, window: timedelta, backfill: timedelta,
                 last_run: datetime | None) -> datetime:
    """The earliest trace start this run covers (pure).

    Normally ``moment - window``; when the previous run (``last_run``, None for none) is
    longer ago than the window, ``last_run - window`` so nothing between the two runs is
    skipped; never further back than ``backfill`` (what the span collectors read at most).
    """
    start = moment - window
    if last_run is None:
        start = moment - max(backfill, window)
    elif last_run < moment:
        start = min(start, last_run - window)
    return max(start, moment - max(backfill, window))


def last_stitched(store: Store) -> datetime | None:
    """When the step last wrote ``traces`` rows (None before its first write)."""
    frame = store.query("SELECT max(stitched_at) AS at FROM traces")
    value = frame["at"].iloc[0] if len(frame) else None
    return None if value is None or pd.isna(value) else pd.Timestamp(value).to_pydatetime()


def update_traces(config: Config, store: Store, now: datetime | None = None,
                  write: bool = True) -> TracesUpdate:
    """Stitch the spans of the last ``window`` (+ ``max_duration``) and write the ``traces``
    rows that are new or changed since the stored ones."""
    moment = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    backfill = max(config.collector_value("xray", "backfill", timedelta),
                   config.collector_value("otel", "backfill", timedelta))
    since = window_start(moment, config.traces.window, backfill, last_stitched(store))
    clock = time.monotonic()
    spans = read_spans(store, since - config.traces.max_duration)
    stitched = stitch(spans) if len(spans) else pd.DataFrame(columns=STITCHED_COLUMNS)
    rows = summarize(stitched, account_teams(config, store), since, moment)
    stored = store.query("SELECT * EXCLUDE (date) FROM traces WHERE trace_id IN "
                         "(SELECT unnest(?::VARCHAR[]))", [rows["trace_id"].tolist()]) \
        if len(rows) else TRACES.empty_frame()
    partial = sees_less(rows, stored)
    if partial.any():
        log.debug("traces: %d traces seen only in part (their first spans are before the "
                  "read), stored rows kept", int(partial.sum()))
    rows = rows[~partial].reset_index(drop=True)
    written = changed(rows, stored)
    if write and len(written):
        store.write(TRACES.name, written, run_id(moment))
    log.info("traces: %d spans read, %d traces, %d rows written (%d merged) in %.2fs",
             len(spans), len(rows), len(written),
             int(written["merged_into"].notna().sum()) if len(written) else 0,
             time.monotonic() - clock)
    return TracesUpdate(moment, since, stitched, rows, written)


def read_traces(store: Store, start: datetime, end: datetime | None = None) -> pd.DataFrame:
    """Stored trace summaries that started in [start, end), newest first, without the rows
    of traces that have joined another (``merged_into``): the contract columns only."""
    columns = ", ".join(f'"{c}"' for c in SUMMARY_COLUMNS)
    sql = f"SELECT {columns} FROM traces WHERE merged_into IS NULL AND start >= ?"
    params: list[object] = [start]
    if end is not None:
        sql += " AND start < ?"
        params.append(end)
    return store.query(sql + " ORDER BY start DESC", params)

