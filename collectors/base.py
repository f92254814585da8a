"""What every collector is: a named function from one account-region context to frames.

A collector is a plain function ``fn(ctx) -> {dataset: DataFrame}``. The context carries the
account, the region, the time window of this run, and a ``client(service)`` method that hands
out the session factory's cached, refreshing client for that account and region. Collectors do
no I/O of their own beyond those clients, keep no state between calls, and never touch the
store: the runner checks each frame against its dataset and writes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import pandas as pd

from orgscope.accounts import Account
from orgscope.datasets import Dataset

#: "regional": once per (account, region); "payer": once, in the management account.
Scope = Literal["regional", "payer"]

Frames = dict[str, pd.DataFrame]


@dataclass(frozen=True)
class Window:
    """The time window one run covers: [start, end), both timezone-aware UTC."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class CollectContext:
    """Everything a collector may use for one (account, region) run."""

    account: Account
    region: str
    window: Window
    collected_at: datetime
    client_factory: Callable[[str], Any]

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` in this account and region (read role)."""
        return self.client_factory(service)


@dataclass(frozen=True)
class Collector:
    """A registered collector: its name, what it produces and how often it runs by default."""

    name: str
    fn: Callable[[CollectContext], Frames]
    datasets: tuple[Dataset, ...]
    scope: Scope
    description: str
    iam_actions: tuple[str, ...]
    default_interval_s: int = 300
