"""``runs`` rows like the runner writes them, for the Collectors page's tests and the render
benchmark: every collector at its interval over a span of time, vectorized.

Each account runs inventory, metrics and dlq every 5 minutes and xray every minute (the
reference config's intervals); the cost collector runs every 8 hours in the management
account. Per-run usage follows each collector's shape: the metrics collector requests 12
series per rule in ceil(series / 500) GetMetricData calls, the DLQ collector one metric per
queue, X-Ray retrieves a few traces in 5-id BatchGetTraces calls, Cost Explorer 27 requests.
Every key's first run is a back-fill (metrics 48 chunks, cost 13 months), as in a real store.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from orgscope.datasets import RUNS

#: The runs columns written (optional ones added later, such as ``shard``, are left null).
COLUMNS = [c for c in RUNS.columns if c not in RUNS.__dict__.get("optional_columns", ())]
MANAGEMENT = "101010101010"
UNREACHABLE_ERROR = ("account unreachable: AccessDenied on AssumeRole: not authorized to "
                     "perform: sts:AssumeRole on OrgScopeReadOnly")


@dataclass(frozen=True)
class Shape:
    """One collector's run: interval, calls by operation, metrics, traces, seconds."""

    collector: str
    interval: timedelta
    ops: dict[str, int]
    metrics: int = 0
    traces: int = 0
    duration_s: float = 0.5
    backfill_factor: int = 1


def shapes(rules: int, queues: int, traces: int) -> list[Shape]:
    """The regional collectors' per-run shapes for an account with ``rules`` rules."""
    series = rules * 12
    xray_ops = {"xray:BatchGetTraces": math.ceil(traces / 5), "xray:GetTraceSummaries": 1}
    return [
        Shape("inventory", timedelta(minutes=5),
              {"events:ListEventBuses": 1, "events:ListRules": 2,
               "events:ListTargetsByRule": rules, "events:ListTagsForResource": rules},
              duration_s=0.8),
        Shape("metrics", timedelta(minutes=5),
              {"cloudwatch:GetMetricData": max(1, math.ceil(series / 500))}, metrics=series,
              duration_s=1.2, backfill_factor=48),
        Shape("dlq", timedelta(minutes=5),
              {"sqs:GetQueueUrl": queues, "sqs:GetQueueAttributes": queues,
               "cloudwatch:GetMetricData": 1 if queues else 0}, metrics=queues,
              duration_s=0.4),
        Shape("xray", timedelta(minutes=1), xray_ops, traces=traces, duration_s=0.6,
              backfill_factor=20),
    ]


COST = Shape("cost", timedelta(hours=8), {"ce:GetCostAndUsage": 27}, duration_s=6.0,
             backfill_factor=15)


def _frame(shape: Shape, accounts: Sequence[str], start: datetime, end: datetime,
           region: str, unreachable: dict[str, datetime], seed: int) -> pd.DataFrame:
    times = pd.date_range(start, end, freq=pd.Timedelta(shape.interval), inclusive="left",
                          tz="UTC")
    n, k = len(times), len(accounts)
    if not n or not k:
        return pd.DataFrame(columns=COLUMNS)
    account = np.repeat(np.asarray(accounts, dtype=object), n)
    started = np.tile(times.to_numpy(), k)
    first = np.tile(np.arange(n) == 0, k)
    factor = np.where(first, shape.backfill_factor, 1)
    calls = sum(shape.ops.values())
    down_since = np.array([unreachable.get(a) for a in accounts], dtype=object)
    down = np.zeros(n * k, dtype=bool)
    for index, since in enumerate(down_since):
        if since is not None:
            down[index * n:(index + 1) * n] = np.asarray(times >= pd.Timestamp(since))
    rng = np.random.default_rng(seed)
    ops_ok = json.dumps(dict(sorted(shape.ops.items())))
    ops_backfill = json.dumps({op: count * shape.backfill_factor
                               for op, count in sorted(shape.ops.items())})
    frame = pd.DataFrame({
        "run_id": f"c-synthetic-{shape.collector}",
        "collector": shape.collector,
        "account_id": account,
        "region": region,
        "started_at": pd.to_datetime(started, utc=True),
        "duration_s": np.round(np.where(down, 0.0, shape.duration_s * factor
                                        * rng.lognormal(0, 0.15, n * k)), 3),
        "status": np.where(down, "error", "ok"),
        "error": [UNREACHABLE_ERROR if d else None for d in down],
        "api_calls": np.where(down, 0, calls * factor).astype("int64"),
        "api_calls_by_operation": np.where(down, "{}", np.where(first, ops_backfill, ops_ok)),
        "metrics_requested": np.where(down, 0, shape.metrics * factor).astype("int64"),
        "traces_retrieved": np.where(down, 0, shape.traces * factor).astype("int64"),
        "rows": np.where(down, 0, 10).astype("int64"),
    })
    return frame[COLUMNS]


def runs_frame(accounts: dict[str, tuple[int, int, int]], start: datetime, end: datetime,
               *, region: str = "us-east-1", unreachable: dict[str, datetime] | None = None,
               management: str = MANAGEMENT) -> pd.DataFrame:
    """Every collector's runs over [start, end). ``accounts``: id -> (rules, queues, traces a
    run); ``unreachable``: id -> since when its role cannot be assumed."""
    down = unreachable or {}
    frames = []
    by_shape: dict[tuple[str, int, int, int], list[str]] = {}
    for account_id, (rules, queues, traces) in accounts.items():
        for shape in shapes(rules, queues, traces):
            by_shape.setdefault((shape.collector, rules, queues, traces), []).append(account_id)
    for seed, ((collector, rules, queues, traces), ids) in enumerate(sorted(by_shape.items())):
        shape = next(s for s in shapes(rules, queues, traces) if s.collector == collector)
        frames.append(_frame(shape, ids, start, end, region, down, seed))
    frames.append(_frame(COST, [management], start, end, region, down, 999))
    return pd.concat(frames, ignore_index=True)
