"""Datasets the cost review derives from ``cost_daily``."""

from __future__ import annotations

import pyarrow as pa

from orgscope.datasets import UTC_TS, Dataset

COST_CLOSED_MONTHS = Dataset(
    name="cost_closed_months",
    description="A closed month's cost per team, account, service, usage type and method, "
                "as it stood when closed (latest close per month; every close in "
                "cost_closed_months_history).",
    time_column="closed_at",
    snapshot_of=("month",),
    schema=pa.schema(
        [
            pa.field("month", pa.string(), nullable=False),
            pa.field("team", pa.string(), nullable=False),
            pa.field("account_id", pa.string(), nullable=False),
            pa.field("service", pa.string(), nullable=False),
            pa.field("usage_type", pa.string(), nullable=False),
            pa.field("method", pa.string(), nullable=False),
            pa.field("amount", pa.float64(), nullable=False),
            pa.field("currency", pa.string(), nullable=False),
            pa.field("closed_at", UTC_TS, nullable=False),
        ]
    ),
)
