"""The one registry of collectors: a plain name -> Collector map.

Adding a data source is one module in collectors/, one line in ``_ALL`` below, and one test file.
"""

from __future__ import annotations

from collectors.base import Collector
from collectors.cost import COST
from collectors.inventory import INVENTORY
from orgscope.datasets import SPINE_DATASETS, Dataset

_ALL: tuple[Collector, ...] = (
    INVENTORY,
    COST,
)

COLLECTORS: dict[str, Collector] = {collector.name: collector for collector in _ALL}


def get(name: str) -> Collector:
    """The collector called ``name``; KeyError names the known ones."""
    try:
        return COLLECTORS[name]
    except KeyError:
        raise KeyError(f"unknown collector {name!r} (known: {', '.join(COLLECTORS)})") from None


def all_datasets() -> list[Dataset]:
    """Every dataset orgscope stores: the spine's and each collector's."""
    datasets = list(SPINE_DATASETS)
    for collector in _ALL:
        datasets.extend(collector.datasets)
    return datasets


def read_actions() -> list[str]:
    """Every IAM action the collectors call through the read role, sorted."""
    return sorted({action for collector in _ALL for action in collector.iam_actions})
