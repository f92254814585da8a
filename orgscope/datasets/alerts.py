"""Alerting: alert state, its lifecycle history, Slack notifications and silences.

* ``alerts``: one row per alert key each time its state or notification changes; the view
  ``alerts`` is the latest row per key, ``alerts_history`` every row.
* ``alert_events``: the lifecycle history, one row per transition.
* ``notifications``: one row per Slack message and attempt. A message is written again after
  every attempt under the same ``id`` (its partition is fixed by ``created_at``), and the view
  keeps the newest row per ``id``: the message's current status and attempt count.
* ``silences``: one row per silence, written again (same ``id``) when it is expired; the view
  keeps the newest row per ``id``.

Rows rewritten under a unique key are written with file ids that sort in time order
(:func:`orgscope.store.ordered_id`): the store keeps the row of the file whose name sorts last."""

from __future__ import annotations

import pyarrow as pa

from orgscope.datasets.schema import UTC_TS, Dataset

#: Alert severities, least severe first.
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")

SILENCE_SOURCES: tuple[str, ...] = ("config", "dashboard")

#: The labels an alert carries, which silences and routes match on.
LABELS: tuple[str, ...] = ("alert_name", "severity", "account_id", "account_name", "region",
                           "team", "bus", "rule", "service")

ALERTS = Dataset(
    name="alerts",
    description="Latest state of every alert by key (every change in alerts_history).",
    time_column="updated_at",
    snapshot_of=("key",),
    schema=pa.schema(
        [
            pa.field("key", pa.string(), nullable=False),
            pa.field("alert_name", pa.string(), nullable=False),
            pa.field("severity", pa.string(), nullable=False),
            pa.field("state", pa.string(), nullable=False),
            pa.field("account_id", pa.string()),
            pa.field("account_name", pa.string()),
            pa.field("region", pa.string()),
            pa.field("team", pa.string()),
            pa.field("bus", pa.string()),
            pa.field("rule", pa.string()),
            pa.field("service", pa.string()),
            pa.field("summary", pa.string(), nullable=False),
            pa.field("details", pa.string()),
            pa.field("started_at", UTC_TS, nullable=False),
            pa.field("fired_at", UTC_TS),
            pa.field("resolved_at", UTC_TS),
            pa.field("last_notified_at", UTC_TS),
            pa.field("updated_at", UTC_TS, nullable=False),
            pa.field("silenced_by", pa.string()),
        ]
    ),
)

ALERT_EVENTS = Dataset(
    name="alert_events",
    description="Every lifecycle transition of every alert (pending, firing, resolved).",
    time_column="at",
    schema=pa.schema(
        [
            pa.field("key", pa.string(), nullable=False),
            pa.field("state", pa.string(), nullable=False),
            pa.field("at", UTC_TS, nullable=False),
            pa.field("summary", pa.string(), nullable=False),
        ]
    ),
)

NOTIFICATIONS = Dataset(
    name="notifications",
    description="Every Slack message and its delivery: status, attempts, the payload as sent.",
    time_column="created_at",
    unique_key=("id",),
    schema=pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("alert_key", pa.string()),
            pa.field("kind", pa.string(), nullable=False),
            pa.field("channel", pa.string(), nullable=False),
            pa.field("status", pa.string(), nullable=False),
            pa.field("attempts", pa.int64(), nullable=False),
            pa.field("last_error", pa.string()),
            pa.field("created_at", UTC_TS, nullable=False),
            pa.field("sent_at", UTC_TS),
            pa.field("payload", pa.string(), nullable=False),
        ]
    ),
)

SILENCES = Dataset(
    name="silences",
    description="Silences (label matchers and an end time) from config.toml and the dashboard.",
    time_column="created_at",
    unique_key=("id",),
    schema=pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("matchers", pa.string(), nullable=False),
            pa.field("starts_at", UTC_TS, nullable=False),
            pa.field("ends_at", UTC_TS, nullable=False),
            pa.field("created_by", pa.string(), nullable=False),
            pa.field("comment", pa.string(), nullable=False),
            pa.field("created_at", UTC_TS, nullable=False),
            pa.field("expired_at", UTC_TS),
            pa.field("source", pa.string(), nullable=False),
        ]
    ),
)

#: This module's datasets, in the catalogue's order (orgscope/datasets/__init__.py).
DATASETS: tuple[Dataset, ...] = (ALERTS, ALERT_EVENTS, NOTIFICATIONS, SILENCES)
