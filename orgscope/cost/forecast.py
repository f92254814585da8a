"""Month-end forecast per team, with a calibrated interval (pure functions).

docs/cost.md, "Forecast", explains the model and its measured coverage. Invariants:

* The model works per account and hands each account's remaining days to the teams that own
  it now, so a team move is not mistaken for a change in cost.
* Its windows are constants here: :data:`SHAPE_DAYS` (weekday shape), :data:`LEVEL_DAYS`
  (median level), :data:`SPREAD_DAYS` (spread, 1.4826 x the median absolute deviation of the
  deseasonalised days) and :data:`SHARE_DAYS` (team shares). Over ``r`` remaining days the
  standard error is ``spread x sqrt(r + (pi/2) r^2 / LEVEL_DAYS)`` times the calibration
  ``scale``; a team's adds its accounts' in quadrature.
* :func:`calibrate` replays the model over the stored history (forecasts on several days of
  each complete month, against the month's actual total) and sets ``scale`` so that the 90 %
  interval holds 90 % of those outcomes; its coverage is measured out of sample (each month
  judged with the scale learned from the others).
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

#: Two-sided 90 % normal quantile.
Z_90 = 1.645
#: Days of history the weekday shape is learned from.
SHAPE_DAYS = 56
#: Recent days whose median (weekday-adjusted) is the level.
LEVEL_DAYS = 7
#: Recent days whose spread is the day-to-day noise.
SPREAD_DAYS = 28
#: Last observed days whose ownership splits an account's remaining cost between teams: the
#: last one, since a tag or team move changes ownership from one day to the next.
SHARE_DAYS = 1
#: Days of cost history (the month's included) below which no budget verdict is given: with
#: a few days the weekday shape is unknown and one weekday can look like the month's pace.
MIN_HISTORY_DAYS = 14
#: Days of the month on which :func:`backtest` makes its forecasts (those past the month's
#: length are skipped).
CHECK_DAYS: tuple[int, ...] = (1, 2, 3, 5, 8, 12, 16, 20, 24, 27)
#: Complete stored months a calibration needs; with fewer the default scale stands.
MIN_CALIBRATION_MONTHS = 2
#: The standard-error scale used before any calibration (measured on the simulated
#: organization's 13 months, docs/cost.md).
DEFAULT_SCALE = 1.0

COLUMNS = ["team", "to_date", "days", "days_in_month", "mean_daily", "forecast", "low",
           "high", "budget", "status"]


@dataclass(frozen=True)
class Calibration:
    """The interval's standard-error multiplier and how well it held in backtests."""

    scale: float = DEFAULT_SCALE
    #: Share of backtest outcomes inside the 90 % interval, each month judged with the scale
    #: learned from the other months; None when fewer than two months could be replayed.
    coverage: float | None = None
    #: Backtest forecasts the scale was learned from (0: the default).
    samples: int = 0
    months: int = 0


def days_in_month(month: str) -> int:
    year, number = (int(part) for part in month.split("-"))
    return calendar.monthrange(year, number)[1]


def budget_status(forecast: float, low: float, high: float, budget: float | None,
                  learning: bool = False) -> str:
    """'over' (the forecast exceeds the budget), 'at risk' (only the interval's top does),
    'within', 'learning' (too little history to judge, :data:`MIN_HISTORY_DAYS`), or '' without
    a budget."""
    if budget is None:
        return ""
    if learning:
        return "learning"
    if forecast > budget:
        return "over"
    if high > budget:
        return "at risk"
    return "within"


# --- the per-account model ---------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """One account's state at the last observed day."""

    level: float
    spread: float
    factors: np.ndarray  # 7 weekday factors, Monday first, mean 1

    def expected(self, days: Sequence[date]) -> np.ndarray:
        weekdays = np.array([d.weekday() for d in days], dtype=np.int64)
        return np.asarray(self.level * self.factors[weekdays], dtype=float)

    def error(self, remaining: int, scale: float = 1.0) -> float:
        """Standard error of the sum of ``remaining`` future days."""
        if remaining <= 0:
            return 0.0
        return scale * self.spread * math.sqrt(
            remaining + (math.pi / 2) * remaining**2 / LEVEL_DAYS)


def profile(values: np.ndarray, weekdays: np.ndarray) -> Profile:
    """The model's state from an account's daily cost ``values`` (oldest first, zeros for
    days without cost) and their ``weekdays`` (0 = Monday)."""
    factors = np.ones(7)
    # days before the account's first cost are days before its history (or before the store's
    # first collection), not days that cost nothing
    costly = np.flatnonzero(values > 0)
    if len(costly) == 0:
        return Profile(0.0, 0.0, factors)
    values, weekdays = values[costly[0]:], weekdays[costly[0]:]
    shape_values, shape_days = values[-SHAPE_DAYS:], weekdays[-SHAPE_DAYS:]
    overall = float(np.median(shape_values))
    if len(shape_values) >= 14 and overall > 0:
        for day in range(7):
            those = shape_values[shape_days == day]
            if len(those):
                factors[day] = max(float(np.median(those)) / overall, 0.05)
        factors = factors / factors.mean()
    adjusted = values / factors[weekdays]
    level = float(np.median(adjusted[-LEVEL_DAYS:]))
    window = adjusted[-SPREAD_DAYS:]
    spread = 1.4826 * float(np.median(np.abs(window - np.median(window)))) \
        if len(window) > 1 else 0.0
    return Profile(level, spread, factors)


def profiles(wide: pd.DataFrame) -> dict[str, Profile]:
    """Each account's :class:`Profile` from a per-account daily table (one column per
    account, a row per day, oldest first)."""
    weekdays = np.array([d.weekday() for d in wide.index], dtype=np.int64)
    return {str(account): profile(wide[account].to_numpy(dtype=float), weekdays)
            for account in wide.columns}


def _wide(totals: pd.DataFrame, first: date, last: date) -> pd.DataFrame:
    """Per-account daily cost, one column per account, every day of [first, last] (0 when
    missing). ``totals``: date, account_id, amount (several rows per day are summed)."""
    days = pd.date_range(first, last, freq="D").date
    if totals.empty or last < first:
        return pd.DataFrame(index=pd.Index(days, name="date"))
    frame = totals.assign(date=pd.to_datetime(totals["date"]).dt.date)
    frame = frame[(frame["date"] >= first) & (frame["date"] <= last)]
    table = frame.pivot_table(index="date", columns="account_id", values="amount",
                              aggfunc="sum", fill_value=0.0)
    return table.reindex(days, fill_value=0.0).astype(float)


def _observed(month: str, through: date) -> tuple[date, int, int]:
    first = date.fromisoformat(f"{month}-01")
    length = days_in_month(month)
    return first, length, min(max((through - first).days + 1, 0), length)


OUTLOOK_COLUMNS = ["account_id", "to_date", "remaining", "error"]


def _outlook(wide: pd.DataFrame, month: str, last: date, scale: float) -> pd.DataFrame:
    """Per account of a daily table (one column per account, ending on ``last``; rows older
    than :data:`SHAPE_DAYS` ignored): to_date (the month through ``last``), remaining (the
    expected cost of the month's remaining days) and error (its standard error x ``scale``).
    """
    first, length, observed = _observed(month, last)
    wide = wide.loc[[d for d in wide.index
                     if last - timedelta(days=SHAPE_DAYS - 1) <= d <= last]]
    future = [last + timedelta(days=i + 1) for i in range(length - observed)]
    in_month = np.array([d >= first for d in wide.index], dtype=bool)
    rows = []
    for account, model in profiles(wide).items():
        values = wide[account].to_numpy(dtype=float)
        rows.append({"account_id": account,
                     "to_date": float(values[in_month].sum()),
                     "remaining": float(model.expected(future).sum()),
                     "error": model.error(len(future), scale)})
    return pd.DataFrame(rows, columns=OUTLOOK_COLUMNS)


def _shares(daily: pd.DataFrame, through: date) -> dict[str, dict[str, float]]:
    """{account: {team: share}} over each account's last :data:`SHARE_DAYS` days with cost
    up to ``through``."""
    frame = daily.assign(date=pd.to_datetime(daily["date"]).dt.date)
    frame = frame[(frame["date"] <= through) & (frame["amount"] > 0)]
    shares: dict[str, dict[str, float]] = {}
    for account, rows in frame.groupby("account_id", sort=False):
        recent = sorted(set(rows["date"]))[-SHARE_DAYS:]
        owned = rows[rows["date"].isin(recent)].groupby("team")["amount"].sum()
        total = float(owned.sum())
        if total > 0:
            shares[str(account)] = {str(t): float(v) / total for t, v in owned.items()}
    return shares


#: The team of record of an account on a day (config.toml's ``team`` and ``team_history``),
#: or None for an account config does not list.
OwnerOn = Callable[[str, date], "str | None"]


def _day_shares(base: Mapping[str, float], owner_now: str | None, owner_then: str | None
                ) -> Mapping[str, float]:
    """``base`` shares with the current owner's share handed to the owner of a future day."""
    if owner_now is None or owner_then is None or owner_now == owner_then or \
            owner_now not in base:
        return base
    moved = dict(base)
    share = moved.pop(owner_now)
    moved[owner_then] = moved.get(owner_then, 0.0) + share
    return moved


def forecast_month(
    daily: pd.DataFrame, month: str, through: date, budgets: Mapping[str, float], *,
    z: float = Z_90, calibration: Calibration | None = None, owner_on: OwnerOn | None = None,
) -> pd.DataFrame:
    """One row per team (:data:`COLUMNS`) from ``daily`` (date, account_id, team, amount:
    attributed cost with the history before ``month`` that the store holds) of ``month``
    through ``through`` (inclusive, the last day with data). A team with no cost on a day
    counts 0 that day; ``mean_daily`` is the expected cost of a remaining day.

    ``owner_on``: the account's team of record on a day; a move recorded for a remaining day
    (``team_history`` with a future ``until``) hands the account's cost held by its current
    owner to the new one from that day.
    """
    first, length, observed = _observed(month, through)
    if observed == 0 or daily.empty:
        return pd.DataFrame(columns=COLUMNS)
    scale = (calibration or Calibration()).scale
    last = first + timedelta(days=observed - 1)
    frame = daily.assign(date=pd.to_datetime(daily["date"]).dt.date)
    frame = frame[frame["date"] <= last]
    to_date = frame[frame["date"] >= first].groupby("team")["amount"].sum()
    wide = _wide(frame[["date", "account_id", "amount"]],
                 last - timedelta(days=SHAPE_DAYS - 1), last)
    future = [last + timedelta(days=i + 1) for i in range(length - observed)]
    shares = _shares(frame, last)
    seen: list[date] = [day for day, total in zip(wide.index, wide.sum(axis=1), strict=True)
                        if total > 0]
    learning = not seen or (last - min(seen)).days + 1 < MIN_HISTORY_DAYS
    remaining: dict[str, float] = {}
    variance: dict[str, float] = {}
    for account, model in profiles(wide).items():
        expected = model.expected(future)
        base = shares.get(account, {})
        owner_now = owner_on(account, last) if owner_on else None
        parts: dict[str, float] = {}
        for day, amount in zip(future, expected, strict=True):
            owner_then = owner_on(account, day) if owner_on else None
            for team, share in _day_shares(base, owner_now, owner_then).items():
                parts[team] = parts.get(team, 0.0) + share * float(amount)
        total = float(expected.sum())
        error = model.error(len(future), scale)
        for team, part in parts.items():
            remaining[team] = remaining.get(team, 0.0) + part
            if total > 0:
                variance[team] = variance.get(team, 0.0) + (part / total * error) ** 2
    left = length - observed
    rows = []
    for team in sorted({*map(str, to_date.index), *remaining}):
        spent = float(to_date.get(team, 0.0))
        ahead = remaining.get(team, 0.0)
        forecast = spent + ahead
        error = math.sqrt(variance.get(team, 0.0))
        low, high = max(spent, forecast - z * error), forecast + z * error
        budget = budgets.get(team)
        rows.append({"team": team, "to_date": spent, "days": observed,
                     "days_in_month": length,
                     "mean_daily": ahead / left if left else spent / observed,
                     "forecast": forecast, "low": low, "high": high, "budget": budget,
                     "status": budget_status(forecast, low, high, budget, learning)})
    return pd.DataFrame(rows, columns=COLUMNS).sort_values(
        "forecast", ascending=False, ignore_index=True)


def daily_band(daily: pd.DataFrame, month: str, through: date, *, z: float = Z_90,
               calibration: Calibration | None = None) -> pd.DataFrame:
    """The chart's band for the month's remaining days: date, expected, low, high (one day's
    total over every account: the expected day +- z x that day's standard error)."""
    first, length, observed = _observed(month, through)
    columns = ["date", "expected", "low", "high"]
    if observed == 0 or observed >= length or daily.empty:
        return pd.DataFrame(columns=columns)
    scale = (calibration or Calibration()).scale
    last = first + timedelta(days=observed - 1)
    wide = _wide(daily[["date", "account_id", "amount"]],
                 last - timedelta(days=SHAPE_DAYS - 1), last)
    future = [last + timedelta(days=i + 1) for i in range(length - observed)]
    expected = np.zeros(len(future))
    variance = 0.0
    for model in profiles(wide).values():
        expected += model.expected(future)
        variance += model.error(1, scale) ** 2
    half = z * math.sqrt(variance)
    return pd.DataFrame({"date": future, "expected": expected,
                         "low": np.maximum(expected - half, 0.0), "high": expected + half},
                        columns=columns)


# --- backtest and calibration ----------------------------------------------------------------


def _month_key(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def backtest(totals: pd.DataFrame, through: date, months: int = 12,
             check_days: Sequence[int] = CHECK_DAYS) -> pd.DataFrame:
    """Replay the model over the complete months before ``through``'s month (at most
    ``months`` of them, each with at least two weeks of history before it): for each account
    and each of ``check_days``, the forecast made with the data through that day against the
    month's actual total.

    ``totals``: date, account_id, amount. Returns month, day, account_id, actual, forecast,
    error (the model's standard error, scale 1).
    """
    columns = ["month", "day", "account_id", "actual", "forecast", "error"]
    if totals.empty:
        return pd.DataFrame(columns=columns)
    dates = pd.to_datetime(totals["date"]).dt.date
    start = min(dates)
    current = _month_key(through)
    candidates = sorted({_month_key(d) for d in dates if _month_key(d) < current})
    wide = _wide(totals, start, through)
    rows: list[dict[str, object]] = []
    for month in candidates[-months:]:
        first = date.fromisoformat(f"{month}-01")
        length = days_in_month(month)
        if (first - start).days < 14:
            continue
        end = first + timedelta(days=length - 1)
        actual = wide.loc[[d for d in wide.index if first <= d <= end]].sum()
        for day in check_days:
            if day >= length:
                continue
            outlook = _outlook(wide, month, first + timedelta(days=day - 1), 1.0)
            for row in outlook.to_dict("records"):
                rows.append({"month": month, "day": day, "account_id": row["account_id"],
                             "actual": float(actual.get(row["account_id"], 0.0)),
                             "forecast": float(row["to_date"]) + float(row["remaining"]),
                             "error": float(row["error"])})
    return pd.DataFrame(rows, columns=columns)


def _scale(errors: pd.DataFrame, z: float) -> float:
    """The scale that puts 90 % of ``errors``' standardised outcomes inside +- z."""
    usable = errors[errors["error"] > 0]
    if usable.empty:
        return DEFAULT_SCALE
    standard = (usable["actual"] - usable["forecast"]).abs() / usable["error"]
    return max(float(np.quantile(standard, 0.9)) / z, 0.1)


def calibrate(totals: pd.DataFrame, through: date, months: int = 12, z: float = Z_90
              ) -> Calibration:
    """The interval's scale from :func:`backtest` over the stored history, and its
    out-of-sample coverage (each month with the scale learned from the others)."""
    replay = backtest(totals, through, months)
    usable = replay[replay["error"] > 0]
    months_seen = sorted(set(usable["month"]))
    if len(months_seen) < MIN_CALIBRATION_MONTHS:
        return Calibration()  # a month's few forecasts would set the scale by chance
    scale = _scale(usable, z)
    coverage = None
    if len(months_seen) >= MIN_CALIBRATION_MONTHS:
        inside = 0
        for month in months_seen:
            held_out = usable[usable["month"] == month]
            learned = _scale(usable[usable["month"] != month], z)
            miss = (held_out["actual"] - held_out["forecast"]).abs()
            inside += int((miss <= z * learned * held_out["error"]).sum())
        coverage = inside / len(usable)
    return Calibration(scale=scale, coverage=coverage, samples=len(usable),
                       months=len(months_seen))
