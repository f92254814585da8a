"""What every collector is: a named function from one account-region context to frames.

A collector is a plain function ``fn(ctx) -> {dataset: DataFrame}`` (or a :class:`Collected`,
when it also reports how far it has read). The context carries the account, the region, the
time window of this run, the collector's own config section, the latest snapshots of the
datasets it declared as ``inputs`` (for example the rule inventory the metrics collector asks
CloudWatch about), its watermark from the previous run, and a ``client(service)`` method that
hands out the session factory's cached, refreshing client for that account and region.

Collectors do no I/O of their own beyond those clients, keep no state between calls, and never
touch the store: the runner reads their inputs and watermarks, checks each frame against its
dataset, and writes frames and watermarks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import pandas as pd

from orgscope.accounts import Account
from orgscope.config import CollectorConfig
from orgscope.datasets import Dataset

#: "regional": once per (account, region); "payer": once, in the management account;
#: "local": once, reading nothing from AWS (files on the machine orgscope runs on), recorded
#: under the monitoring account and the first region.
Scope = Literal["regional", "payer", "local"]

Frames = dict[str, pd.DataFrame]

#: More pages than this from one call is a loop, not a bill.
MAX_PAGES = 1000


class PaginationError(RuntimeError):
    """An AWS call kept paging: it repeated a token, or went past MAX_PAGES pages."""


def pages(call: Callable[..., dict[str, Any]], params: Mapping[str, Any],
          token: str = "NextToken",  # noqa: S107 (the name of the page-token field)
          max_pages: int = MAX_PAGES) -> Iterator[dict[str, Any]]:
    """Every page of an AWS call that pages by ``token`` (for calls boto3 has no paginator
    for). A service that repeats a token would otherwise hold a worker, and with it every
    later run of that collector, forever: that raises :class:`PaginationError` instead."""
    request = dict(params)
    seen: set[str] = set()
    for _ in range(max_pages):
        page = call(**request)
        yield page
        next_token = page.get(token)
        if not next_token:
            return
        if next_token in seen:
            raise PaginationError(f"{getattr(call, '__name__', 'call')} repeated {token} "
                                  f"{str(next_token)[:40]!r}")
        seen.add(next_token)
        request[token] = next_token
    raise PaginationError(f"{getattr(call, '__name__', 'call')}: more than {max_pages} pages")


@dataclass(frozen=True)
class Window:
    """The time window one run covers: [start, end), both timezone-aware UTC."""

    start: datetime
    end: datetime


def incremental_window(collected_at: datetime, watermark: datetime | None,
                       backfill: timedelta, overlap: timedelta) -> Window | None:
    """[watermark - overlap, collected_at), never before collected_at - backfill (the first
    run, without a watermark, reads the whole back-fill); None when empty."""
    horizon = collected_at - backfill
    start = horizon if watermark is None else max(watermark - overlap, horizon)
    return Window(start, collected_at) if start < collected_at else None


@dataclass(frozen=True)
class Collected:
    """Frames plus the watermark: everything before it has been read for good.

    The runner stores the watermark and hands it back as ``ctx.watermark`` on the next run of
    the same collector, account and region.
    """

    frames: Frames
    watermark: datetime | None = None
    #: Which of its tiers the run read, for a collector that has tiers (metrics: "fast" or
    #: "full"); stored in ``runs.tier`` and priced apart by orgscope/bill.py.
    tier: str | None = None


@dataclass(frozen=True)
class CollectContext:
    """Everything a collector may use for one (account, region) run."""

    account: Account
    region: str
    window: Window
    collected_at: datetime
    client_factory: Callable[[str], Any]
    settings: CollectorConfig = field(default_factory=CollectorConfig)
    inputs: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    watermark: datetime | None = None

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` in this account and region (read role)."""
        return self.client_factory(service)

    def input(self, name: str) -> pd.DataFrame:
        """The latest snapshot of dataset ``name`` (declared in ``Collector.inputs``)."""
        return self.inputs[name]


#: A cheap read that needs exactly one IAM action of a collector (``orgscope check-config``):
#: it calls AWS through ``ctx.client`` and lets the client's error out; an access-denied code
#: means the read role lacks the action, any other answer (a missing resource included) that
#: it has it.
Probe = Callable[[CollectContext], object]


def probe_metric_data(ctx: CollectContext) -> object:
    """cloudwatch:GetMetricData for one AWS/Events series over ten minutes (one metric
    requested: $0.00001)."""
    end = ctx.collected_at.replace(second=0, microsecond=0)
    return ctx.client("cloudwatch").get_metric_data(
        MetricDataQueries=[{"Id": "probe", "MetricStat": {
            "Metric": {"Namespace": "AWS/Events", "MetricName": "Invocations"},
            "Period": 300, "Stat": "Sum"}}],
        StartTime=end - timedelta(minutes=10), EndTime=end)


@dataclass(frozen=True)
class Collector:
    """A registered collector, describing itself: what it reads (``iam_actions``, ``probes``,
    ``inputs``), what it writes (``datasets``), its ``[collectors.NAME]`` section
    (``settings``, whose ``pricing()`` tells the bill how its cost follows the interval) and
    the steps its runs feed. Config, the bill, the steps, the IAM test and the docs test are
    built from these declarations (docs/architecture.md, "Where does X go")."""

    name: str
    fn: Callable[[CollectContext], Frames | Collected]
    datasets: tuple[Dataset, ...]
    scope: Scope
    description: str
    iam_actions: tuple[str, ...]
    #: The model of its config section: :class:`CollectorConfig` or a subclass of it.
    settings: type[CollectorConfig] = CollectorConfig
    #: Steps (orgscope/plugins.py) that run after its runs, besides those that follow every
    #: collector.
    feeds: tuple[str, ...] = ()
    #: Datasets whose latest snapshot (the view of that name) the collector reads.
    inputs: tuple[str, ...] = ()
    #: Its cycles decide each account's reachability (``accounts``): a denied call means the
    #: read role is broken. Other collectors' denials fail only their own runs, so one missing
    #: permission cannot flip whole accounts between reachable and not.
    checks_reachability: bool = False
    #: One probe per action of ``iam_actions`` (action, probe), so ``check-config`` can say
    #: which permission a role lacks before a collector fails on it.
    probes: tuple[tuple[str, Probe], ...] = ()
