"""The auto-heal audit log: the ``heal_actions`` dataset.

One row per decision the heal step (alerts/heal.py) writes: a rule re-enabled (or that would
have been, in dry-run), a rule it decided to leave alone and why, and, when the organization
looks like it is in planned maintenance, one organization-wide skip whose reason starts with
``maintenance``. The alerts step turns new rows into Slack heal notices and the maintenance
skip into a critical page; the Alerts page shows the log. docs/datasets.md documents every
column, docs/heal.md the decisions.

Rows are never rewritten: ``id`` is unique per decision.
"""

from __future__ import annotations

import pyarrow as pa

from orgscope.datasets import UTC_TS, Dataset

#: What a row records.
HEAL_ACTION_KINDS: tuple[str, ...] = ("enable", "skip")
#: How it went: ``enabled`` (EnableRule, then DescribeRule said ENABLED), ``would-enable``
#: (dry-run: no write call), ``skipped`` (a safety check said no), ``failed`` (the call
#: failed), ``not-verified`` (EnableRule answered, DescribeRule did not confirm ENABLED).
HEAL_RESULTS: tuple[str, ...] = ("enabled", "would-enable", "skipped", "failed", "not-verified")
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
