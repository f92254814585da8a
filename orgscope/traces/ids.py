"""Trace and span ids in X-Ray and W3C form, and W3C ``traceparent`` headers.

X-Ray trace id: ``1-5759e988-bd862e3fe1be46a994272793`` (version 1, 8 hex digits of the
start time in epoch seconds, 24 hex digits of randomness). W3C trace id: the same 32 hex
digits without version and dashes, ``5759e988bd862e3fe1be46a994272793``. Span ids (X-Ray
segment and subsegment ids, W3C parent ids) are 16 lowercase hex digits in both.

``traceparent``: ``00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>``
(https://www.w3.org/TR/trace-context/#traceparent-header). Pure functions; every malformed
input raises :class:`ValueError` naming the value and the expected form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_XRAY_RE = re.compile(r"^1-([0-9a-f]{8})-([0-9a-f]{24})$")
_W3C_TRACE_RE = re.compile(r"^[0-9a-f]{32}$")
_SPAN_RE = re.compile(r"^[0-9a-f]{16}$")
_FLAGS_RE = re.compile(r"^[0-9a-f]{2}$")
_VERSION_RE = re.compile(r"^[0-9a-f]{2}$")
ZERO_TRACE = "0" * 32
ZERO_SPAN = "0" * 16


def xray_to_w3c(trace_id: str) -> str:
    """'1-5759e988-bd862e3fe1be46a994272793' -> '5759e988bd862e3fe1be46a994272793'."""
    match = _XRAY_RE.match(trace_id.strip().lower()) if isinstance(trace_id, str) else None
    if not match:
        raise ValueError(f"X-Ray trace id {trace_id!r} must look like "
                         "'1-5759e988-bd862e3fe1be46a994272793' (1-<8 hex>-<24 hex>)")
    return match.group(1) + match.group(2)


def w3c_to_xray(trace_id: str) -> str:
    """'5759e988bd862e3fe1be46a994272793' -> '1-5759e988-bd862e3fe1be46a994272793'."""
    text = trace_id.strip().lower() if isinstance(trace_id, str) else ""
    if not _W3C_TRACE_RE.match(text) or text == ZERO_TRACE:
        raise ValueError(f"W3C trace id {trace_id!r} must be 32 hex digits, not all zero")
    return f"1-{text[:8]}-{text[8:]}"


def to_w3c_trace_id(trace_id: str) -> str:
    """Either form -> the W3C form (what the ``spans`` dataset stores)."""
    text = trace_id.strip().lower() if isinstance(trace_id, str) else ""
    if _W3C_TRACE_RE.match(text):
        w3c_to_xray(text)  # rejects the all-zero id
        return text
    return xray_to_w3c(trace_id)


def check_span_id(span_id: str) -> str:
    """A span id as 16 lowercase hex digits; ValueError otherwise."""
    text = span_id.strip().lower() if isinstance(span_id, str) else ""
    if not _SPAN_RE.match(text) or text == ZERO_SPAN:
        raise ValueError(f"span id {span_id!r} must be 16 hex digits, not all zero")
    return text


@dataclass(frozen=True)
class TraceParent:
    """A parsed W3C ``traceparent``: W3C trace id, parent span id and flags."""

    trace_id: str
    span_id: str
    flags: str = "01"
    version: str = "00"

    @property
    def sampled(self) -> bool:
        return bool(int(self.flags, 16) & 1)

    @property
    def xray_trace_id(self) -> str:
        return w3c_to_xray(self.trace_id)

    def format(self) -> str:
        return format_traceparent(self.trace_id, self.span_id, self.flags)


def parse_traceparent(value: str) -> TraceParent:
    """'00-<32 hex>-<16 hex>-<2 hex>' -> :class:`TraceParent`; ValueError when malformed.

    Version 00 must have exactly four fields; a later version may append fields (the W3C
    rule for forward compatibility); version ff is invalid.
    """
    text = value.strip().lower() if isinstance(value, str) else ""
    parts = text.split("-")
    expected = "'00-<32 hex trace id>-<16 hex span id>-<2 hex flags>'"
    if len(parts) < 4 or not _VERSION_RE.match(parts[0]) or parts[0] == "ff" or \
            (parts[0] == "00" and len(parts) != 4):
        raise ValueError(f"traceparent {value!r} must look like {expected}")
    version, trace_id, span_id, flags = parts[:4]
    if not _W3C_TRACE_RE.match(trace_id) or trace_id == ZERO_TRACE:
        raise ValueError(f"traceparent {value!r}: trace id must be 32 hex digits, not all zero")
    if not _SPAN_RE.match(span_id) or span_id == ZERO_SPAN:
        raise ValueError(f"traceparent {value!r}: span id must be 16 hex digits, not all zero")
    if not _FLAGS_RE.match(flags):
        raise ValueError(f"traceparent {value!r}: flags must be 2 hex digits")
    return TraceParent(trace_id, span_id, flags, version)


def format_traceparent(trace_id: str, span_id: str, flags: str = "01") -> str:
    """A version-00 traceparent; ``trace_id`` in either form."""
    if not _FLAGS_RE.match(flags.lower()):
        raise ValueError(f"traceparent flags {flags!r} must be 2 hex digits")
    return f"00-{to_w3c_trace_id(trace_id)}-{check_span_id(span_id)}-{flags.lower()}"
