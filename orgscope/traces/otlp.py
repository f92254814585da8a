"""OpenTelemetry spans (OTLP/JSON) -> rows of the ``spans`` dataset (pure; docs/traces.md).

Two shapes are read: an OTLP/JSON ``ExportTraceServiceRequest`` (what an OTLP/HTTP JSON
exporter sends and the OpenTelemetry Collector's file exporter writes, one request per line;
https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding), and **aws/spans** log
events (X-Ray Transaction Search: one span per event, resource and scope inline, attributes as
plain JSON objects). docs/traces.md, "OpenTelemetry spans", maps each ``spans`` column to its
source field. Invariants:

* Ids are read in hex; a trace id in X-Ray or W3C form is stored in W3C form. Times are unix
  nanoseconds, as JSON strings or numbers; ``kind`` and ``status.code`` may be numbers or enum
  names. ``source`` is 'otel'.
* A span that cannot be read raises :class:`ValueError` (or KeyError/TypeError) naming what was
  wrong; the collectors log it and skip that span only.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from orgscope.traces.ids import (
    check_span_id,
    format_traceparent,
    parse_traceparent,
    to_w3c_trace_id,
)

log = logging.getLogger(__name__)

_ACCOUNT_RE = re.compile(r"^\d{12}$")
_REGION_RE = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
UNKNOWN_SERVICE = "unknown_service"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
STATUS_ERROR = 2
HTTP_KEYS = {
    "method": ("http.request.method", "http.method"),
    "url": ("url.full", "http.url"),
    "status": ("http.response.status_code", "http.status_code"),
}
_CONSUMED = {key for keys in HTTP_KEYS.values() for key in keys}


def any_value(value: Any) -> Any:  # noqa: PLR0911 (one return per AnyValue kind)
    """An OTLP/JSON ``AnyValue`` (``{"stringValue": "x"}``, ``{"intValue": "3"}``, arrays,
    key-value lists) -> a plain Python value; a plain value is returned as it is."""
    if not isinstance(value, Mapping) or len(value) != 1:
        return value
    (kind, inner), = value.items()
    if kind == "intValue":
        return int(inner)
    if kind == "doubleValue":
        return float(inner)
    if kind in ("stringValue", "boolValue", "bytesValue"):
        return inner
    if kind == "arrayValue":
        return [any_value(v) for v in (inner or {}).get("values", [])]
    if kind == "kvlistValue":
        return attributes((inner or {}).get("values", []))
    return value


def attributes(raw: Any) -> dict[str, Any]:
    """OTLP ``[{"key", "value"}]`` or a plain JSON object -> {key: plain value}."""
    if isinstance(raw, Mapping):
        return {str(k): any_value(v) for k, v in raw.items()}
    if isinstance(raw, list):
        out: dict[str, Any] = {}
        for item in raw:
            if isinstance(item, Mapping) and "key" in item:
                out[str(item["key"])] = any_value(item.get("value"))
        return out
    return {}


def nanos(value: Any, what: str) -> datetime:
    """Unix nanoseconds (an int, or digits in a string as OTLP/JSON writes int64) -> UTC."""
    if isinstance(value, bool) or not isinstance(value, int | str) or \
            (isinstance(value, str) and not value.isdigit()):
        raise ValueError(f"{what} {value!r} is not unix nanoseconds")
    number = int(value)
    if number <= 0:
        raise ValueError(f"{what} {value!r} is not unix nanoseconds")
    return EPOCH + timedelta(microseconds=number // 1000)


def _first(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    return next((attrs[k] for k in keys if attrs.get(k) not in (None, "")), None)


def _status_code(span: Mapping[str, Any]) -> int:
    status = span.get("status") or {}
    code = status.get("code", 0) if isinstance(status, Mapping) else 0
    if isinstance(code, str):
        return STATUS_ERROR if code.upper().endswith("ERROR") else 0
    return int(code) if isinstance(code, int) else 0


def _traceparent(attrs: Mapping[str, Any], span: Mapping[str, Any]) -> str | None:
    carried = attrs.get("traceparent")
    if isinstance(carried, str) and carried:
        try:
            return parse_traceparent(carried).format()
        except ValueError as error:
            log.warning("otel span %s: %s; traceparent ignored", span.get("spanId"), error)
    for link in span.get("links") or []:
        if isinstance(link, Mapping):
            try:
                return format_traceparent(str(link.get("traceId", "")),
                                          str(link.get("spanId", "")))
            except ValueError as error:
                log.warning("otel span %s: link %s; ignored", span.get("spanId"), error)
    return None


def span_row(span: Mapping[str, Any], resource: Mapping[str, Any], *,
             account_id: str | None, region: str | None) -> dict[str, Any]:
    """One OTel span (either shape) with its resource attributes -> a ``spans`` row.

    ``account_id``/``region``: where it was read, used when the resource does not say.
    """
    if not isinstance(span, Mapping):
        raise ValueError("span is not a JSON object")
    attrs = attributes(span.get("attributes"))
    account = resource.get("cloud.account.id")
    account = str(account) if account is not None else account_id
    if not account or not _ACCOUNT_RE.match(account):
        raise ValueError(f"span {span.get('spanId')!r}: resource attribute cloud.account.id "
                         f"{resource.get('cloud.account.id')!r} is not a 12-digit account id")
    where = resource.get("cloud.region") or region
    if not isinstance(where, str) or not _REGION_RE.match(where):
        raise ValueError(f"span {span.get('spanId')!r}: resource attribute cloud.region "
                         f"{resource.get('cloud.region')!r} is not a region")
    name = span.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"span {span.get('spanId')!r} has no name")
    span_id = check_span_id(str(span.get("spanId", "")))
    parent = span.get("parentSpanId")
    start = nanos(span.get("startTimeUnixNano"), "startTimeUnixNano")
    raw_end = span.get("endTimeUnixNano")
    end = nanos(raw_end, "endTimeUnixNano") if raw_end not in (None, 0, "0", "") else None
    status_value = _first(attrs, HTTP_KEYS["status"])
    try:
        http_status = int(status_value) if status_value is not None else None
    except (TypeError, ValueError):
        http_status = None
    fault = http_status is not None and http_status >= 500
    throttle = http_status == 429
    error = http_status is not None and 400 <= http_status < 500
    if _status_code(span) == STATUS_ERROR and http_status is None:
        fault = True
    service = resource.get("service.name") or resource.get("aws.local.service") or \
        attrs.get("aws.local.service") or UNKNOWN_SERVICE
    annotations = {k: v for k, v in sorted(attrs.items())
                   if k not in _CONSUMED and isinstance(v, str | int | float | bool)}
    origin = resource.get("cloud.platform")
    method, url = _first(attrs, HTTP_KEYS["method"]), _first(attrs, HTTP_KEYS["url"])
    return {
        "trace_id": to_w3c_trace_id(str(span.get("traceId", ""))), "span_id": span_id,
        "parent_id": check_span_id(str(parent)) if parent else None,
        "account_id": account, "region": where, "service": str(service), "name": name,
        "origin": str(origin) if origin else None, "start": start, "end": end,
        "duration_ms": round((end - start).total_seconds() * 1000, 3) if end else None,
        "fault": fault, "error": error or throttle, "throttle": throttle,
        "http_method": str(method) if method is not None else None,
        "http_url": str(url) if url is not None else None, "http_status": http_status,
        "annotations": json.dumps(annotations, sort_keys=True) if annotations else None,
        "traceparent": _traceparent(attrs, span), "source": "otel", "linked_from": None,
    }


def _objects(value: Any) -> list[Mapping[str, Any]]:
    """The JSON objects of a list (anything else: none)."""
    return [item for item in value if isinstance(item, Mapping)] \
        if isinstance(value, list) else []


def request_spans(request: Mapping[str, Any]) -> Iterator[tuple[Mapping[str, Any],
                                                               dict[str, Any]]]:
    """(span, resource attributes) of every span of an ExportTraceServiceRequest.

    A part of the wrong shape (a resource that is not an object or has unreadable attributes,
    a scope or span list that is not a list) is logged and skipped with what it holds; the
    rest of the request is read.
    """
    for number, resource_spans in enumerate(_objects(request.get("resourceSpans"))):
        raw = resource_spans.get("resource") or {}
        try:
            if not isinstance(raw, Mapping):
                raise TypeError(f"resource is a {type(raw).__name__}, not an object")
            resource = attributes(raw.get("attributes"))
        except (ValueError, TypeError) as error:
            log.warning("otel: resourceSpans[%d] skipped: %s", number, error)
            continue
        scopes = resource_spans.get("scopeSpans") or \
            resource_spans.get("instrumentationLibrarySpans")
        for scope in _objects(scopes):
            for span in _objects(scope.get("spans")):
                yield span, resource


def request_rows(request: Mapping[str, Any], *, account_id: str | None = None,
                 region: str | None = None, where: str = "") -> list[dict[str, Any]]:
    """Every readable span of an ExportTraceServiceRequest as ``spans`` rows; a span that
    cannot be read is logged (with ``where``) and skipped."""
    rows = []
    for span, resource in request_spans(request):
        try:
            rows.append(span_row(span, resource, account_id=account_id, region=region))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            log.warning("otel %s: span skipped: %s", where, error)
    return rows


def log_event_row(message: str, *, account_id: str, region: str) -> dict[str, Any]:
    """One ``aws/spans`` log event message (a JSON span with its resource inline) -> a row."""
    span = json.loads(message)
    if not isinstance(span, dict):
        raise ValueError("log event is not a JSON object")
    resource = attributes((span.get("resource") or {}).get("attributes"))
    return span_row(span, resource, account_id=account_id, region=region)


def parse_requests(text: str) -> list[dict[str, Any]]:
    """A file's text -> ExportTraceServiceRequest objects: one JSON document, or JSON Lines
    (one request per line, as the OpenTelemetry Collector's file exporter writes).

    Raises ValueError when neither reads; a bad line among good ones is logged and skipped.
    """
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    if isinstance(whole, dict):
        return [whole]
    if isinstance(whole, list):
        return [item for item in whole if isinstance(item, dict)]
    requests: list[dict[str, Any]] = []
    bad = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            parsed = json.loads(line)
        except ValueError:
            bad += 1
            log.warning("otel: line %d is not JSON; skipped", number)
            continue
        if isinstance(parsed, dict):
            requests.append(parsed)
    if not requests:
        raise ValueError("not OTLP/JSON: neither one JSON object nor JSON Lines"
                         + (f" ({bad} bad lines)" if bad else ""))
    return requests
