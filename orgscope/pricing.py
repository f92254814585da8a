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


@dataclass(frozen=True)
class Pricing:
    """One collector's pricing kind with the settings it depends on."""

    kind: Kind = "per_run"
    overlap: timedelta = timedelta(0)
    #: ``chunked``: the longest span one read covers (the collector's own constant).
    chunk: timedelta | None = None
    cap: int | None = None

    def __post_init__(self) -> None:
        if self.kind == "chunked" and self.chunk is None:
            raise ValueError("chunked pricing needs the collector's chunk (its longest read)")
