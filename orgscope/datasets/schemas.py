"""Event schemas: the versions EventBridge's schema discovery registered for the buses that
have it on (docs/schemas.md)."""

from __future__ import annotations

import pyarrow as pa

from orgscope.datasets.schema import UTC_TS, Dataset

EVENT_SCHEMAS = Dataset(
    name="event_schemas",
    description="Discovered event schemas: every version of every detail-type, with its "
                "fields (snapshots).",
    time_column="collected_at",
    snapshot_of=("account_id", "region"),
    snapshot_collector="schemas",
    schema=pa.schema(
        [
            pa.field("account_id", pa.string(), nullable=False),
            pa.field("region", pa.string(), nullable=False),
            pa.field("registry", pa.string(), nullable=False),
            pa.field("schema_name", pa.string(), nullable=False),
            pa.field("source", pa.string()),
            pa.field("detail_type", pa.string()),
            pa.field("version", pa.string(), nullable=False),
            pa.field("version_created", UTC_TS),
            pa.field("content_type", pa.string()),
            pa.field("fields", pa.string()),
            pa.field("field_count", pa.int64()),
            pa.field("collected_at", UTC_TS, nullable=False),
        ]
    ),
)

DATASETS: tuple[Dataset, ...] = (EVENT_SCHEMAS,)
