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
import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

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


# --- helpers ---------------------------------------------------------------------------------


def _present(value: Any) -> bool:
    return not (value is None or value is pd.NaT or
                (isinstance(value, float) and math.isnan(value)))


def _unique(values: Iterable[Any]) -> list[str]:
    """Distinct non-null values as strings, in first-seen order."""
    return list(dict.fromkeys(str(v) for v in values if _present(v) and str(v) != ""))


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
        if not isinstance(text, str) or not text:
            continue
        try:
            parsed = json.loads(text)
        except ValueError:
            continue
        if not isinstance(parsed, dict):
            continue
        for key, value in parsed.items():
            seen = merged.setdefault(str(key), [])
            if value not in seen:
                seen.append(value)
    return {key: values[0] if len(values) == 1 else values for key, values in merged.items()}


def entry_mask(spans: pd.DataFrame) -> pd.Series:
    """True for entry spans (see the module doc): the parent is missing, not in ``spans``
    (same trace), or recorded by a different service or account."""
    if spans.empty:
        return pd.Series(dtype=bool)
    owner = {(str(t), str(s)): (str(sv), str(a)) for t, s, sv, a in zip(
        spans["trace_id"], spans["span_id"], spans["service"], spans["account_id"],
        strict=True)}
    entries = []
    for trace, parent, service, account in zip(spans["trace_id"], spans["parent_id"],
                                               spans["service"], spans["account_id"],
                                               strict=True):
        if not _present(parent):
            entries.append(True)
            continue
        parent_owner = owner.get((str(trace), str(parent)))
        entries.append(parent_owner is None or parent_owner != (str(service), str(account)))
    return pd.Series(entries, index=spans.index, dtype=bool)


def _p(values: pd.Series, q: float) -> float | None:
    clean = values.dropna()
    return round(float(clean.quantile(q)), 3) if len(clean) else None


# --- trace summaries -------------------------------------------------------------------------


def status_of(faults: int, errors: int, throttles: int) -> str:
    """'fault' when any span faulted (5xx), else 'error' when any erred or was throttled
    (4xx, 429), else 'ok'."""
    if faults:
        return "fault"
    return "error" if errors or throttles else "ok"


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
    frame = stitched.reset_index(drop=True)
    starts = pd.to_datetime(frame["start"], utc=True)
    ends = pd.to_datetime(frame["end"], utc=True).fillna(starts)
    faults, errors, throttles = (_flag(frame, c) for c in ("fault", "error", "throttle"))
    breaks = frame["break"].notna() if "break" in frame else pd.Series(False, frame.index)
    originals = frame["original_trace_id"] if "original_trace_id" in frame \
        else frame["trace_id"]
    rows: list[dict[str, Any]] = []
    for trace_id, index in frame.groupby("trace_id", sort=False).indices.items():
        part = frame.iloc[index]
        root = part.iloc[0]
        start, end = starts.iloc[index].min(), ends.iloc[index].max()
        accounts = _unique(part["account_id"])
        members = _unique([trace_id, *originals.iloc[index]])
        n_faults, n_errors = int(faults.iloc[index].sum()), int(errors.iloc[index].sum())
        n_throttles = int(throttles.iloc[index].sum())
        rows.append({
            "trace_id": str(trace_id), "member_trace_ids": members,
            "start": start, "end": end,
            "duration_ms": round((end - start).total_seconds() * 1000, 3),
            "root_service": str(root["service"]), "root_name": str(root["name"]),
            "root_account_id": str(root["account_id"]),
            "accounts": accounts, "services": _unique(part["service"]),
            "teams": _unique(teams.get(a) for a in accounts),
            "span_count": len(index), "faults": n_faults, "errors": n_errors,
            "throttles": n_throttles, "breaks": int(breaks.iloc[index].sum()),
            "status": status_of(n_faults, n_errors, n_throttles),
            "annotations": json.dumps(merge_annotations(part["annotations"]),
                                      sort_keys=True),
        })
    summaries = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
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
    entries = frame[entry_mask(frame)].copy()
    entries["_ms"] = _durations(entries)
    entries["_error"] = _flag(entries, "error")
    entries["_fault"] = _flag(entries, "fault")
    entries["_region"] = entries.get("region", "")
    nodes = entries.groupby(["service", "account_id", "_region"], sort=True).agg(
        calls=("span_id", "size"), errors=("_error", "sum"), faults=("_fault", "sum"),
        p95_ms=("_ms", lambda s: _p(s, 0.95)))
    nodes = nodes.reset_index().rename(columns={"_region": "region"})[NODE_COLUMNS]
    owner = {(str(t), str(s)): (str(sv), str(a)) for t, s, sv, a in zip(
        frame["trace_id"], frame["span_id"], frame["service"], frame["account_id"],
        strict=True)}
    callers = [owner.get((str(t), str(p))) if _present(p) else None
               for t, p in zip(entries["trace_id"], entries["parent_id"], strict=True)]
    entries["_source_service"] = [c[0] if c else None for c in callers]
    entries["_source_account"] = [c[1] if c else None for c in callers]
    called = entries[entries["_source_service"].notna()].copy()
    if called.empty:
        edges = pd.DataFrame(columns=EDGE_COLUMNS)
    else:
        called["_bad"] = called["_error"] | called["_fault"]
        edges = called.groupby(["_source_service", "_source_account", "service",
                                "account_id"], sort=True).agg(
            calls=("span_id", "size"), errors=("_bad", "sum"),
            p95_ms=("_ms", lambda s: _p(s, 0.95))).reset_index()
        edges = edges.rename(columns={"_source_service": "source_service",
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
    out = grouped.agg(
        count=("span_id", "size"),
        p50_ms=("_ms", lambda s: _p(s, 0.50)),
        p95_ms=("_ms", lambda s: _p(s, 0.95)),
        p99_ms=("_ms", lambda s: _p(s, 0.99)),
        error_rate=("_bad", "mean"),
    ).reset_index()[LATENCY_COLUMNS]
    out["count"] = out["count"].astype("int64")
    for column in ("p50_ms", "p95_ms", "p99_ms", "error_rate"):
        out[column] = out[column].astype("float64")
    out["error_rate"] = out["error_rate"].round(4)
    return out
