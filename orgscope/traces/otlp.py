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
* A span belongs to the account that was read (the account whose role read the log group, or
  the account ``[collectors.otlp_files] accounts`` maps the file to), never to the one it names:
  its ``cloud.account.id`` is written by whoever sends spans. A different claim is kept in the
  annotation ``orgscope.claimed_account_id``; span attributes named ``orgscope.*`` are dropped,
  so that annotation is only ever orgscope's.
* JSON nested deeper than :data:`MAX_JSON_DEPTH` is refused with a :class:`ValueError` before
  it is parsed (Python's parser would raise RecursionError).
* A span that cannot be read raises :class:`ValueError` (or KeyError/TypeError) naming what was
  wrong; the collectors log it and skip that span only.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import numpy as np

from orgscope.traces.ids import (
    check_span_id,
    format_traceparent,
    parse_traceparent,
    to_w3c_trace_id,
)
from orgscope.untrusted import replace_surrogates

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
#: Annotation keys under this prefix are orgscope's own; a span's attributes cannot set them.
RESERVED_PREFIX = "orgscope."
#: The annotation holding a span's ``cloud.account.id`` when it names another account than the
#: one read (the span is still stored under the account read).
CLAIMED_ACCOUNT = "orgscope.claimed_account_id"
#: A claimed account id is kept to this many characters.
MAX_CLAIM_CHARS = 64
#: JSON nesting allowed in a request or log event. An OTLP request nests about 10 deep plus 4
#: per nested key-value list attribute; Python's parser fails with RecursionError near 1,000.
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')  # unrolled: no per-character branch
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_OPENERS = np.frombuffer(b"[{", dtype=np.uint8)


def json_depth(text: str) -> int:
    """How deep ``text``'s JSON arrays and objects nest (brackets inside strings not counted);
    0 for a scalar. Linear in the text, without recursion."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    if not brackets:
        return 0
    codes = np.frombuffer(brackets.encode("ascii"), dtype=np.uint8)
    steps = np.where(np.isin(codes, _OPENERS), 1, -1)
    return int(np.cumsum(steps).max())


#: A JSON escape of a UTF-16 surrogate, paired or not.
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def loads(text: str) -> Any:
    """``json.loads`` that refuses nesting deeper than :data:`MAX_JSON_DEPTH` with a
    ValueError saying so, instead of a RecursionError (or a long parse) in the middle."""
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested {depth} deep; at most {MAX_JSON_DEPTH} levels are read")
    try:
        value = json.loads(text)
    except RecursionError:  # cannot happen below MAX_JSON_DEPTH; kept as a clear error
        raise ValueError(f"JSON nested too deep; at most {MAX_JSON_DEPTH} levels are "
                         "read") from None
    # "\ud800" alone is valid JSON but not Unicode: Arrow (and pandas' string columns) refuse
    # such a str, which would lose every row of the frame; a pair (an emoji) is one character.
    return replace_surrogates(value) if _ESCAPED_SURROGATE.search(text) else value


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
             account_id: str, region: str | None) -> dict[str, Any]:
    """One OTel span (either shape) with its resource attributes -> a ``spans`` row.

    ``account_id``: the account it was read for, the row's account whatever the resource's
    ``cloud.account.id`` says (a different claim goes into the annotation
    :data:`CLAIMED_ACCOUNT`). ``region``: where it was read, used when the resource does not
    name one.
    """
    if not isinstance(span, Mapping):
        raise ValueError("span is not a JSON object")
    if not _ACCOUNT_RE.match(account_id):
        raise ValueError(f"the account read, {account_id!r}, is not a 12-digit account id")
    attrs = attributes(span.get("attributes"))
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
                   if k not in _CONSUMED and not k.lower().startswith(RESERVED_PREFIX)
                   and isinstance(v, str | int | float | bool)}
    claimed = resource.get("cloud.account.id")
    if claimed is not None and str(claimed) != account_id:
        annotations[CLAIMED_ACCOUNT] = str(claimed)[:MAX_CLAIM_CHARS]
    origin = resource.get("cloud.platform")
    method, url = _first(attrs, HTTP_KEYS["method"]), _first(attrs, HTTP_KEYS["url"])
    return {
        "trace_id": to_w3c_trace_id(str(span.get("traceId", ""))), "span_id": span_id,
        "parent_id": check_span_id(str(parent)) if parent else None,
        "account_id": account_id, "region": where, "service": str(service), "name": name,
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


def request_rows(request: Mapping[str, Any], *, account_id: str,
                 region: str | None = None, where: str = "") -> list[dict[str, Any]]:
    """Every readable span of an ExportTraceServiceRequest as ``spans`` rows of
    ``account_id`` (:func:`span_row`); a span that cannot be read is logged (with ``where``)
    and skipped."""
    rows = []
    for span, resource in request_spans(request):
        try:
            rows.append(span_row(span, resource, account_id=account_id, region=region))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            log.warning("otel %s: span skipped: %s", where, error)
    return rows


def log_event_row(message: str, *, account_id: str, region: str) -> dict[str, Any]:
    """One ``aws/spans`` log event message (a JSON span with its resource inline) -> a row of
    ``account_id``, the account whose log group held it (:func:`span_row`)."""
    span = loads(message)
    if not isinstance(span, dict):
        raise ValueError("log event is not a JSON object")
    resource = attributes((span.get("resource") or {}).get("attributes"))
    return span_row(span, resource, account_id=account_id, region=region)


def claimed_account(row: Mapping[str, Any]) -> str | None:
    """The other account a row's span named in ``cloud.account.id``, if it named one."""
    text = row.get("annotations")
    if not isinstance(text, str) or CLAIMED_ACCOUNT not in text:
        return None
    claimed = json.loads(text).get(CLAIMED_ACCOUNT)
    return str(claimed) if claimed is not None else None


def claims(rows: Iterable[Mapping[str, Any]]) -> Counter[str]:
    """How many of ``rows`` claimed each other account (:func:`claimed_account`)."""
    return Counter(claim for row in rows if (claim := claimed_account(row)) is not None)


def warn_claims(where: str, account_id: str, rows: Iterable[Mapping[str, Any]]) -> int:
    """Log one WARNING for the rows of ``account_id`` that named other accounts (how many, and
    the three most claimed); returns how many did."""
    counted = claims(rows)
    total = sum(counted.values())
    if total:
        named = ", ".join(f"{claim!r} x{n}" for claim, n in counted.most_common(3))
        log.warning("otel %s: %d spans read for account %s named another account in "
                    "cloud.account.id (%s%s); stored under %s, the claim kept in %s", where,
                    total, account_id, named, ", ..." if len(counted) > 3 else "", account_id,
                    CLAIMED_ACCOUNT)
    return total


def _requests_of(value: Any) -> list[dict[str, Any]] | None:
    """A parsed JSON value -> its requests (an object, or a list of objects); None else."""
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, dict)]
    return None


def _line_requests(line: str) -> list[dict[str, Any]]:
    requests = _requests_of(loads(line))
    if requests is None:
        raise ValueError("not a JSON object or list of objects")
    return requests


def read_requests(stream: IO[str], where: str = "") -> Iterator[dict[str, Any]]:
    """ExportTraceServiceRequest objects of a text stream, read a line at a time: JSON Lines
    (one request per line, as the OpenTelemetry Collector's file exporter writes), or, when
    the first line is not JSON on its own, one JSON document (then read whole: the caller
    bounds the file's size). A bad line among good ones is logged (with ``where``) and
    skipped; raises ValueError when nothing reads, saying why."""
    lines: Iterator[str] = iter(stream)
    number = good = bad = 0
    first_error = ""
    while (line := next(lines, None)) is not None:
        number += 1
        if not line.strip():
            continue
        try:
            requests = _line_requests(line)
        except ValueError as error:
            if good == bad == 0:  # the first line of a document written over several?
                rest = stream.read()
                document = _whole_document(line + rest)
                if document is not None:
                    yield from document
                    return
                lines = iter(io.StringIO(rest))
            bad += 1
            first_error = first_error or f"; line {number}: {error}"
            log.warning("otel %s: line %d skipped: %s", where, number, error)
            continue
        good += 1
        yield from requests
    if not good:
        raise ValueError("not OTLP/JSON: neither one JSON document nor JSON Lines"
                         + (f" ({bad} bad lines{first_error})" if bad else " (no text)"))


def _whole_document(text: str) -> list[dict[str, Any]] | None:
    """The requests of ``text`` read as one JSON document; None when it is not one."""
    try:
        return _line_requests(text)
    except ValueError as error:
        log.debug("otel: not one JSON document either: %s", error)
        return None


def parse_requests(text: str) -> list[dict[str, Any]]:
    """A file's text -> ExportTraceServiceRequest objects (:func:`read_requests`)."""
    return list(read_requests(io.StringIO(text)))
