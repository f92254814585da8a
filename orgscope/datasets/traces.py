"""The ``spans`` dataset (one row per X-Ray segment or subsegment, or OpenTelemetry span) and
the ``traces`` dataset (one row per stitched trace).

docs/traces.md explains every column and docs/datasets.md lists them.
"""

from __future__ import annotations

import pyarrow as pa

from orgscope.datasets.schema import UTC_TS, Dataset

SPANS = Dataset(
    name="spans",
    description="Trace spans (X-Ray segments and subsegments, OpenTelemetry spans) of every "
                "account, W3C ids.",
    time_column="start",
    # Overlapping reads return a trace again: the newest copy of a span wins. A span's start
    # never changes between reads, and having it in the key lets DuckDB push a filter on
    # `start` below the de-duplicating window, so a read of the last minutes scans those
    # minutes rather than every span of the day.
    unique_key=("account_id", "region", "trace_id", "span_id", "start"),
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

TRACES = Dataset(
    name="traces",
    description=(
        "One row per stitched cross-account trace (orgscope.traces.views.trace_summaries), "
        "written by the traces step; the newest row per trace_id wins."
    ),
    time_column="start",
    # The step stitches its window again every run: the newest summary of a trace replaces
    # the earlier ones instead of adding a row.
    unique_key=("trace_id",),
    schema=pa.schema(
        [
            pa.field("trace_id", pa.string(), nullable=False),
            pa.field("member_trace_ids", pa.list_(pa.string()), nullable=False),
            pa.field("start", UTC_TS, nullable=False),
            pa.field("end", UTC_TS, nullable=False),
            pa.field("duration_ms", pa.float64(), nullable=False),
            pa.field("root_service", pa.string(), nullable=False),
            pa.field("root_name", pa.string(), nullable=False),
            pa.field("root_account_id", pa.string(), nullable=False),
            pa.field("accounts", pa.list_(pa.string()), nullable=False),
            pa.field("services", pa.list_(pa.string()), nullable=False),
            pa.field("teams", pa.list_(pa.string()), nullable=False),
            pa.field("span_count", pa.int64(), nullable=False),
            pa.field("faults", pa.int64(), nullable=False),
            pa.field("errors", pa.int64(), nullable=False),
            pa.field("throttles", pa.int64(), nullable=False),
            pa.field("breaks", pa.int64(), nullable=False),
            pa.field("status", pa.string(), nullable=False),
            pa.field("annotations", pa.string(), nullable=False),
            # Set when this collected trace has since joined another stitched trace (its
            # producer arrived later): readers skip such rows (WHERE merged_into IS NULL).
            pa.field("merged_into", pa.string()),
            pa.field("stitched_at", UTC_TS, nullable=False),
        ]
    ),
)

OTLP_EXPORTS = Dataset(
    name="otlp_exports",
    description=(
        "What orgscope has sent over OTLP (orgscope/traces/export.py): one row per stitched "
        "trace or collection cycle exported, so each is sent once."
    ),
    time_column="exported_at",
    unique_key=("kind", "key"),
    schema=pa.schema(
        [
            pa.field("kind", pa.string(), nullable=False),
            pa.field("key", pa.string(), nullable=False),
            pa.field("spans", pa.int64(), nullable=False),
            pa.field("exported_at", UTC_TS, nullable=False),
        ]
    ),
)

#: This module's datasets, in the catalogue's order (orgscope/datasets/__init__.py).
DATASETS: tuple[Dataset, ...] = (SPANS, TRACES, OTLP_EXPORTS)
