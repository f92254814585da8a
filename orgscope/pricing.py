"""How a collector's billed usage follows its interval: what each collector's settings model
declares (``CollectorConfig.pricing``) and :mod:`orgscope.bill` prices."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

#: ``per_run``: a run costs the same whatever the interval (inventory, dlq, cost);
#: ``chunked``: a run reads ``interval + overlap`` in chunks of at most ``chunk``, each chunk
#: requesting every series again (metrics);
#: ``windowed``: a run reads the items of ``interval + overlap``, up to ``cap`` of them (xray).
Kind = Literal["per_run", "chunked", "windowed"]

#: The metrics collector's longest GetMetricData chunk (collectors/metrics.py MAX_CHUNK_SPAN).
DEFAULT_CHUNK = timedelta(hours=1)


@dataclass(frozen=True)
class Pricing:
    """One collector's pricing kind with the settings it depends on."""

    kind: Kind = "per_run"
    overlap: timedelta = timedelta(0)
    chunk: timedelta = DEFAULT_CHUNK
    cap: int | None = None
