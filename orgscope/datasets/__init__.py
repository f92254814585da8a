"""The one dataset catalogue: every dataset orgscope stores, and nothing else.

Datasets are the public contract between the parts (collectors write them, steps derive them,
the dashboard and alerts read them), so they are declared here in the spine, one module per
domain, and not in the packages that write them: a reader never imports a writer to learn a
schema. docs/datasets.md documents every column; tests/test_docs.py keeps the two in step.
"""

from __future__ import annotations

from orgscope.datasets import alerts, changes, cost, events, heal, schemas, spine, traces
from orgscope.datasets.alerts import (
    ALERT_EVENTS,
    ALERTS,
    LABELS,
    NOTIFICATIONS,
    SEVERITIES,
    SILENCE_SOURCES,
    SILENCES,
)
from orgscope.datasets.changes import RULE_CHANGES
from orgscope.datasets.cost import (
    COST_CLOSED_MONTHS,
    COST_DAILY,
    COST_RESOURCES,
    FLOW_COST_DAILY,
)
from orgscope.datasets.events import (
    ACCOUNT_METRICS,
    ACCOUNT_SIGNALS,
    AVERAGE_METRICS,
    DLQ_DEPTH,
    EVENT_BUSES,
    EVENT_METRICS,
    RULE_HEALTH,
    RULE_METRICS,
    RULE_SIGNALS,
    RULES,
    VERDICTS,
    activity_metric,
)
from orgscope.datasets.heal import HEAL_ACTIONS, MAINTENANCE_PREFIX
from orgscope.datasets.schema import UTC_TS, Dataset, SchemaError
from orgscope.datasets.schemas import EVENT_SCHEMAS
from orgscope.datasets.spine import ACCOUNTS, RUNS, WATERMARKS
from orgscope.datasets.traces import OTLP_EXPORTS, SPANS, TRACES

#: Every dataset, by domain: each domain module's ``DATASETS``, so a new dataset is declared
#: in one place (its module; importing it from this package is a convenience).
CATALOGUE: tuple[Dataset, ...] = (*spine.DATASETS, *events.DATASETS, *traces.DATASETS,
                                  *cost.DATASETS, *alerts.DATASETS, *heal.DATASETS,
                                  *schemas.DATASETS, *changes.DATASETS)


def all_datasets() -> list[Dataset]:
    """Every dataset orgscope stores (what a :class:`orgscope.store.Store` is opened with)."""
    return list(CATALOGUE)


__all__ = [
    "ACCOUNTS",
    "ACCOUNT_METRICS",
    "ACCOUNT_SIGNALS",
    "ALERTS",
    "ALERT_EVENTS",
    "AVERAGE_METRICS",
    "CATALOGUE",
    "COST_CLOSED_MONTHS",
    "COST_DAILY",
    "COST_RESOURCES",
    "DLQ_DEPTH",
    "EVENT_BUSES",
    "EVENT_METRICS",
    "EVENT_SCHEMAS",
    "FLOW_COST_DAILY",
    "HEAL_ACTIONS",
    "LABELS",
    "MAINTENANCE_PREFIX",
    "NOTIFICATIONS",
    "OTLP_EXPORTS",
    "RULES",
    "RULE_CHANGES",
    "RULE_HEALTH",
    "RULE_METRICS",
    "RULE_SIGNALS",
    "RUNS",
    "SEVERITIES",
    "SILENCES",
    "SILENCE_SOURCES",
    "SPANS",
    "TRACES",
    "UTC_TS",
    "VERDICTS",
    "WATERMARKS",
    "Dataset",
    "SchemaError",
    "activity_metric",
    "all_datasets",
]
