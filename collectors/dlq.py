"""SQS dead-letter queue depth (contract; collector follows)."""

from __future__ import annotations

import pyarrow as pa

from orgscope.datasets import UTC_TS, Dataset

DLQ_DEPTH = Dataset(
    name="dlq_depth",
    description="Depth and oldest-message age of every dead-letter queue, per reading.",
    time_column="ts",
    schema=pa.schema(
        [
            pa.field("account_id", pa.string(), nullable=False),
            pa.field("region", pa.string(), nullable=False),
            pa.field("queue", pa.string(), nullable=False),
            pa.field("queue_arn", pa.string(), nullable=False),
            pa.field("ts", UTC_TS, nullable=False),
            pa.field("visible", pa.int64(), nullable=False),
            pa.field("in_flight", pa.int64()),
            pa.field("oldest_age_s", pa.float64()),
        ]
    ),
)
