"""The auto-heal audit log: one row per decision of the heal step (docs/heal.md): a rule
re-enabled (or that would have been, in dry-run), a rule left alone and why, and, when the
organization looks like it is in planned maintenance, one organization-wide skip whose reason
starts with ``maintenance``. Rows are never rewritten: ``id`` is unique per decision."""

from __future__ import annotations

import pyarrow as pa

from orgscope.datasets.schema import UTC_TS, Dataset

#: The prefix of the reason of the organization-wide skip written during planned maintenance.
MAINTENANCE_PREFIX = "maintenance"

HEAL_ACTIONS = Dataset(
    name="heal_actions",
    description="Auto-heal audit log: every re-enable, dry-run and skip, with its reason.",
    time_column="at",
    unique_key=("id",),
    schema=pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            # null only on the organization-wide maintenance skip
            pa.field("account_id", pa.string()),
            pa.field("account_name", pa.string()),
            pa.field("region", pa.string()),
            pa.field("bus", pa.string()),
            pa.field("rule", pa.string()),
            pa.field("team", pa.string()),
            pa.field("action", pa.string(), nullable=False),
            pa.field("dry_run", pa.bool_(), nullable=False),
            pa.field("result", pa.string(), nullable=False),
            pa.field("reason", pa.string(), nullable=False),
            pa.field("disabled_by", pa.string()),
            pa.field("disabled_at", UTC_TS),
            pa.field("at", UTC_TS, nullable=False),
            pa.field("actor", pa.string(), nullable=False),
        ]
    ),
)

#: This module's datasets, in the catalogue's order (orgscope/datasets/__init__.py).
DATASETS: tuple[Dataset, ...] = (HEAL_ACTIONS,)
