"""CloudWatch AWS/Events metrics of every rule in the inventory (contract; collector follows).

Dataset ``event_metrics``: one row per (account, region, bus, rule, metric, period start).
Account-level PutEvents* metrics have null ``bus`` and ``rule``.
"""

from __future__ import annotations

import pyarrow as pa

from orgscope.datasets import UTC_TS, Dataset

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

EVENT_METRICS = Dataset(
    name="event_metrics",
    description="AWS/Events metrics per rule (and PutEvents per account), one row per period.",
    time_column="ts",
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
