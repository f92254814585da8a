"""One stitched trace as waterfall rows: its spans read from the store, stitched again for
parent order and depth (:func:`orgscope.traces.stitch.stitch`), each row with its hover."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from dashboard.traces_search import SPAN_MARGIN
from orgscope.store import Store
from orgscope.traces.stitch import stitch
from orgscope.untrusted import plotly_text

#: What each break in docs/traces.md means, for hovers and captions.
BREAK_HELP: dict[str, str] = {
    "no-traceparent": "event consumer without a traceparent (scheduled, replayed or AWS "
    "service event): the trace cannot be followed back to a producer",
    "producer-missing": "its traceparent names a span that was not collected (another "
    "region, an account not read, or sampled away)",
    "bad-traceparent": "its traceparent is malformed",
    "missing-parent": "its parent span was not collected",
    "cycle": "parent ids that loop",
    "span-id-conflict": "another account sent a span with the same trace and span id: every "
    "claimant is shown, none replaces another",
    "ambiguous-parent": "its parent id is claimed by spans of several other accounts, so its "
    "parent cannot be told",
}


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
    accounts_of: dict[str, set[str]] = {}
    for span_id, account in zip(rows["span_id"], rows["account_id"], strict=True):
        accounts_of.setdefault(str(span_id), set()).add(str(account))
    records = []
    for index, record_in in enumerate(rows.to_dict("records")):
        span = {str(k): v for k, v in record_in.items()}
        parent = span.get("parent_id")
        account_id = str(span["account_id"])
        parent_account = _parent_account(accounts_of.get(parent, set())
                                         if isinstance(parent, str) else set(), account_id)
        duration = span.get("duration_ms")
        duration = float(duration) if duration is not None and pd.notna(duration) else 0.0
        broken = span.get("break") if isinstance(span.get("break"), str) else None
        relinked = isinstance(span.get("linked_from"), str)
        record = {
            "row": index, "span_id": span["span_id"], "parent_id": parent,
            "label": "\u00a0\u00a0" * int(span["depth"]) + plotly_text(span["name"]),
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


def _parent_account(claimants: set[str], own: str) -> str | None:
    """The account of a span's parent: its own when its account claims the parent id (as
    stitching decides), the only claimant, or None (not collected, or claimed by several)."""
    if own in claimants:
        return own
    return next(iter(claimants)) if len(claimants) == 1 else None


def _span_hover(span: Mapping[str, Any], names: Mapping[str, str]) -> str:
    """The span's hover, as Plotly HTML with every value from the span escaped."""
    lines = [f"<b>{plotly_text(span['service'])}</b> · {plotly_text(span['name'])}",
             f"{plotly_text(span['account'])} ({plotly_text(span['account_id'])}) "
             f"{plotly_text(span['region'])}",
             f"{span['duration_ms']:,.1f} ms, from +{span['offset_ms']:,.1f} ms · "
             f"{span['status']}"]
    status = span.get("http_status")
    if status is not None and pd.notna(status):
        method = plotly_text(span.get("http_method") or "")
        lines.append(f"HTTP {method} {plotly_text(span.get('http_url') or '')} → {int(status)}")
    if span["crossing"]:
        parent = span["parent_account"]
        lines.append(f"crosses from {plotly_text(names.get(parent, parent))} into "
                     f"{plotly_text(span['account'])}")
    if span["relinked"]:
        lines.append("re-linked to its producer by the event's traceparent")
    if span["break"]:
        lines.append(f"break ({plotly_text(span['break'])}): "
                     f"{BREAK_HELP.get(span['break'], '')}")
    return "<br>".join(lines)
