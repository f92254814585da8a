"""Change events: who changed which EventBridge rule or bus, and when, as CloudTrail reported
it through the monitoring account's change queue (docs/changes.md). Rows are never rewritten:
``event_id`` is CloudTrail's id of the call, so a message delivered twice is one row."""

from __future__ import annotations

import pyarrow as pa

from orgscope.datasets.schema import UTC_TS, Dataset

RULE_CHANGES = Dataset(
    name="rule_changes",
    description="EventBridge rule and bus changes from CloudTrail: which call, who, when.",
    time_column="received_at",
    unique_key=("event_id",),
    schema=pa.schema(
        [
            pa.field("account_id", pa.string(), nullable=False),
            pa.field("region", pa.string(), nullable=False),
            pa.field("bus", pa.string(), nullable=False),
            # null for a change of the bus itself (PutPermission, RemovePermission,
            # DeleteEventBus, a bus's tags)
            pa.field("rule", pa.string()),
            pa.field("event_name", pa.string(), nullable=False),
            pa.field("principal_arn", pa.string()),
            pa.field("principal_type", pa.string()),
            pa.field("event_time", UTC_TS, nullable=False),
            pa.field("received_at", UTC_TS, nullable=False),
            pa.field("event_id", pa.string(), nullable=False),
        ]
    ),
)

#: This module's datasets, in the catalogue's order (orgscope/datasets/__init__.py).
DATASETS: tuple[Dataset, ...] = (RULE_CHANGES,)
