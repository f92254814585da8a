"""The one registry of collectors: a plain name -> Collector map.

Adding a data source is one module in collectors/, one line in ``_ALL`` below, and one test file.
"""

from __future__ import annotations

from alerts.datasets import ALERT_DATASETS
from alerts.heal_datasets import HEAL_ACTIONS
from collectors.base import Collector
from collectors.cost import COST
from collectors.dlq import DLQ
from collectors.inventory import INVENTORY
from collectors.metrics import METRICS
from collectors.otel import OTEL
from collectors.otlp_files import OTLP_FILES
from collectors.xray import XRAY
from orgscope.cost.datasets import COST_CLOSED_MONTHS
from orgscope.datasets import SPINE_DATASETS, Dataset
from orgscope.health.datasets import RULE_HEALTH
from orgscope.traces.datasets import OTLP_EXPORTS, TRACES

_ALL: tuple[Collector, ...] = (
    INVENTORY,
    COST,
    METRICS,
    DLQ,
    XRAY,
    OTEL,
    OTLP_FILES,
)

#: Datasets computed from the collected ones rather than collected (the health verdicts, the
#: closed cost months, the alerts' state, the auto-heal audit log).
DERIVED_DATASETS: tuple[Dataset, ...] = (RULE_HEALTH, COST_CLOSED_MONTHS, *ALERT_DATASETS,
                                         HEAL_ACTIONS, TRACES,
                                         OTLP_EXPORTS)

COLLECTORS: dict[str, Collector] = {collector.name: collector for collector in _ALL}


def get(name: str) -> Collector:
    """The collector called ``name``; KeyError names the known ones."""
    try:
        return COLLECTORS[name]
    except KeyError:
        raise KeyError(f"unknown collector {name!r} (known: {', '.join(COLLECTORS)})") from None


def all_datasets() -> list[Dataset]:
    """Every dataset orgscope stores: the spine's, each collector's and the derived ones."""
    datasets = list(SPINE_DATASETS)
    for collector in _ALL:
        datasets.extend(collector.datasets)
    datasets.extend(DERIVED_DATASETS)
    return datasets


def read_actions() -> list[str]:
    """Every IAM action the collectors call through the read role, sorted."""
    return sorted({action for collector in _ALL for action in collector.iam_actions})
