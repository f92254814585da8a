"""Event flow: the EventBridge inventory, AWS/Events metrics, dead-letter queue depth and
the health verdicts derived from them (docs/health.md)."""

from __future__ import annotations

import pyarrow as pa

from orgscope.datasets.schema import UTC_TS, Dataset

RULES = Dataset(
    name="rules",
    description="EventBridge rules with state, pattern, targets, DLQs and tags (snapshots).",
    time_column="collected_at",
    snapshot_of=("account_id", "region"),
    snapshot_collector="inventory",
    schema=pa.schema(
        [
            pa.field("account_id", pa.string(), nullable=False),
            pa.field("region", pa.string(), nullable=False),
            pa.field("bus", pa.string(), nullable=False),
            pa.field("rule", pa.string(), nullable=False),
            pa.field("arn", pa.string()),
            pa.field("state", pa.string(), nullable=False),
            pa.field("description", pa.string()),
            pa.field("event_pattern", pa.string()),
            pa.field("schedule_expression", pa.string()),
            pa.field("managed_by", pa.string()),
            pa.field("targets", pa.string()),
            pa.field("target_count", pa.int64()),
            pa.field("dlq_arns", pa.list_(pa.string())),
            pa.field("tags", pa.string()),
            pa.field("collected_at", UTC_TS, nullable=False),
        ]
    ),
)

EVENT_BUSES = Dataset(
    name="event_buses",
    description="EventBridge buses with their resource policies (snapshots).",
    time_column="collected_at",
    snapshot_of=("account_id", "region"),
    snapshot_collector="inventory",
    schema=pa.schema(
        [
            pa.field("account_id", pa.string(), nullable=False),
            pa.field("region", pa.string(), nullable=False),
            pa.field("bus", pa.string(), nullable=False),
            pa.field("arn", pa.string()),
            pa.field("policy", pa.string()),
            pa.field("allowed_principals", pa.list_(pa.string())),
            pa.field("rule_count", pa.int64()),
            pa.field("collected_at", UTC_TS, nullable=False),
        ]
    ),
)

#: Per-rule metrics (dimension RuleName on the default bus, EventBusName+RuleName otherwise).
RULE_METRICS: tuple[str, ...] = (
    "MatchedEvents",
    "TriggeredRules",
    "Invocations",
    "FailedInvocations",
    "ThrottledRules",
    "InvocationAttempts",
    "SuccessfulInvocationAttempts",
    "RetryInvocationAttempts",
    "InvocationsSentToDlq",
    "InvocationsFailedToBeSentToDlq",
    "DeadLetterInvocations",
    "IngestionToInvocationStartLatency",
)

#: Per-account metrics (no dimensions).
ACCOUNT_METRICS: tuple[str, ...] = (
    "PutEventsApproximateCallCount",
    "PutEventsApproximateSuccessCount",
    "PutEventsApproximateFailedCount",
    "PutEventsEntriesCount",
    "PutEventsFailedEntriesCount",
)

#: Metrics stored as the period's Average (milliseconds); every other one is a Sum.
AVERAGE_METRICS: frozenset[str] = frozenset({"IngestionToInvocationStartLatency"})

#: The failure signals read every metrics run as one series per account and region, across
#: all rules (no dimension; stored with null bus and rule), each with the per-rule metrics
#: read when it is not zero (collectors/metrics.py, "tiers").
RULE_SIGNALS: dict[str, tuple[str, ...]] = {
    # an event that could not be sent to the dead-letter queue failed permanently first:
    # FailedInvocations across all rules is not zero whenever it is
    "FailedInvocations": ("FailedInvocations", "Invocations", "InvocationsFailedToBeSentToDlq"),
    "DeadLetterInvocations": ("DeadLetterInvocations",),
    "ThrottledRules": ("ThrottledRules",),
    "RetryInvocationAttempts": ("RetryInvocationAttempts", "InvocationAttempts"),
    "IngestionToInvocationStartLatency": ("IngestionToInvocationStartLatency",),
}
#: The producer failure signals read every run per account; either not zero reads the rest
#: of ACCOUNT_METRICS.
ACCOUNT_SIGNALS: tuple[str, ...] = ("PutEventsFailedEntriesCount",
                                    "PutEventsApproximateFailedCount")


def activity_metric(event_pattern: object, schedule_expression: object) -> str:
    """The metric that says a rule is doing its job: TriggeredRules for a scheduled rule (a
    schedule and no pattern), MatchedEvents for every other."""
    def given(value: object) -> bool:  # None, "" and a frame's NaN are all "absent"
        return isinstance(value, str) and bool(value)

    scheduled = not given(event_pattern) and given(schedule_expression)
    return "TriggeredRules" if scheduled else "MatchedEvents"

EVENT_METRICS = Dataset(
    name="event_metrics",
    description="AWS/Events metrics per rule (and PutEvents per account), one row per period.",
    time_column="ts",
    # Each run re-reads the overlap before its watermark: the newer value of a period wins.
    unique_key=("account_id", "region", "bus", "rule", "metric", "ts"),
    schema=pa.schema(
        [
            pa.field("account_id", pa.string(), nullable=False),
            pa.field("region", pa.string(), nullable=False),
            pa.field("bus", pa.string()),
            pa.field("rule", pa.string()),
            pa.field("metric", pa.string(), nullable=False),
            pa.field("ts", UTC_TS, nullable=False),
            pa.field("value", pa.float64(), nullable=False),
        ]
    ),
)

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

#: This module's datasets, in the catalogue's order (orgscope/datasets/__init__.py).
DATASETS: tuple[Dataset, ...] = (RULES, EVENT_BUSES, EVENT_METRICS, DLQ_DEPTH, RULE_HEALTH)
