"""X-Ray traces of one account and region, read incrementally, as rows of ``spans``.

AWS APIs wrapped: ``xray:GetTraceSummaries`` (TimeRangeType ``TraceId``, following NextToken)
over the window since the watermark, then ``xray:BatchGetTraces`` (at most 5 trace ids a call,
following NextToken) for the trace ids found; both in the account whose segments they are.

Dataset returned: ``spans`` (orgscope/datasets/traces.py; columns in docs/datasets.md), one row
per segment and per subsegment (nested at any depth): trace_id (W3C form), span_id, parent_id
(for a subsegment, the enclosing (sub)segment), account_id, region, service (a subsegment takes
its segment's), name, origin, start, end, duration_ms (from the documents' epoch seconds),
fault, error, throttle, http_method, http_url, http_status, annotations (JSON text),
traceparent, source ('xray') and linked_from (null: stitching fills it on read,
orgscope/traces/stitch.py).

docs/traces.md, "The ``xray`` collector", explains the window, the sampling cap and the cost.
Invariants: later runs start ``overlap`` before the watermark and the watermark is the end of
the window; at most ``max_traces_per_run`` traces are retrieved a run, the rest of the window's
ids skipped for good (logged); a segment document that cannot be parsed is logged and skipped,
the rest of its trace kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from pydantic import Field

from orgscope.collect import (
    CollectContext,
    Collected,
    Collector,
    Window,
    incremental_window,
    pages,
)
from orgscope.config import CollectorConfig, Duration, Interval
from orgscope.datasets import SPANS
from orgscope.pricing import Pricing
from orgscope.traces.ids import check_span_id, parse_traceparent, to_w3c_trace_id
from orgscope.traces.otlp import loads

log = logging.getLogger(__name__)

#: BatchGetTraces takes 1-5 trace ids per call.
MAX_IDS_PER_CALL = 5
TRACEPARENT_KEY = "traceparent"


class XrayCollectorConfig(CollectorConfig):
    """X-Ray traces (docs/traces.md): back-fill, re-read overlap and a per-run sampling cap.

    X-Ray bills $0.50 per million traces retrieved or scanned; ``max_traces_per_run`` bounds
    what one run of one account and region retrieves.
    """

    interval: Interval = timedelta(minutes=1)
    backfill: Duration = timedelta(hours=1)
    overlap: Duration = timedelta(minutes=2)
    max_traces_per_run: int = Field(default=500, ge=1, le=100_000)

    def pricing(self) -> Pricing:
        """A run reads the traces of ``interval + overlap``, at most ``max_traces_per_run``
        (X-Ray bills the traces scanned too, uncapped)."""
        return Pricing("windowed", overlap=self.overlap, cap=self.max_traces_per_run)



# --- pure helpers ----------------------------------------------------------------------------


def read_window(collected_at: datetime, watermark: datetime | None,
                settings: XrayCollectorConfig) -> Window | None:
    """[watermark - overlap, now), never before now - backfill; None when empty."""
    return incremental_window(collected_at, watermark, settings.backfill, settings.overlap)


def sample_ids(trace_ids: Sequence[str], limit: int) -> list[str]:
    """Unique ids, sorted (X-Ray ids sort by start time); at most ``limit`` of them, evenly
    spread over the sorted list when there are more."""
    unique = sorted(set(trace_ids))
    if len(unique) <= limit:
        return unique
    step = len(unique) / limit
    return [unique[int(i * step)] for i in range(limit)]


def id_batches(trace_ids: Sequence[str], size: int = MAX_IDS_PER_CALL) -> list[list[str]]:
    return [list(trace_ids[i:i + size]) for i in range(0, len(trace_ids), size)]


def _stamp(value: Any, what: str) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} {value!r} is not epoch seconds")
    return datetime.fromtimestamp(float(value), tz=UTC)


def find_traceparent(document: Mapping[str, Any]) -> str | None:
    """The W3C traceparent a (sub)segment carries: annotation ``traceparent``, else
    ``metadata.<namespace>.traceparent``; None when absent or malformed (logged)."""
    annotations = document.get("annotations") or {}
    found = annotations.get(TRACEPARENT_KEY) if isinstance(annotations, Mapping) else None
    if found is None:
        for space in (document.get("metadata") or {}).values():
            if isinstance(space, Mapping) and isinstance(space.get(TRACEPARENT_KEY), str):
                found = space[TRACEPARENT_KEY]
                break
    if not isinstance(found, str):
        return None
    try:
        return parse_traceparent(found).format()
    except ValueError as error:
        log.warning("segment %s: %s; traceparent ignored", document.get("id"), error)
        return None


def _span_row(doc: Mapping[str, Any], *, trace_id: str, parent_id: str | None,
              service: str, account_id: str, region: str) -> dict[str, Any]:
    span_id = check_span_id(str(doc.get("id", "")))
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"segment {span_id} has no name")
    start = _stamp(doc.get("start_time"), "start_time")
    end = _stamp(doc["end_time"], "end_time") if doc.get("end_time") is not None else None
    http = doc.get("http") or {}
    request = http.get("request") or {} if isinstance(http, Mapping) else {}
    response = http.get("response") or {} if isinstance(http, Mapping) else {}
    status = response.get("status")
    annotations = doc.get("annotations") or {}
    return {
        "trace_id": trace_id, "span_id": span_id, "parent_id": parent_id,
        "account_id": account_id, "region": region, "service": service, "name": name,
        "origin": doc.get("origin"), "start": start, "end": end,
        "duration_ms": round((end - start).total_seconds() * 1000, 3) if end else None,
        "fault": bool(doc.get("fault", False)), "error": bool(doc.get("error", False)),
        "throttle": bool(doc.get("throttle", False)),
        "http_method": request.get("method"), "http_url": request.get("url"),
        "http_status": int(status) if isinstance(status, int | float) else None,
        "annotations": json.dumps(annotations, sort_keys=True) if annotations else None,
        "traceparent": find_traceparent(doc), "source": "xray", "linked_from": None,
    }


def segment_rows(document: Mapping[str, Any], *, account_id: str, region: str
                 ) -> list[dict[str, Any]]:
    """One segment document (parsed JSON) -> ``spans`` rows for it and its subsegments.

    Raises ValueError (or KeyError/TypeError) when the segment itself is malformed; a
    malformed subsegment is logged and skipped with its own subsegments.
    """
    trace_id = to_w3c_trace_id(str(document.get("trace_id", "")))
    service = str(document.get("name", ""))
    parent = document.get("parent_id")
    top = _span_row(document, trace_id=trace_id,
                    parent_id=check_span_id(parent) if isinstance(parent, str) else None,
                    service=service, account_id=account_id, region=region)
    rows = [top]
    stack: list[tuple[Mapping[str, Any], str]] = [
        (sub, top["span_id"]) for sub in document.get("subsegments") or []]
    while stack:
        sub, parent_id = stack.pop()
        try:
            row = _span_row(sub, trace_id=trace_id, parent_id=parent_id, service=service,
                            account_id=account_id, region=region)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            log.warning("xray %s %s: subsegment of %s skipped: %s", account_id, region,
                        top["span_id"], error)
            continue
        rows.append(row)
        stack.extend((child, row["span_id"]) for child in sub.get("subsegments") or [])
    return rows


def trace_rows(traces: Sequence[Mapping[str, Any]], *, account_id: str, region: str
               ) -> list[dict[str, Any]]:
    """BatchGetTraces ``Traces`` -> ``spans`` rows; bad segment documents logged, skipped."""
    rows: list[dict[str, Any]] = []
    for trace in traces:
        for segment in trace.get("Segments", []):
            try:
                document = loads(segment["Document"])
                if not isinstance(document, dict):
                    raise ValueError("document is not a JSON object")
                rows.extend(segment_rows(document, account_id=account_id, region=region))
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                log.warning("xray %s %s: segment %s of trace %s skipped: %s", account_id,
                            region, segment.get("Id"), trace.get("Id"), error)
    return rows


# --- AWS edge --------------------------------------------------------------------------------


def _summary_ids(xray: Any, window: Window) -> Iterator[str]:
    """GetTraceSummaries over ``window`` (by trace start time), following NextToken."""
    params: dict[str, Any] = {"StartTime": window.start, "EndTime": window.end,
                              "TimeRangeType": "TraceId"}
    for page in pages(xray.get_trace_summaries, params):
        for summary in page.get("TraceSummaries", []):
            if summary.get("Id"):
                yield str(summary["Id"])


def _traces(xray: Any, trace_ids: list[str]) -> Iterator[dict[str, Any]]:
    """BatchGetTraces for <= 5 ids, following NextToken."""
    for page in pages(xray.batch_get_traces, {"TraceIds": trace_ids}):
        yield from page.get("Traces", [])


def collect_xray(ctx: CollectContext) -> Collected:
    """X-Ray segments of one account and region since the watermark (see module doc)."""
    settings = ctx.settings if isinstance(ctx.settings, XrayCollectorConfig) \
        else XrayCollectorConfig()
    where = f"{ctx.account.id} {ctx.region}"
    window = read_window(ctx.collected_at, ctx.watermark, settings)
    if window is None:
        return Collected({SPANS.name: SPANS.empty_frame()}, ctx.watermark)
    xray = ctx.client("xray")
    found = list(_summary_ids(xray, window))
    chosen = sample_ids(found, settings.max_traces_per_run)
    if len(chosen) < len(set(found)):
        log.warning("xray %s: %d traces in %s..%s, %d retrieved (max_traces_per_run)",
                    where, len(set(found)), window.start.isoformat(), window.end.isoformat(),
                    len(chosen))
    traces: list[dict[str, Any]] = []
    for batch in id_batches(chosen):
        traces.extend(_traces(xray, batch))
    rows = trace_rows(traces, account_id=ctx.account.id, region=ctx.region)
    log.info("xray %s: %s..%s, %d trace ids, %d retrieved, %d spans", where,
             window.start.isoformat(), window.end.isoformat(), len(found), len(traces),
             len(rows))
    frame = pd.DataFrame(rows, columns=SPANS.columns) if rows else SPANS.empty_frame()
    if rows:
        frame["http_status"] = frame["http_status"].astype("Int64")
        frame["duration_ms"] = frame["duration_ms"].astype("float64")
    return Collected({SPANS.name: frame}, window.end)


XRAY = Collector(
    name="xray",
    settings=XrayCollectorConfig,
    feeds=("traces",),
    fn=collect_xray,
    datasets=(SPANS,),
    scope="regional",
    description="X-Ray segments and subsegments as spans (W3C ids), incremental, sampled.",
    iam_actions=("xray:BatchGetTraces", "xray:GetTraceSummaries"),
    probes=(
        ("xray:BatchGetTraces", lambda ctx: ctx.client("xray").batch_get_traces(
            TraceIds=["1-00000000-000000000000000000000000"])),
        ("xray:GetTraceSummaries", lambda ctx: ctx.client("xray").get_trace_summaries(
            StartTime=ctx.collected_at - timedelta(minutes=1), EndTime=ctx.collected_at)),
    ),
)
