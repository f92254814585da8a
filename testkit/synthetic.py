"""Synthetic frames in the stored datasets' shapes, for the health model's tests and benchmark.

Pure builders, no I/O: a zero-filled ``event_metrics`` history with a daily and weekly traffic
shape, the matching inventory, accounts, runs and bus snapshots. The numbers are plausible, not
the simulator's: the simulator plays AWS; these exercise the model's arithmetic.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from orgscope.datasets import ACCOUNT_METRICS, AVERAGE_METRICS, RULE_METRICS

#: A function of the period starts giving each period's value.
Shape = Callable[[pd.DatetimeIndex], np.ndarray]


@dataclass(frozen=True)
class SynthRule:
    """One rule of the synthetic inventory."""

    account_id: str
    rule: str
    bus: str = "default"
    region: str = "us-east-1"
    state: str = "ENABLED"
    sources: tuple[str, ...] = ("quickgrocer.customer-web",)
    dlq_arns: tuple[str, ...] = ()
    peak_per_period: float = 50.0

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.account_id, self.region, self.bus, self.rule)


def daily_shape(index: pd.DatetimeIndex) -> np.ndarray:
    """0.15 .. 1.0 over the UTC day (lunch and dinner peaks), a little lower at weekends."""
    hour = index.hour.to_numpy() + index.minute.to_numpy() / 60.0
    shape = 0.15 + 0.5 * np.exp(-((hour - 12.5) ** 2) / 5.0) + 0.85 * np.exp(
        -((hour - 18.5) ** 2) / 6.5)
    weekend = np.where(index.dayofweek.to_numpy() >= 5, 0.8, 1.0)
    result: np.ndarray = np.minimum(shape, 1.0) * weekend
    return result


def periods(start: datetime, end: datetime, period: timedelta) -> pd.DatetimeIndex:
    """Period starts in [start, end)."""
    return pd.date_range(start, end, freq=pd.Timedelta(period), inclusive="left", tz="UTC")


@dataclass
class Override:
    """Replace one rule's metric by ``value`` on [start, end)."""

    key: tuple[str, str, str, str]
    metric: str
    start: datetime
    end: datetime
    value: float


@dataclass
class Scenario:
    """A synthetic organization's metrics history, with overrides for faults."""

    rules: Sequence[SynthRule]
    start: datetime
    end: datetime
    period: timedelta = timedelta(minutes=5)
    latency_ms: float = 90.0
    producers: dict[str, str] = field(default_factory=dict)  # account id -> region
    overrides: list[Override] = field(default_factory=list)
    seed: int = 7

    def metrics(self) -> pd.DataFrame:
        """``event_metrics`` rows: every rule metric per period (counts zero-filled), plus the
        PutEvents metrics of each producer account."""
        index = periods(self.start, self.end, self.period)
        rng = np.random.default_rng(self.seed)
        shape = daily_shape(index)
        frames = []
        n = len(index)
        for rule in self.rules:
            matched = np.rint(rule.peak_per_period * shape * rng.lognormal(0.0, 0.1, n))
            values: dict[str, np.ndarray] = {m: np.zeros(n) for m in RULE_METRICS}
            for metric in ("MatchedEvents", "TriggeredRules", "Invocations", "InvocationAttempts",
                           "SuccessfulInvocationAttempts"):
                values[metric] = matched.copy()
            values["IngestionToInvocationStartLatency"] = np.where(
                matched > 0, self.latency_ms * rng.lognormal(0.0, 0.05, n), np.nan)
            if rule.state == "DISABLED":
                values = {m: np.full(n, np.nan if m in AVERAGE_METRICS else 0.0)
                          for m in values}
            for item in self.overrides:
                if item.key == rule.key:
                    mask = (index >= pd.Timestamp(item.start)) & (index < pd.Timestamp(item.end))
                    values[item.metric] = np.where(mask, item.value, values[item.metric])
            for metric, column in values.items():
                keep = ~np.isnan(column)
                frames.append(pd.DataFrame({
                    "account_id": rule.account_id, "region": rule.region, "bus": rule.bus,
                    "rule": rule.rule, "metric": metric, "ts": index[keep],
                    "value": column[keep]}))
        for account_id, region in self.producers.items():
            entries = np.rint(200 * shape * rng.lognormal(0.0, 0.1, n))
            put = {m: np.zeros(n) for m in ACCOUNT_METRICS}
            put["PutEventsEntriesCount"] = entries
            put["PutEventsApproximateCallCount"] = np.ceil(entries / 4)
            put["PutEventsApproximateSuccessCount"] = np.ceil(entries / 4)
            for item in self.overrides:
                if item.key[0] == account_id and item.key[2] == "":
                    mask = (index >= pd.Timestamp(item.start)) & (index < pd.Timestamp(item.end))
                    put[item.metric] = np.where(mask, item.value, put[item.metric])
            for metric, column in put.items():
                frames.append(pd.DataFrame({
                    "account_id": account_id, "region": region, "bus": None, "rule": None,
                    "metric": metric, "ts": index, "value": column}))
        return pd.concat(frames, ignore_index=True)


def inventory(rules: Sequence[SynthRule], collected_at: datetime) -> pd.DataFrame:
    """The ``rules`` dataset's latest snapshot for ``rules``."""
    return pd.DataFrame([{
        "account_id": r.account_id, "region": r.region, "bus": r.bus, "rule": r.rule,
        "arn": f"arn:aws:events:{r.region}:{r.account_id}:rule/{r.bus}/{r.rule}",
        "state": r.state, "description": None,
        "event_pattern": json.dumps({"source": list(r.sources)}), "schedule_expression": None,
        "managed_by": None,
        "targets": json.dumps([{"id": "t", "arn": "arn:aws:sqs:::q", "role_arn": None,
                                "dlq_arn": d, "retry_policy": None} for d in r.dlq_arns]),
        "target_count": max(1, len(r.dlq_arns)), "dlq_arns": list(r.dlq_arns), "tags": "{}",
        "collected_at": collected_at,
    } for r in rules])


def accounts(names: dict[str, str], checked_at: datetime,
             unreachable: dict[str, str] | None = None) -> pd.DataFrame:
    """The ``accounts`` dataset: id -> name (also the team), reachable unless listed."""
    unreachable = unreachable or {}
    return pd.DataFrame([{
        "account_id": account_id, "name": name, "team": name, "environment": "production",
        "cost_center": "", "reachable": account_id not in unreachable,
        "reason": unreachable.get(account_id), "checked_at": checked_at,
    } for account_id, name in names.items()])


def runs(pairs: Sequence[tuple[str, str]], started_at: datetime, status: str = "ok",
         error: str | None = None, collector: str = "metrics") -> pd.DataFrame:
    """``runs`` rows of ``collector`` for each (account_id, region)."""
    return pd.DataFrame([{
        "run_id": f"c-{started_at:%Y%m%dT%H%M%SZ}", "collector": collector,
        "account_id": account_id, "region": region, "started_at": started_at,
        "duration_s": 1.0, "status": status, "error": error, "api_calls": 1,
        "api_calls_by_operation": "{}", "metrics_requested": 0, "traces_retrieved": 0, "rows": 0,
    } for account_id, region in pairs])


def buses(snapshots: Sequence[tuple[datetime, str, str, str, Sequence[str]]]) -> pd.DataFrame:
    """``event_buses`` rows from (collected_at, account_id, region, bus, allowed_principals)."""
    return pd.DataFrame([{
        "account_id": account_id, "region": region, "bus": bus,
        "arn": f"arn:aws:events:{region}:{account_id}:event-bus/{bus}", "policy": None,
        "allowed_principals": list(principals), "rule_count": 0, "collected_at": at,
    } for at, account_id, region, bus, principals in snapshots])


def dlq_readings(readings: Sequence[tuple[datetime, str, int]]) -> pd.DataFrame:
    """``dlq_depth`` rows from (ts, queue_arn, visible)."""
    return pd.DataFrame([{
        "account_id": arn.split(":")[4], "region": arn.split(":")[3],
        "queue": arn.split(":")[5], "queue_arn": arn, "ts": ts, "visible": visible,
        "in_flight": 0, "oldest_age_s": 0.0,
    } for ts, arn, visible in readings])
