"""Datasets the health model derives from the collected ones."""

from __future__ import annotations

import pyarrow as pa

from orgscope.datasets import UTC_TS, Dataset

#: The verdicts, best first.
VERDICTS: tuple[str, ...] = ("OK", "DEGRADED", "SILENT", "FAILING", "DISABLED", "STALE")

RULE_HEALTH = Dataset(
    name="rule_health",
    description="One verdict per rule per evaluation, with the reasons and the numbers.",
    time_column="evaluated_at",
    snapshot_of=("account_id", "region"),
    schema=pa.schema(
        [
            pa.field("account_id", pa.string(), nullable=False),
            pa.field("region", pa.string(), nullable=False),
            pa.field("bus", pa.string(), nullable=False),
            pa.field("rule", pa.string(), nullable=False),
            pa.field("verdict", pa.string(), nullable=False),
            pa.field("reasons", pa.list_(pa.string())),
            pa.field("details", pa.string()),
            pa.field("evaluated_at", UTC_TS, nullable=False),
        ]
    ),
)
