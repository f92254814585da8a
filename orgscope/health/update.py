"""The health model's I/O edge: read what the model needs from the store, evaluate, write.

Only the rows the model reads are asked of DuckDB, with parameterized SQL and date-partition
filters so whole days are skipped: the window (every metric), the baseline metrics' fallback
span and the same hours of earlier weeks (:func:`read_ranges`), the newest metrics runs, the
bus-policy snapshots where a policy changed, the latest inventory and account reachability.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from orgscope.config import Config, HealthConfig
from orgscope.datasets import (
    ACCOUNTS,
    DLQ_DEPTH,
    EVENT_METRICS,
    RULE_HEALTH,
    RUNS,
    VERDICTS,
    Dataset,
)
from orgscope.health.model import (
    BASELINE_METRICS,
    HOUR,
    METRICS_COLLECTOR,
    WEEK,
    HourlyRules,
    evaluate,
    fallback_lookback,
    needs_fallback,
)
from orgscope.store import Store

log = logging.getLogger(__name__)

RULES_DATASET = "rules"
BUSES_DATASET = "event_buses"


@dataclass(frozen=True)
class ReadRange:
    """Metric rows with ts in [start, end); ``metrics`` None means every metric."""

    start: datetime
    end: datetime
    metrics: tuple[str, ...] | None


def read_ranges(now: datetime, cfg: HealthConfig, period: timedelta,
                fallback: bool = True) -> list[ReadRange]:
    """The non-overlapping spans of ``event_metrics`` :func:`model.evaluate` needs at ``now``.

    * first, every metric from ``now - window - stale_after - period`` (the window, anchored
      on the newest stored period, which may lag ``now`` by up to stale_after);
    * the baseline metrics in the candidate hours of each of the last ``baseline_weeks``
      weeks;
    * with ``fallback``, the baseline metrics over the fallback span before the window
      (:func:`fallback_lookback`), merged with the hours it overlaps.
    """
    recent = now - cfg.window - cfg.stale_after - period
    lookback = recent - fallback_lookback(cfg) - cfg.window
    ranges = [ReadRange(recent, now + period, None)]
    spans: list[tuple[datetime, datetime]] = [(lookback, recent)] if fallback else []
    first_hour = pd.Timestamp(recent - cfg.window).floor("h").to_pydatetime()
    last_hour = pd.Timestamp(now).floor("h").to_pydatetime() + HOUR
    for week in range(1, cfg.baseline_weeks + 1):
        spans.append((first_hour - WEEK * week, min(last_hour - WEEK * week, recent)))
    for start, end in _merged([(a, b) for a, b in spans if a < b]):
        ranges.append(ReadRange(start, end, BASELINE_METRICS))
    return ranges


def _merged(spans: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


@dataclass(frozen=True)
class HealthInputs:
    """The frames :func:`model.evaluate` takes, as read from the store."""

    rules: pd.DataFrame
    metrics: pd.DataFrame
    dlq: pd.DataFrame
    accounts: pd.DataFrame
    runs: pd.DataFrame
    buses: pd.DataFrame


def _query(store: Store, dataset: Dataset | str, sql: str, params: list[Any]) -> pd.DataFrame:
    """``sql`` over the store, or the dataset's empty frame when the store does not know it
    (a collector not registered yet)."""
    name = dataset if isinstance(dataset, str) else dataset.name
    if name not in store.datasets:
        log.info("health: the store has no %s dataset; treating it as empty", name)
        if isinstance(dataset, str):
            return pd.DataFrame()
        return dataset.empty_frame()
    return store.query(sql, params)


def _metrics_sql(ranges: list[ReadRange]) -> tuple[str, list[Any]]:
    """One scan of ``event_metrics`` for every range; each carries its own ``date`` bounds so
    DuckDB skips the other days' partitions."""
    parts: list[str] = []
    params: list[Any] = []
    for item in ranges:
        where = "date >= ? AND date <= ? AND ts >= ? AND ts < ?"
        params.extend([item.start.date(), item.end.date(), item.start, item.end])
        if item.metrics is not None:
            where += " AND rule IS NOT NULL AND list_contains(?, metric)"
            params.append(list(item.metrics))
        parts.append(f"({where})")
    return (f"SELECT {', '.join(EVENT_METRICS.columns)} FROM event_metrics "
            f"WHERE {' OR '.join(parts)}", params)


def _read_metrics(store: Store, ranges: list[ReadRange]) -> pd.DataFrame:
    sql, params = _metrics_sql(ranges)
    return _query(store, EVENT_METRICS, sql, params)


def read_inputs(store: Store, now: datetime, cfg: HealthConfig,
                period: timedelta) -> HealthInputs:
    """Read the frames the model needs at ``now`` (see the module docstring)."""
    rules = _query(store, RULES_DATASET, "SELECT * EXCLUDE (date) FROM rules", [])
    # Most rules have an hour-of-week baseline: read the window and those hours first, and the
    # (much longer) fallback span only when some rule needs it.
    ranges = read_ranges(now, cfg, period, fallback=False)
    metrics = _read_metrics(store, ranges)
    if needs_fallback(rules, metrics, now, cfg, period):
        window = pd.to_datetime(metrics["ts"], utc=True) >= pd.Timestamp(ranges[0].start)
        log.debug("health: some rules lack an hour-of-week baseline; reading the fallback span")
        metrics = pd.concat(
            [metrics[window], _read_metrics(store, read_ranges(now, cfg, period)[1:])],
            ignore_index=True)
    history = now - WEEK * cfg.baseline_weeks
    dlq_from = now - cfg.window - cfg.stale_after
    dlq = _query(store, DLQ_DEPTH,
                 f"SELECT {', '.join(DLQ_DEPTH.columns)} FROM dlq_depth "
                 "WHERE date >= ? AND ts >= ? AND ts <= ?",
                 [dlq_from.date(), dlq_from, now])
    runs = _query(store, RUNS,
                  f"SELECT {', '.join(RUNS.columns)} FROM runs "
                  "WHERE collector = ? AND date >= ? AND started_at <= ? "
                  "QUALIFY row_number() OVER (PARTITION BY account_id, region, status = 'ok' "
                  "ORDER BY started_at DESC) = 1",
                  [METRICS_COLLECTOR, history.date(), now])
    accounts = _query(store, ACCOUNTS, "SELECT * EXCLUDE (date) FROM accounts", [])
    buses = _query(store, BUSES_DATASET,
                   "SELECT * EXCLUDE (date) FROM event_buses_history "
                   "WHERE date >= ? AND collected_at <= ? "
                   "QUALIFY allowed_principals IS DISTINCT FROM lag(allowed_principals) OVER "
                   "(PARTITION BY account_id, region, bus ORDER BY collected_at) "
                   "OR collected_at = max(collected_at) OVER (PARTITION BY account_id, region)",
                   [history.date(), now])
    return HealthInputs(rules=rules, metrics=metrics, dlq=dlq, accounts=accounts, runs=runs,
                        buses=buses)


def run_id(now: datetime) -> str:
    return f"health-{now:%Y%m%dT%H%M%SZ}"


def update_rule_health(config: Config, store: Store,
                       now: datetime | None = None, write: bool = True) -> pd.DataFrame:
    """Evaluate every rule at ``now`` (default: the clock) and add the verdicts to the store
    (unless ``write`` is false: a look at another moment must not become the latest verdict).

    Reads the latest ``rules``, ``accounts``, the metrics collector's newest ``runs``,
    ``event_buses`` policy changes, ``dlq_depth`` and the needed ``event_metrics`` spans;
    writes ``rule_health`` with run id ``health-YYYYmmddTHHMMSSZ``. Returns the frame written
    (``rule_health`` columns).
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    cfg = config.health
    period = timedelta(seconds=config.collector_value("metrics", "period_s", int))
    clock = time.monotonic()
    inputs = read_inputs(store, moment, cfg, period)
    read_s = time.monotonic() - clock
    hourly = HourlyRules(
        tuple(config.collector_value("metrics", "full_only_rules", list)),
        config.collector_value("metrics", "full_interval", timedelta) + cfg.stale_after)
    result = evaluate(inputs.rules, inputs.metrics, inputs.dlq, inputs.accounts, inputs.runs,
                      inputs.buses, moment, cfg, period, hourly)
    if write:
        store.write(RULE_HEALTH.name, result, run_id(moment))
    counts = result["verdict"].value_counts().to_dict() if not result.empty else {}
    log.info("health: %d rules at %s (%s) from %d metric rows; read %.2fs, total %.2fs",
             len(result), f"{moment:%Y-%m-%d %H:%M:%S}",
             ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no rules",
             len(inputs.metrics), read_s, time.monotonic() - clock)
    return result


def verdict_summary(verdicts: pd.DataFrame) -> str:
    """'rule health: 20 OK, 1 FAILING, ...' in the model's order."""
    counts = verdicts["verdict"].value_counts()
    parts = [f"{int(counts[v])} {v}" for v in VERDICTS if v in counts]
    return "rule health: " + (", ".join(parts) if parts else "no rules judged")
