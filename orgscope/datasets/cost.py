"""Cost: the daily cost and a data export's resource lines (collected) and the closed
months the review derives from it (docs/cost.md)."""

from __future__ import annotations

import pyarrow as pa

from orgscope.datasets.schema import UTC_TS, Dataset

COST_DAILY = Dataset(
    name="cost_daily",
    description=(
        "Daily UnblendedCost and UsageQuantity per account, Team tag, service and usage type "
        "(latest per date; every version in cost_daily_history)."
    ),
    time_column="collected_at",
    snapshot_of=("date",),
    partition_by="date",
    schema=pa.schema(
        [
            pa.field("date", pa.date32(), nullable=False),
            pa.field("account_id", pa.string(), nullable=False),
            pa.field("team_tag", pa.string(), nullable=False),
            pa.field("service", pa.string(), nullable=False),
            pa.field("usage_type", pa.string(), nullable=False),
            pa.field("amount", pa.float64(), nullable=False),
            pa.field("currency", pa.string(), nullable=False),
            pa.field("estimated", pa.bool_(), nullable=False),
            pa.field("collected_at", UTC_TS, nullable=False),
            pa.field("usage_quantity", pa.float64()),
        ]
    ),
    # files written before the collector read UsageQuantity have no such column
    optional_columns=("usage_quantity",),
)

COST_RESOURCES = Dataset(
    name="cost_resources",
    description=(
        "Daily unblended cost and usage per account, service, usage type and resource (the "
        "rule, queue or function), from the organization's data export only; Cost Explorer "
        "gives no resource lines (latest per date; every version in cost_resources_history)."
    ),
    time_column="collected_at",
    snapshot_of=("date",),
    partition_by="date",
    # cost_daily's columns, without estimated, and resource_id
    schema=pa.schema(
        [
            *(COST_DAILY.schema.field(name) for name in ("date", "account_id", "service",
                                                         "usage_type")),
            pa.field("resource_id", pa.string(), nullable=False),
            *(COST_DAILY.schema.field(name) for name in ("team_tag", "amount",
                                                         "usage_quantity", "currency",
                                                         "collected_at")),
        ]
    ),
)

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

FLOW_COST_DAILY = Dataset(
    name="flow_cost_daily",
    description="Cost lines of cost_daily split over the event flows (rule -> target) that "
                "carry them, by usage at the line's unit price or by events delivered, with "
                "the method of each split; lines (or the usage) no flow carried that day are "
                "rows of their own (latest computation per date; "
                "docs/cost.md, \"Unit cost per event flow\").",
    time_column="computed_at",
    snapshot_of=("date",),
    partition_by="date",
    schema=pa.schema(
        [
            pa.field("date", pa.date32(), nullable=False),
            pa.field("month", pa.string(), nullable=False),
            pa.field("account_id", pa.string(), nullable=False),
            pa.field("region", pa.string(), nullable=False),
            pa.field("bus", pa.string(), nullable=False),
            pa.field("rule", pa.string(), nullable=False),
            pa.field("target_arn", pa.string(), nullable=False),
            pa.field("target_account_id", pa.string(), nullable=False),
            pa.field("target_kind", pa.string(), nullable=False),
            pa.field("producers", pa.list_(pa.string())),
            pa.field("team", pa.string(), nullable=False),
            pa.field("component", pa.string(), nullable=False),
            pa.field("cost_account_id", pa.string(), nullable=False),
            pa.field("service", pa.string(), nullable=False),
            pa.field("usage_type", pa.string(), nullable=False),
            pa.field("method", pa.string(), nullable=False),
            pa.field("amount", pa.float64(), nullable=False),
            pa.field("currency", pa.string(), nullable=False),
            pa.field("events", pa.float64(), nullable=False),
            pa.field("retries", pa.float64(), nullable=False),
            pa.field("failed", pa.float64(), nullable=False),
            pa.field("computed_at", UTC_TS, nullable=False),
        ]
    ),
)

#: This module's datasets, in the catalogue's order (orgscope/datasets/__init__.py).
DATASETS: tuple[Dataset, ...] = (COST_DAILY, COST_CLOSED_MONTHS, FLOW_COST_DAILY,
                                  COST_RESOURCES)
