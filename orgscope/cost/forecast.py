"""Month-end forecast per team, with an interval, from the month's daily cost so far.

The model (docs/cost.md, "Forecast"): each remaining day costs the mean of the days so far;
days vary independently with the standard deviation ``s`` of the days so far. Over ``r``
remaining days after ``n`` observed ones, the forecast is ``to_date + r * mean`` with a
standard error ``s * sqrt(r + r**2 / n)`` (the days' own spread plus the uncertainty of the
mean), and the interval is +- ``z`` of those (90 % by default). Growth within a month (about
1 %) and the weekly shape are small against that interval; a spike inside the month widens it.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Mapping
from datetime import date

import pandas as pd

#: Two-sided 90 % normal quantile.
Z_90 = 1.645

COLUMNS = ["team", "to_date", "days", "days_in_month", "mean_daily", "forecast", "low",
           "high", "budget", "status"]


def days_in_month(month: str) -> int:
    year, number = (int(part) for part in month.split("-"))
    return calendar.monthrange(year, number)[1]


def budget_status(forecast: float, low: float, high: float, budget: float | None) -> str:
    """'over' (the forecast exceeds the budget), 'at risk' (only the interval's top does),
    'within', or '' without a budget."""
    if budget is None:
        return ""
    if forecast > budget:
        return "over"
    if high > budget:
        return "at risk"
    return "within"


def forecast_month(
    daily: pd.DataFrame, month: str, through: date, budgets: Mapping[str, float],
    z: float = Z_90,
) -> pd.DataFrame:
    """One row per team (:data:`COLUMNS`) from ``daily`` (date, team, amount) of ``month``
    through ``through`` (inclusive, the last day with data). A team with no cost on a day
    counts 0 that day."""
    first = date.fromisoformat(f"{month}-01")
    length = days_in_month(month)
    observed = min(max((through - first).days + 1, 0), length)
    if observed == 0 or daily.empty:
        return pd.DataFrame(columns=COLUMNS)
    days = pd.date_range(first, periods=observed, freq="D").date
    frame = daily.assign(date=pd.to_datetime(daily["date"]).dt.date)
    frame = frame[frame["date"].isin(set(days))]
    table = frame.pivot_table(index="date", columns="team", values="amount", aggfunc="sum",
                              fill_value=0.0).reindex(days, fill_value=0.0)
    remaining = length - observed
    rows = []
    for team in table.columns:
        series = table[team].astype(float)
        mean = float(series.mean())
        spread = float(series.std(ddof=1)) if observed > 1 else 0.0
        error = spread * math.sqrt(remaining + remaining**2 / observed)
        to_date = float(series.sum())
        forecast = to_date + remaining * mean
        low, high = max(to_date, forecast - z * error), forecast + z * error
        budget = budgets.get(str(team))
        rows.append({"team": str(team), "to_date": to_date, "days": observed,
                     "days_in_month": length, "mean_daily": mean, "forecast": forecast,
                     "low": low, "high": high, "budget": budget,
                     "status": budget_status(forecast, low, high, budget)})
    return pd.DataFrame(rows, columns=COLUMNS).sort_values(
        "forecast", ascending=False, ignore_index=True)


def daily_band(total: pd.DataFrame, month: str, through: date, z: float = Z_90) -> pd.DataFrame:
    """The chart's band for the month's remaining days, from the daily ``total`` (date,
    amount) so far: date, expected, low, high (a single day: mean +- z * s * sqrt(1 + 1/n))."""
    first = date.fromisoformat(f"{month}-01")
    length = days_in_month(month)
    observed = min(max((through - first).days + 1, 0), length)
    columns = ["date", "expected", "low", "high"]
    if observed == 0 or observed >= length or total.empty:
        return pd.DataFrame(columns=columns)
    days = pd.date_range(first, periods=observed, freq="D").date
    series = total.assign(date=pd.to_datetime(total["date"]).dt.date).groupby("date")[
        "amount"].sum().reindex(days, fill_value=0.0)
    mean = float(series.mean())
    spread = float(series.std(ddof=1)) if observed > 1 else 0.0
    half = z * spread * math.sqrt(1 + 1 / observed)
    future = pd.date_range(first, periods=length, freq="D").date[observed:]
    return pd.DataFrame({"date": future, "expected": mean, "low": max(mean - half, 0.0),
                         "high": mean + half}, columns=columns)
