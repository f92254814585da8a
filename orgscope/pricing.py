"""How a collector's billed usage follows its interval: what each collector's settings model
declares (``CollectorConfig.pricing``) and :mod:`orgscope.bill` prices."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

#: ``per_run``: a run costs the same whatever the interval (inventory, dlq, cost);
#: ``chunked``: a run reads ``interval + overlap`` in chunks of at most ``chunk``, each chunk
#: requesting every series again (metrics);
#: ``windowed``: a run reads the items of ``interval + overlap``, up to ``cap`` of them (xray).
Kind = Literal["per_run", "chunked", "windowed"]


@dataclass(frozen=True)
class Pricing:
    """One collector's pricing kind with the settings it depends on."""

    kind: Kind = "per_run"
    overlap: timedelta = timedelta(0)
    #: ``chunked``: the longest span one read covers (the collector's own constant).
    chunk: timedelta | None = None
    cap: int | None = None
    #: A collector whose runs read one of several tiers (runs.tier): each tier's interval.
    #: A run of the longest-interval tier takes the place of a run of the others.
    tiers: Mapping[str, timedelta] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind == "chunked" and self.chunk is None:
            raise ValueError("chunked pricing needs the collector's chunk (its longest read)")
