"""Exact, hand-sized frames for the health model's tests (constant rates, no noise)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache

import pandas as pd

from orgscope.config import HealthConfig
from orgscope.datasets import ACCOUNT_METRICS, AVERAGE_METRICS, RULE_METRICS
from orgscope.health.model import HourlyRules, evaluate
from testkit import synthetic as sy

#: A Tuesday, 14:10 UTC: the window [13:55, 14:10) falls in the Tue 14:00 bucket.
NOW = datetime(2026, 11, 24, 14, 10, tzinfo=UTC)
PERIOD = timedelta(minutes=5)
CENTRAL = "121212121212"
WEB = "111111111111"
ORDERS = "777777777777"
REGION = "us-east-1"
NAMES = {CENTRAL: "event-bus", WEB: "customer-web", ORDERS: "order-processing"}
RULE = sy.SynthRule(CENTRAL, "order-placed", bus="central-bus",
                    sources=("quickgrocer.customer-web",),
                    dlq_arns=(f"arn:aws:sqs:{REGION}:{ORDERS}:orders-dlq",))
OTHER = sy.SynthRule(ORDERS, "orders-in", sources=("quickgrocer.payment-service",))
KEY = RULE.key


def series(key: tuple[str, str, str, str], metric: str, start: datetime, end: datetime,
           value: float) -> pd.DataFrame:
    index = sy.periods(start, end, PERIOD)
    account_id, region, bus, rule = key
    return pd.DataFrame({"account_id": account_id, "region": region,
                         "bus": bus or None, "rule": rule or None, "metric": metric,
                         "ts": index, "value": value})


def steady(key: tuple[str, str, str, str], start: datetime, end: datetime,
           matched: float = 20.0, latency: float = 90.0) -> pd.DataFrame:
    """Every rule metric per period: ``matched`` events delivered, counts zero-filled."""
    values = {m: 0.0 for m in RULE_METRICS}
    for metric in ("MatchedEvents", "TriggeredRules", "Invocations", "InvocationAttempts",
                   "SuccessfulInvocationAttempts"):
        values[metric] = matched
    values.update({m: latency for m in AVERAGE_METRICS})
    return pd.concat([series(key, m, start, end, v) for m, v in values.items()],
                     ignore_index=True)


def producer(account_id: str, start: datetime, end: datetime, entries: float = 100.0,
             failed: float = 0.0) -> pd.DataFrame:
    values = {m: 0.0 for m in ACCOUNT_METRICS}
    values.update({"PutEventsEntriesCount": entries, "PutEventsFailedEntriesCount": failed,
                   "PutEventsApproximateCallCount": entries / 4,
                   "PutEventsApproximateFailedCount": failed / 4})
    return pd.concat([series((account_id, REGION, "", ""), m, start, end, v)
                      for m, v in values.items()], ignore_index=True)


def replace(frame: pd.DataFrame, key: tuple[str, str, str, str], metric: str,
            start: datetime, end: datetime, value: float) -> pd.DataFrame:
    """``frame`` with ``metric`` of ``key`` set to ``value`` on [start, end)."""
    ts = pd.to_datetime(frame["ts"], utc=True)
    mask = ((frame["account_id"] == key[0]) & (frame["region"] == key[1])
            & (frame["bus"].fillna("") == key[2]) & (frame["rule"].fillna("") == key[3])
            & (frame["metric"] == metric) & (ts >= pd.Timestamp(start))
            & (ts < pd.Timestamp(end)))
    out = frame.copy()
    out.loc[mask, "value"] = value
    return out


def window_start(minutes: int = 15) -> datetime:
    return NOW - timedelta(minutes=minutes)


@lru_cache(maxsize=4)
def history(days: float = 30, matched: float = 20.0) -> pd.DataFrame:
    """Both rules steady for ``days`` up to NOW, and the web producer publishing (cached:
    never change the frame in place; :func:`replace` copies)."""
    start = NOW - timedelta(days=days)
    return pd.concat([steady(KEY, start, NOW, matched), steady(OTHER.key, start, NOW),
                      producer(WEB, start, NOW)], ignore_index=True)


def judge(metrics: pd.DataFrame, *, rules: list[sy.SynthRule] | None = None,
          dlq: pd.DataFrame | None = None, accounts: pd.DataFrame | None = None,
          runs: pd.DataFrame | None = None, buses: pd.DataFrame | None = None,
          cfg: HealthConfig | None = None, hourly: HourlyRules | None = None
          ) -> pd.DataFrame:
    """evaluate() at NOW with healthy defaults for every frame not given; indexed by rule."""
    rules = rules or [RULE, OTHER]
    result = evaluate(
        sy.inventory(rules, NOW - timedelta(minutes=2)), metrics,
        dlq if dlq is not None else sy.dlq_readings([]),
        accounts if accounts is not None else sy.accounts(NAMES, NOW - timedelta(minutes=2)),
        runs if runs is not None else sy.runs([(a, REGION) for a in NAMES],
                                              NOW - timedelta(minutes=3)),
        buses if buses is not None else sy.buses([]),
        NOW, cfg or HealthConfig(), PERIOD, hourly)
    return result.set_index("rule")
