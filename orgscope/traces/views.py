"""Views over stitched spans: trace summaries, the organization's service map, latency.

Pure functions (docs/traces.md, "Views"); X-Ray's own service graph stops at one account, so
orgscope computes these itself from the spans of every account.

**Entry spans.** A service's *entry* span is where a request enters it: a span whose parent is
absent, not among the spans, or recorded by another (service, account) — an X-Ray segment,
or an OpenTelemetry server/consumer span. Subsegments and internal spans (the DynamoDB call
inside payment-service, a validation step) are not entries. The service map and latency
percentiles count entries, so a service's latency is the time it took to answer, once per
call, not its inner steps averaged in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from orgscope.jsontext import json_object

#: Columns of :func:`trace_summaries` (and of the ``traces`` dataset, which adds two).
SUMMARY_COLUMNS: list[str] = [
    "trace_id", "member_trace_ids", "start", "end", "duration_ms", "root_service",
    "root_name", "root_account_id", "accounts", "services", "teams", "span_count", "faults",
    "errors", "throttles", "breaks", "status", "annotations",
]
NODE_COLUMNS: list[str] = ["service", "account_id", "region", "calls", "errors", "faults",
                           "p95_ms"]
EDGE_COLUMNS: list[str] = ["source_service", "source_account_id", "target_service",
                           "target_account_id", "calls", "errors", "p95_ms", "cross_account"]
LATENCY_COLUMNS: list[str] = ["bucket_start", "service", "account_id", "count", "p50_ms",
                              "p95_ms", "p99_ms", "error_rate"]
#: The latency percentiles: column and quantile (rounded to 3 decimals).
PERCENTILES: tuple[tuple[str, float], ...] = (("p50_ms", 0.50), ("p95_ms", 0.95),
                                              ("p99_ms", 0.99))
ERROR_RATE_DECIMALS = 4


# --- helpers ---------------------------------------------------------------------------------


def _flag(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series(False, index=frame.index)
    return frame[column].fillna(False).astype(bool)


def _durations(frame: pd.DataFrame) -> pd.Series:
    """duration_ms, or end - start where it is missing (NaN for spans without an end)."""
    duration = pd.to_numeric(frame["duration_ms"], errors="coerce").astype("float64")
    if "end" in frame:
        computed = (pd.to_datetime(frame["end"], utc=True)
                    - pd.to_datetime(frame["start"], utc=True)).dt.total_seconds() * 1000
        duration = duration.fillna(computed.astype("float64"))
    return duration


def merge_annotations(texts: Iterable[Any]) -> dict[str, Any]:
    """JSON annotation objects of many spans -> one object, key by key.

    A key whose spans agree keeps that value; a key whose spans disagree holds the list of
    its distinct values, in span order. Text that is not a JSON object is ignored.
    """
    merged: dict[str, list[Any]] = {}
    for text in texts:
        for key, value in json_object(text).items():
            seen = merged.setdefault(str(key), [])
            if value not in seen:
                seen.append(value)
    return {key: values[0] if len(values) == 1 else values for key, values in merged.items()}


def _owners(spans: pd.DataFrame) -> pd.DataFrame:
    """Each span's parent's (service, account) as ``_parent_service``/``_parent_account``
    (null where the parent is absent or not among ``spans``), aligned with ``spans``."""
    owners = spans[["trace_id", "span_id", "service", "account_id"]].drop_duplicates(
        ["trace_id", "span_id"]).rename(columns={"span_id": "parent_id",
                                                 "service": "_parent_service",
                                                 "account_id": "_parent_account"})
    keys = spans[["trace_id", "parent_id"]].astype(object).where(spans[["trace_id",
                                                                        "parent_id"]].notna())
    joined = keys.merge(owners.astype(object), on=["trace_id", "parent_id"], how="left")
    joined.index = spans.index
    return joined[["_parent_service", "_parent_account"]]


def entry_mask(spans: pd.DataFrame) -> pd.Series:
    """True for entry spans (see the module doc): the parent is missing, not in ``spans``
    (same trace), or recorded by a different service or account."""
    if spans.empty:
        return pd.Series(dtype=bool)
    parents = _owners(spans)
    entries = parents["_parent_service"].isna() | \
        (parents["_parent_service"] != spans["service"].astype(object)) | \
        (parents["_parent_account"] != spans["account_id"].astype(object))
    return entries.astype(bool)


def _quantile(grouped: Any, column: str, q: float) -> pd.Series:
    quantiles: pd.Series = grouped[column].quantile(q).round(3)
    return quantiles


# --- trace summaries -------------------------------------------------------------------------


def status_of(faults: int, errors: int, throttles: int) -> str:
    """'fault' when any span faulted (5xx), else 'error' when any erred or was throttled
    (4xx, 429), else 'ok'."""
    if faults:
        return "fault"
    return "error" if errors or throttles else "ok"


def _lists(frame: pd.DataFrame, column: str, order: pd.Index) -> pd.Series:
    """Per trace, the distinct non-empty values of ``column`` in row order."""
    pairs = frame[["trace_id", column]]
    pairs = pairs[pairs[column].notna() & (pairs[column].astype(str) != "")]
    pairs = pairs.drop_duplicates()
    lists: dict[str, list[str]] = {}
    for trace, item in zip(pairs["trace_id"].tolist(), pairs[column].astype(str).tolist(),
                           strict=True):
        lists.setdefault(trace, []).append(item)
    return pd.Series([lists.get(trace, []) for trace in order], index=order, dtype=object)


def trace_summaries(stitched: pd.DataFrame, teams: Mapping[str, str]) -> pd.DataFrame:
    """One row per stitched trace (:data:`SUMMARY_COLUMNS`), in the order of ``stitched``.

    ``stitched``: :func:`orgscope.traces.stitch.stitch` output. ``teams``: account id ->
    team; an account without a team contributes no team. ``member_trace_ids``: the collected
    trace ids (W3C form) the trace joins, the stitched one first. ``accounts``/``services``/
    ``teams``: distinct, in the order the trace reaches them (parent order). The root is the
    trace's first span (its earliest root). ``end`` is the latest end (a span without an end
    counts by its start). ``breaks`` counts spans with a ``break``. ``annotations``: JSON
    object text of every span's annotations merged (:func:`merge_annotations`).
    """
    if stitched.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    frame = stitched.reset_index(drop=True).copy()
    frame["trace_id"] = frame["trace_id"].astype(str)
    frame["_start"] = pd.to_datetime(frame["start"], utc=True)
    frame["_end"] = pd.to_datetime(frame["end"], utc=True).fillna(frame["_start"])
    for column in ("fault", "error", "throttle"):
        frame[f"_{column}"] = _flag(frame, column).astype("int64")
    frame["_break"] = (frame["break"].notna() if "break" in frame
                       else pd.Series(False, index=frame.index)).astype("int64")
    if "original_trace_id" not in frame:
        frame["original_trace_id"] = frame["trace_id"]
    frame["_team"] = frame["account_id"].astype(str).map(dict(teams))
    grouped = frame.groupby("trace_id", sort=False)
    out = grouped.agg(start=("_start", "min"), end=("_end", "max"),
                      span_count=("span_id", "size"), faults=("_fault", "sum"),
                      errors=("_error", "sum"), throttles=("_throttle", "sum"),
                      breaks=("_break", "sum"))
    order = out.index
    roots = frame.drop_duplicates("trace_id").set_index("trace_id").reindex(order)
    out["root_service"] = roots["service"].astype(str)
    out["root_name"] = roots["name"].astype(str)
    out["root_account_id"] = roots["account_id"].astype(str)
    out["accounts"] = _lists(frame, "account_id", order)
    out["services"] = _lists(frame, "service", order)
    out["teams"] = _lists(frame, "_team", order)
    originals = _lists(frame, "original_trace_id", order)
    out["member_trace_ids"] = [[t, *[o for o in others if o != t]]
                               for t, others in zip(order, originals, strict=True)]
    texts: dict[str, list[Any]] = {}
    for trace, text in zip(frame["trace_id"], frame["annotations"], strict=True):
        if isinstance(text, str) and text:
            texts.setdefault(trace, []).append(text)
    out["annotations"] = [json.dumps(merge_annotations(texts.get(t, [])), sort_keys=True)
                          for t in order]
    out["duration_ms"] = ((out["end"] - out["start"]).dt.total_seconds() * 1000).round(3)
    out["status"] = [status_of(f, e, t) for f, e, t in zip(
        out["faults"], out["errors"], out["throttles"], strict=True)]
    summaries = out.reset_index()[SUMMARY_COLUMNS]
    for column in ("span_count", "faults", "errors", "throttles", "breaks"):
        summaries[column] = summaries[column].astype("int64")
    summaries["duration_ms"] = summaries["duration_ms"].astype("float64")
    return summaries


# --- service map -----------------------------------------------------------------------------


def service_map(stitched: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The organization's service map from entry spans: (nodes, edges).

    nodes (:data:`NODE_COLUMNS`), one per (service, account_id, region) with an entry span:
    ``calls`` entries, ``errors`` entries flagged error (4xx, throttles included), ``faults``
    entries flagged fault (5xx), ``p95_ms`` of entry durations.

    edges (:data:`EDGE_COLUMNS`), one per (caller service, caller account, callee service,
    callee account): an entry span whose parent belongs to another (service, account) is a
    call from the parent's owner; ``errors`` counts calls whose entry erred or faulted,
    ``p95_ms`` the callee entries' durations, ``cross_account`` whether the accounts differ.
    Works on unstitched spans too (then re-linked consumers have no caller).
    """
    if stitched.empty:
        return pd.DataFrame(columns=NODE_COLUMNS), pd.DataFrame(columns=EDGE_COLUMNS)
    frame = stitched.reset_index(drop=True)
    parents = _owners(frame)
    mask = entry_mask(frame)
    entries = frame[mask].copy()
    entries["_source_service"] = parents.loc[mask, "_parent_service"]
    entries["_source_account"] = parents.loc[mask, "_parent_account"]
    entries["_ms"] = _durations(entries)
    entries["_error"] = _flag(entries, "error").astype("int64")
    entries["_fault"] = _flag(entries, "fault").astype("int64")
    entries["_region"] = entries.get("region", "")
    grouped = entries.groupby(["service", "account_id", "_region"], sort=True)
    nodes = grouped.agg(calls=("span_id", "size"), errors=("_error", "sum"),
                        faults=("_fault", "sum"))
    nodes["p95_ms"] = _quantile(grouped, "_ms", 0.95)
    nodes = nodes.reset_index().rename(columns={"_region": "region"})[NODE_COLUMNS]
    called = entries[entries["_source_service"].notna()].copy()
    if called.empty:
        edges = pd.DataFrame(columns=EDGE_COLUMNS)
    else:
        called["_bad"] = (called["_error"] | called["_fault"]).astype("int64")
        by_edge = called.groupby(["_source_service", "_source_account", "service",
                                  "account_id"], sort=True)
        edges = by_edge.agg(calls=("span_id", "size"), errors=("_bad", "sum"))
        edges["p95_ms"] = _quantile(by_edge, "_ms", 0.95)
        edges = edges.reset_index().rename(columns={"_source_service": "source_service",
                                                    "_source_account": "source_account_id",
                                                    "service": "target_service",
                                                    "account_id": "target_account_id"})
        edges["cross_account"] = edges["source_account_id"] != edges["target_account_id"]
        edges = edges[EDGE_COLUMNS]
    for table in (nodes, edges):
        for column in ("calls", "errors", "faults"):
            if column in table:
                table[column] = table[column].astype("int64")
        table["p95_ms"] = table["p95_ms"].astype("float64")
    edges["cross_account"] = edges["cross_account"].astype(bool)
    return nodes.reset_index(drop=True), edges.reset_index(drop=True)


# --- latency percentiles ---------------------------------------------------------------------


def check_freq(freq: str) -> pd.Timedelta:
    """The length of a fixed pandas frequency ('1min', '5min', '1h'); ValueError names the
    value and what is allowed."""
    try:
        length = pd.Timedelta(pd.tseries.frequencies.to_offset(freq))  # type: ignore[arg-type]
    except (ValueError, TypeError):
        raise ValueError(f"latency bucket {freq!r} must be a fixed pandas frequency such as "
                         "'1min', '5min', '15min' or '1h'") from None
    if length <= pd.Timedelta(0):
        raise ValueError(f"latency bucket {freq!r} must be longer than zero")
    return length


def latency_percentiles(spans: pd.DataFrame, freq: str) -> pd.DataFrame:
    """Per time bucket, service and account: entry-span latency p50/p95/p99 and error rate.

    ``spans``: rows of ``spans`` (stitched or not). ``freq``: the bucket, a fixed pandas
    frequency ('5min'); a span falls in the bucket of its start. ``count``: entry spans;
    ``error_rate``: the share of them flagged error or fault; percentiles by linear
    interpolation over entries with a duration. Sorted by bucket, service, account.
    """
    check_freq(freq)
    if spans.empty:
        return pd.DataFrame(columns=LATENCY_COLUMNS)
    frame = spans.reset_index(drop=True)
    entries = frame[entry_mask(frame)].copy()
    entries["_ms"] = _durations(entries)
    entries["_bad"] = _flag(entries, "error") | _flag(entries, "fault")
    entries["bucket_start"] = pd.to_datetime(entries["start"], utc=True).dt.floor(freq)
    grouped = entries.groupby(["bucket_start", "service", "account_id"], sort=True)
    out = grouped.agg(count=("span_id", "size"), error_rate=("_bad", "mean"))
    for name, q in PERCENTILES:
        out[name] = _quantile(grouped, "_ms", q)
    out["error_rate"] = out["error_rate"].round(ERROR_RATE_DECIMALS)
    return latency_frame(out.reset_index())


def latency_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Latency rows in :data:`LATENCY_COLUMNS` order and types (bucket_start UTC, count
    int64, the rest float64), whichever form computed them."""
    out = frame[LATENCY_COLUMNS].reset_index(drop=True)
    out["bucket_start"] = pd.to_datetime(out["bucket_start"], utc=True)
    out["count"] = out["count"].astype("int64")
    for column in ("p50_ms", "p95_ms", "p99_ms", "error_rate"):
        out[column] = out[column].astype("float64")
    return out


def latency_percentiles_sql(spans_sql: str) -> str:
    """:func:`latency_percentiles` as one DuckDB query, for more spans than pandas should
    hold: only the buckets leave DuckDB. Pass its result through :func:`latency_frame`.

    ``spans_sql``: a SELECT of ``spans`` rows (at least trace_id, span_id, parent_id,
    service, account_id, start, end, duration_ms, error, fault), whose ``?`` parameters
    come first; one more parameter follows: the bucket, an INTERVAL.

    The same definitions as :func:`latency_percentiles`: entry spans (no parent among these
    spans, or a parent of another service or account), a span's duration_ms else
    end - start, percentiles by linear interpolation (3 decimals), error rate the share of
    entries flagged error or fault (4 decimals), buckets floored from the epoch by start.
    """
    percentiles = ",\n           ".join(
        f"round(quantile_cont(s.ms, {q}), 3) AS {name}" for name, q in PERCENTILES)
    return f"""
    WITH s AS (
        SELECT s.trace_id, s.span_id, s.parent_id, s.service, s.account_id, s.start,
               coalesce(s.error, false) OR coalesce(s.fault, false) AS bad,
               coalesce(s.duration_ms,
                        date_diff('microsecond', s.start, s."end") / 1000.0) AS ms
        FROM ({spans_sql}) s
    ),
    owners AS (
        SELECT trace_id, span_id, any_value(service) AS service,
               any_value(account_id) AS account_id
        FROM s GROUP BY trace_id, span_id
    )
    SELECT time_bucket(?::INTERVAL, s.start, TIMESTAMPTZ '1970-01-01 00:00:00+00')
               AS bucket_start,
           s.service, s.account_id, count(*) AS count,
           {percentiles},
           round(avg(CASE WHEN s.bad THEN 1.0 ELSE 0.0 END), {ERROR_RATE_DECIMALS}) AS error_rate
    FROM s LEFT JOIN owners o ON o.trace_id = s.trace_id AND o.span_id = s.parent_id
    WHERE o.service IS NULL OR o.service <> s.service OR o.account_id <> s.account_id
    GROUP BY ALL
    ORDER BY bucket_start, s.service, s.account_id
    """
