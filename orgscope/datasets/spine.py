"""The spine's own datasets: account access per cycle, every collector run, watermarks."""

from __future__ import annotations

import pyarrow as pa

from orgscope.datasets.schema import UTC_TS, Dataset


def _schema(*fields: tuple[str, pa.DataType] | tuple[str, pa.DataType, bool]) -> pa.Schema:
    built = []
    for item in fields:
        name, dtype = item[0], item[1]
        nullable = item[2] if len(item) == 3 else True
        built.append(pa.field(name, dtype, nullable=nullable))
    return pa.schema(built)


ACCOUNTS = Dataset(
    name="accounts",
    description="Each account's reachability through the read role, per collection cycle.",
    time_column="checked_at",
    snapshot_of=("account_id",),
    schema=_schema(
        ("account_id", pa.string(), False),
        ("name", pa.string(), False),
        ("team", pa.string(), False),
        ("environment", pa.string()),
        ("cost_center", pa.string()),
        ("reachable", pa.bool_(), False),
        ("reason", pa.string()),
        ("checked_at", UTC_TS, False),
    ),
)

RUNS = Dataset(
    name="runs",
    description="One row per (collector, account, region) run: how it went and what it cost.",
    time_column="started_at",
    schema=_schema(
        ("run_id", pa.string(), False),
        ("collector", pa.string(), False),
        ("account_id", pa.string(), False),
        ("region", pa.string(), False),
        ("started_at", UTC_TS, False),
        ("duration_s", pa.float64(), False),
        ("status", pa.string(), False),
        ("error", pa.string()),
        ("api_calls", pa.int64(), False),
        ("api_calls_by_operation", pa.string()),
        ("metrics_requested", pa.int64(), False),
        # nullable: runs stored before this column existed read as null
        ("traces_retrieved", pa.int64()),
        ("rows", pa.int64(), False),
        # the account shard "K/N" of the process that ran it (docs/scaling.md)
        ("shard", pa.string()),
        # the tier the run read, for a collector with tiers (metrics: fast or full)
        ("tier", pa.string()),
    ),
    optional_columns=("shard", "tier"),
)

WATERMARKS = Dataset(
    name="watermarks",
    description="How far each incremental collector has read, per account and region.",
    time_column="updated_at",
    snapshot_of=("collector", "account_id", "region"),
    schema=_schema(
        ("collector", pa.string(), False),
        ("account_id", pa.string(), False),
        ("region", pa.string(), False),
        ("watermark", UTC_TS, False),
        ("updated_at", UTC_TS, False),
    ),
)

#: This module's datasets, in the catalogue's order (orgscope/datasets/__init__.py).
DATASETS: tuple[Dataset, ...] = (ACCOUNTS, RUNS, WATERMARKS)
