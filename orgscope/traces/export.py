"""OTLP export: stitched cross-account traces and orgscope's own collection runs, sent to a
team's Jaeger, Tempo or vendor backend (docs/traces.md, "Export").

docs/traces.md, "Export", lists the endpoints, the spans and attributes sent and when.
Invariants:

* Off unless an endpoint is configured (``[export] otlp_endpoint``,
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``). Headers come from
  ``OTEL_EXPORTER_OTLP_HEADERS`` / ``OTEL_EXPORTER_OTLP_TRACES_HEADERS``, read by the exporter
  itself, never from config.toml.
* A stitched trace is sent once it is settled (its last span ended ``[export] settle`` ago);
  collection spans are one trace per collection cycle, from the ``runs`` rows.
* What was sent is recorded in ``otlp_exports`` (kind 'trace' or 'cycle', key), so each trace
  and cycle is sent once, whole, in one request; the requests before a failed one stay
  recorded. A failed export is logged and retried on the next run while the trace is still in
  the traces window (cycles: for :data:`COLLECTION_LOOKBACK`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import pandas as pd
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from orgscope.config import Config, ExportConfig
from orgscope.datasets import OTLP_EXPORTS
from orgscope.jsontext import json_object
from orgscope.store import Store
from orgscope.traces.views import entry_mask

log = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"
ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACES_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
SCOPE = InstrumentationScope("orgscope")
#: Spans per export request.
BATCH = 2000
#: Collection cycles older than this are never sent (the first export sends the last hour).
COLLECTION_LOOKBACK = timedelta(hours=1)
ORGSCOPE_SERVICE = "orgscope"


class SpanSender(Protocol):
    """What the export needs of an exporter (OTLPSpanExporter, or a test's)."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult: ...

    def shutdown(self) -> None: ...


SenderFactory = Callable[[str | None, float], SpanSender]


def resolve_endpoint(settings: ExportConfig, environ: Mapping[str, str] | None = None
                     ) -> tuple[bool, str | None]:
    """(enabled, the full traces URL to pass, or None to let the exporter read the
    environment). Disabled when neither config nor environment names an endpoint."""
    env = os.environ if environ is None else environ
    if settings.otlp_endpoint:
        return True, settings.otlp_endpoint + TRACES_PATH
    if env.get(TRACES_ENDPOINT_ENV) or env.get(ENDPOINT_ENV):
        return True, None
    return False, None


def shown(url: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The endpoint for logs: scheme://host:port only (never credentials or paths)."""
    env = os.environ if environ is None else environ
    text = url or env.get(TRACES_ENDPOINT_ENV) or env.get(ENDPOINT_ENV) or ""
    parts = urlsplit(text)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def otlp_exporter(endpoint: str | None, timeout_s: float) -> SpanSender:
    """The HTTP/protobuf OTLPSpanExporter (imported here: only export needs it)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint, timeout=timeout_s)


# --- spans (pure) ----------------------------------------------------------------------------


def _nanos(value: Any) -> int:
    return int(pd.Timestamp(value).value)


def _context(trace_id: str, span_id: str) -> SpanContext:
    return SpanContext(trace_id=int(trace_id, 16), span_id=int(span_id, 16), is_remote=False,
                       trace_flags=TraceFlags(TraceFlags.SAMPLED))


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and pd.isna(value)) and \
        value is not pd.NaT and value is not pd.NA


def span_status(row: Mapping[str, Any]) -> str:
    """'fault', 'throttle', 'error' or 'ok' from a span's flags."""
    if row.get("fault"):
        return "fault"
    if row.get("throttle"):
        return "throttle"
    return "error" if row.get("error") else "ok"


def _annotations(text: Any) -> dict[str, Any]:
    return {f"orgscope.annotation.{k}": v for k, v in json_object(text).items()
            if isinstance(v, str | int | float | bool)}


def stitched_spans(stitched: pd.DataFrame) -> list[ReadableSpan]:
    """Stitched ``spans`` rows -> OTel spans with the same ids, parents and times (see the
    module doc for resource and attributes). Entry spans are SERVER spans, others INTERNAL."""
    if stitched.empty:
        return []
    frame = stitched.reset_index(drop=True)
    entries = entry_mask(frame)
    resources: dict[tuple[str, str, str], Resource] = {}
    spans = []
    for index, record in enumerate(frame.to_dict("records")):
        row = {str(k): v for k, v in record.items()}
        key = (str(row["service"]), str(row["account_id"]), str(row["region"]))
        if key not in resources:
            resources[key] = Resource({"service.name": key[0], "cloud.account.id": key[1],
                                       "cloud.region": key[2], "cloud.provider": "aws"})
        status = span_status(row)
        attributes: dict[str, Any] = {
            "orgscope.account_id": key[1], "orgscope.region": key[2],
            "orgscope.service": key[0], "orgscope.status": status,
            "orgscope.source": str(row.get("source") or ""),
            **_annotations(row.get("annotations")),
        }
        optional = {"http.request.method": row.get("http_method"),
                    "url.full": row.get("http_url"),
                    "http.response.status_code": row.get("http_status"),
                    "orgscope.break": row.get("break"),
                    "orgscope.linked_from": row.get("linked_from")}
        if row.get("original_trace_id") not in (None, row["trace_id"]):
            optional["orgscope.original_trace_id"] = row["original_trace_id"]
        for name, value in optional.items():
            if _present(value):
                attributes[name] = int(float(str(value))) if name.endswith("status_code") \
                    else str(value)
        start = _nanos(row["start"])
        end = _nanos(row["end"]) if _present(row.get("end")) else start
        parent = row.get("parent_id")
        spans.append(ReadableSpan(
            name=str(row["name"]),
            context=_context(str(row["trace_id"]), str(row["span_id"])),
            parent=_context(str(row["trace_id"]), str(parent)) if _present(parent) else None,
            resource=resources[key], attributes=attributes,
            kind=SpanKind.SERVER if bool(entries.iloc[index]) else SpanKind.INTERNAL,
            status=Status(StatusCode.ERROR, status) if status != "ok" else Status(),
            start_time=start, end_time=end, instrumentation_scope=SCOPE))
    return spans


def _hex(text: str, digits: int) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest()[:digits]
    return digest if int(digest, 16) else "1".rjust(digits, "0")


def cycle_trace_id(run_id: str) -> str:
    """The trace id of one collection cycle's spans (stable: derived from the run id)."""
    return _hex(f"orgscope-cycle/{run_id}", 32)


def collection_spans(runs: pd.DataFrame) -> list[ReadableSpan]:
    """``runs`` rows -> one trace per cycle (``run_id``): a root span for the cycle and one
    child span per (collector, account, region) run, with its status and counts."""
    if runs.empty:
        return []
    resource = Resource({"service.name": ORGSCOPE_SERVICE})
    spans: list[ReadableSpan] = []
    for run_id, cycle in runs.groupby("run_id", sort=True):
        trace = cycle_trace_id(str(run_id))
        root = _hex(f"orgscope-cycle/{run_id}/root", 16)
        starts = pd.to_datetime(cycle["started_at"], utc=True)
        ends = starts + pd.to_timedelta(cycle["duration_s"].astype(float), unit="s")
        failed = int((cycle["status"] != "ok").sum())
        collectors = sorted(set(cycle["collector"].astype(str)))
        spans.append(ReadableSpan(
            name=f"orgscope collect {', '.join(collectors)}", context=_context(trace, root),
            resource=resource, kind=SpanKind.INTERNAL,
            attributes={"orgscope.run_id": str(run_id), "orgscope.runs": len(cycle),
                        "orgscope.failed_runs": failed},
            status=Status(StatusCode.ERROR, f"{failed} runs failed") if failed else Status(),
            start_time=_nanos(starts.min()), end_time=_nanos(ends.max()),
            instrumentation_scope=SCOPE))
        for row, start, end in zip(cycle.to_dict("records"), starts, ends, strict=True):
            where = f"{row['collector']}/{row['account_id']}/{row['region']}"
            attributes: dict[str, Any] = {
                "orgscope.collector": str(row["collector"]),
                "cloud.account.id": str(row["account_id"]), "cloud.region": str(row["region"]),
                "orgscope.status": str(row["status"]), "orgscope.api_calls": int(row["api_calls"]),
                "orgscope.rows": int(row["rows"]),
                "orgscope.metrics_requested": int(row["metrics_requested"]),
            }
            for name in ("error", "api_calls_by_operation"):
                if _present(row.get(name)):
                    attributes[f"orgscope.{name}"] = str(row[name])
            if _present(row.get("traces_retrieved")):
                attributes["orgscope.traces_retrieved"] = int(row["traces_retrieved"])
            spans.append(ReadableSpan(
                name=f"collect {row['collector']}",
                context=_context(trace, _hex(f"orgscope-cycle/{run_id}/{where}", 16)),
                parent=_context(trace, root), resource=resource, kind=SpanKind.CLIENT,
                attributes=attributes,
                status=Status(StatusCode.ERROR, str(row.get("error") or row["status"]))
                if row["status"] != "ok" else Status(),
                start_time=_nanos(start), end_time=_nanos(end), instrumentation_scope=SCOPE))
    return spans


# --- sending ---------------------------------------------------------------------------------


def send(sender: SpanSender, groups: Mapping[str, Sequence[ReadableSpan]]) -> list[str]:
    """Export each group (a trace's or a cycle's spans) whole, packed into requests of about
    :data:`BATCH` spans (a larger group goes alone); returns the keys of the groups sent.

    Sending stops at the first failed request: what was sent before it is returned so the
    caller records it, and only the rest is sent again next run (never a group twice).
    """
    sent: list[str] = []
    batch: list[ReadableSpan] = []
    keys: list[str] = []
    items = list(groups.items())
    for index, (key, spans) in enumerate(items):
        batch.extend(spans)
        keys.append(key)
        following = len(items[index + 1][1]) if index + 1 < len(items) else None
        if following is None or len(batch) + following > BATCH:
            if sender.export(batch) != SpanExportResult.SUCCESS:
                return sent
            sent.extend(keys)
            batch, keys = [], []
    return sent


def _send_and_record(settings: ExportConfig, store: Store, kind: str,
                     groups: Mapping[str, Sequence[ReadableSpan]], *, endpoint: str | None,
                     sender: SenderFactory, now: datetime) -> tuple[int, int]:
    """Send ``groups`` and record in ``otlp_exports`` those that went; (groups sent, spans
    sent). A failure is logged; the groups not sent are tried again next run."""
    exporter = sender(endpoint, settings.timeout_s)
    try:
        sent = send(exporter, groups)
    finally:
        exporter.shutdown()
    if sent:
        _record(store, kind, {key: len(groups[key]) for key in sent}, now)
    if len(sent) < len(groups):
        log.warning("export: sending %d of %d %ss to %s failed; retried next run",
                    len(groups) - len(sent), len(groups), kind, shown(endpoint))
    return len(sent), sum(len(groups[key]) for key in sent)


def _exported(store: Store, kind: str, since: datetime) -> set[str]:
    frame = store.query("SELECT key FROM otlp_exports WHERE kind = ? AND exported_at >= ?",
                        [kind, since])
    return set(frame["key"].astype(str))


def _record(store: Store, kind: str, counts: Mapping[str, int], now: datetime) -> None:
    rows = [{"kind": kind, "key": key, "spans": int(n), "exported_at": now}
            for key, n in counts.items()]
    store.write(OTLP_EXPORTS.name, pd.DataFrame(rows, columns=OTLP_EXPORTS.columns),
                f"export-{now:%Y%m%dT%H%M%SZ}-{kind}")


def settled_traces(stitched: pd.DataFrame, since: datetime, now: datetime,
                   settle: timedelta, done: Iterable[str] = ()) -> list[str]:
    """Stitched trace ids that started at or after ``since``, whose last span ended at
    least ``settle`` before ``now``, and that are not in ``done``."""
    if stitched.empty:
        return []
    starts = pd.to_datetime(stitched["start"], utc=True)
    ends = pd.to_datetime(stitched["end"], utc=True).fillna(starts)
    bounds = pd.DataFrame({"trace_id": stitched["trace_id"], "start": starts, "end": ends}
                          ).groupby("trace_id", sort=False).agg(start=("start", "min"),
                                                                end=("end", "max"))
    ready = bounds[(bounds["start"] >= pd.Timestamp(since))
                   & (bounds["end"] <= pd.Timestamp(now - settle))]
    skip = set(done)
    return [str(t) for t in ready.index if str(t) not in skip]


def export_traces(config: Config, store: Store, stitched: pd.DataFrame, *, since: datetime,
                  now: datetime, sender: SenderFactory = otlp_exporter) -> str | None:
    """Send the settled, not yet sent stitched traces; a one-line summary, or None when
    export is off."""
    settings = config.export
    enabled, endpoint = resolve_endpoint(settings)
    if not enabled or not settings.traces:
        return None
    done = _exported(store, "trace", since - config.traces.max_duration)
    chosen = settled_traces(stitched, since, now, settings.settle, done)
    if not chosen:
        return "export: no settled traces to send"
    rows = stitched[stitched["trace_id"].isin(chosen)]
    groups: dict[str, list[ReadableSpan]] = {}
    for trace, span in zip(rows["trace_id"].astype(str), stitched_spans(rows), strict=True):
        groups.setdefault(trace, []).append(span)
    traces, spans = _send_and_record(settings, store, "trace", groups,
                                     endpoint=endpoint, sender=sender, now=now)
    if traces < len(groups):
        return f"export: sending {len(groups) - traces} of {len(groups)} traces to " \
            f"{shown(endpoint)} failed ({traces} sent)"
    return f"export: {traces} traces ({spans} spans) sent to {shown(endpoint)}"


def export_collection(config: Config, store: Store, now: datetime,
                      sender: SenderFactory = otlp_exporter) -> str:
    """Send the collection cycles of the last :data:`COLLECTION_LOOKBACK` not yet sent."""
    settings = config.export
    enabled, endpoint = resolve_endpoint(settings)
    if not enabled or not settings.collection:
        return "export: off (no [export] otlp_endpoint or OTEL_EXPORTER_OTLP_ENDPOINT)" \
            if not enabled else "export: collection spans off ([export] collection = false)"
    since = now - COLLECTION_LOOKBACK
    runs = store.query("SELECT * FROM runs WHERE started_at >= ?", [since])
    done = _exported(store, "cycle", since - COLLECTION_LOOKBACK)
    runs = runs[~runs["run_id"].astype(str).isin(done)]
    if runs.empty:
        return "export: no new collection cycles"
    cycle_of = {int(cycle_trace_id(run_id), 16): run_id
                for run_id in runs["run_id"].astype(str).unique()}
    groups: dict[str, list[ReadableSpan]] = {}
    for span in collection_spans(runs):
        groups.setdefault(cycle_of[span.context.trace_id], []).append(span)
    cycles, spans = _send_and_record(settings, store, "cycle", groups,
                                     endpoint=endpoint, sender=sender, now=now)
    if cycles < len(groups):
        return f"export: sending {len(groups) - cycles} of {len(groups)} collection cycles " \
            f"to {shown(endpoint)} failed ({cycles} sent)"
    return f"export: {cycles} collection cycles ({spans} spans) sent to {shown(endpoint)}"
