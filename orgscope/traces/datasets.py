"""The ``spans`` dataset: one row per X-Ray segment or subsegment (or OpenTelemetry span).

docs/traces.md explains every column and docs/datasets.md lists them.
"""

from __future__ import annotations

import pyarrow as pa

from orgscope.datasets import UTC_TS, Dataset

SPANS = Dataset(
    name="spans",
    description="Trace spans (X-Ray segments and subsegments) of every account, W3C ids.",
    time_column="start",
    # Overlapping reads return a trace again: the newest copy of a span wins.
    unique_key=("account_id", "region", "trace_id", "span_id"),
    schema=pa.schema(
        [
            pa.field("trace_id", pa.string(), nullable=False),
            pa.field("span_id", pa.string(), nullable=False),
            pa.field("parent_id", pa.string()),
            pa.field("account_id", pa.string(), nullable=False),
            pa.field("region", pa.string(), nullable=False),
            pa.field("service", pa.string(), nullable=False),
            pa.field("name", pa.string(), nullable=False),
            pa.field("origin", pa.string()),
            pa.field("start", UTC_TS, nullable=False),
            pa.field("end", UTC_TS),
            pa.field("duration_ms", pa.float64()),
            pa.field("fault", pa.bool_(), nullable=False),
            pa.field("error", pa.bool_(), nullable=False),
            pa.field("throttle", pa.bool_(), nullable=False),
            pa.field("http_method", pa.string()),
            pa.field("http_url", pa.string()),
            pa.field("http_status", pa.int64()),
            pa.field("annotations", pa.string()),
            pa.field("traceparent", pa.string()),
            pa.field("source", pa.string(), nullable=False),
            pa.field("linked_from", pa.string()),
        ]
    ),
)
