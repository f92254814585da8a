"""Anomalies: days whose cost for a team and service jumps above its recent normal, each named
by the account, service and usage type behind the jump.

For each (team, service) the daily series (0 on days without cost) is compared with its
trailing window (the ``window`` days before, not the day itself): the robust z-score is
``(x - median) / scale`` with ``scale = IQR / 1.349`` (the standard deviation of a normal
series, unmoved by a few outliers), floored at 5 % of the median and at $1 so a flat series
does not turn cents into alarms. A day is an anomaly when ``z >= z_threshold`` *and* the
excess is at least ``min_usd``. Only increases are flagged: a drop is a saving, not a surprise.
The usage type (and account) named is the one whose own cost rose most above its trailing
median that day.
"""

from __future__ import annotations

import logging
from datetime import date

import pandas as pd

log = logging.getLogger(__name__)

COLUMNS = ["date", "team", "service", "usage_type", "account_id", "amount", "baseline",
           "excess", "z", "usage_amount", "usage_baseline"]
MIN_HISTORY = 7


def _trailing(table: pd.DataFrame, window: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trailing median and robust scale of every column, from the days before each day."""
    past = table.shift(1).rolling(window, min_periods=MIN_HISTORY)
    median = past.median()
    spread = (past.quantile(0.75) - past.quantile(0.25)) / 1.349
    floor = (0.05 * median.abs()).clip(lower=1.0)
    return median, spread.where(spread > floor, floor)


def _daily_table(frame: pd.DataFrame, keys: list[str], first: date, last: date) -> pd.DataFrame:
    days = pd.date_range(first, last, freq="D").date
    return frame.pivot_table(index="date", columns=keys, values="amount", aggfunc="sum",
                             fill_value=0.0).reindex(days, fill_value=0.0)


def detect(
    attributed: pd.DataFrame, *, window: int, z_threshold: float, min_usd: float,
    since: date | None = None,
) -> pd.DataFrame:
    """Anomalies (:data:`COLUMNS`) in ``attributed`` (attribution output) on days from
    ``since`` (default: all days with enough history), newest first."""
    if attributed.empty:
        return pd.DataFrame(columns=COLUMNS)
    frame = attributed.assign(date=pd.to_datetime(attributed["date"]).dt.date)
    first, last = min(frame["date"]), max(frame["date"])
    table = _daily_table(frame, ["team", "service"], first, last)
    median, scale = _trailing(table, window)
    excess = table - median
    score = excess / scale
    hits = (score >= z_threshold) & (excess >= min_usd)
    if since is not None:
        hits.loc[[d < since for d in hits.index]] = False
    stacked = hits.stack(["team", "service"], future_stack=True)
    found = stacked.index[stacked.fillna(False).astype(bool).to_numpy()]
    if len(found) == 0:
        return pd.DataFrame(columns=COLUMNS)
    rows = []
    wanted = {(team, service) for _, team, service in found}
    detail_rows = frame[[(t, s) in wanted for t, s in zip(frame["team"], frame["service"],
                                                         strict=True)]]
    detail = _daily_table(detail_rows, ["team", "service", "usage_type", "account_id"],
                          first, last)
    detail_median, _ = _trailing(detail, window)
    detail_excess = detail - detail_median
    for day, team, service in found:
        columns = [c for c in detail.columns if c[0] == team and c[1] == service]
        rises = detail_excess.loc[day, columns]
        top = rises.astype(float).idxmax()
        rows.append({
            "date": day, "team": team, "service": service, "usage_type": top[2],
            "account_id": top[3], "amount": float(table.loc[day, (team, service)]),
            "baseline": float(median.loc[day, (team, service)]),
            "excess": float(excess.loc[day, (team, service)]),
            "z": float(score.loc[day, (team, service)]),
            "usage_amount": float(detail.loc[day, top]),
            "usage_baseline": float(detail_median.loc[day, top]),
        })
    result = pd.DataFrame(rows, columns=COLUMNS)
    log.debug("anomalies: %d days flagged over %d (team, service) series", len(result),
              table.shape[1])
    return result.sort_values(["date", "excess"], ascending=[False, False], ignore_index=True)
