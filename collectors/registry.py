"""The one registry of collectors: a plain name -> Collector map.

Adding a data source is one module in collectors/ (its function, its settings model and its
``Collector``), one line in ``_ALL`` below, its section in config.toml, its docs and one test
file: docs/architecture.md, "Where does X go", walks one example.
"""

from __future__ import annotations

from collectors.cost import COST
from collectors.dlq import DLQ
from collectors.inventory import INVENTORY
from collectors.metrics import METRICS
from collectors.otel import OTEL
from collectors.otlp_files import OTLP_FILES
from collectors.schemas import SCHEMAS
from collectors.xray import XRAY
from orgscope.collect import Collector

#: In the order config.toml's sections and the docs list them.
_ALL: tuple[Collector, ...] = (
    INVENTORY,
    METRICS,
    DLQ,
    COST,
    XRAY,
    OTEL,
    OTLP_FILES,
    SCHEMAS,
)

COLLECTORS: dict[str, Collector] = {collector.name: collector for collector in _ALL}


def get(name: str) -> Collector:
    """The collector called ``name``; KeyError names the known ones."""
    try:
        return COLLECTORS[name]
    except KeyError:
        raise KeyError(f"unknown collector {name!r} (known: {', '.join(COLLECTORS)})") from None


def read_actions() -> list[str]:
    """Every IAM action the collectors call through the read role, sorted."""
    return sorted({action for collector in _ALL for action in collector.iam_actions})
