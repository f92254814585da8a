"""The month-end forecast: weekday shape, level, team moves, calibration, any day of the year.

The twelve-month checks replay the simulated organization's cost model (sim/costs.py): the
forecast is made on every day of each month, against budgets 5 % above each team's actual
month; a forecast over such a budget would be a false `cost_forecast` alert.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from orgscope.cost import forecast
from orgscope.cost.store_io import team_owner
from orgscope.plugins import load_config
from sim.costs import CostModel, team_daily
from tests.conftest import REFERENCE_CONFIG

BUDGETS = {"a": 2000.0}


def steady(first: date, days: int, *, weekday: float = 100.0, weekend: float = 70.0,
           noise: float = 0.0, team: str = "a", account: str = "111111111111",
           seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = [first + timedelta(days=i) for i in range(days)]
    amounts = [(weekend if d.weekday() >= 5 else weekday) * (1 + noise * rng.normal())
               for d in dates]
    return pd.DataFrame({"date": dates, "account_id": account, "team": team,
                         "amount": amounts})


def month_total(frame: pd.DataFrame, month: str) -> float:
    dates = pd.to_datetime(frame["date"]).dt.strftime("%Y-%m")
    return float(frame.loc[dates == month, "amount"].sum())


def test_budget_status() -> None:
    assert forecast.budget_status(90, 80, 100, 95) == "at risk"
    assert forecast.budget_status(96, 80, 100, 95) == "over"
    assert forecast.budget_status(90, 80, 94, 95) == "within"
    assert forecast.budget_status(90, 80, 94, None) == ""
    assert forecast.budget_status(96, 80, 100, 95, learning=True) == "learning"


def test_the_second_day_of_a_month_knows_the_weekday_shape() -> None:
    # December 2026 starts on a Tuesday: two weekdays are not the month's pace, weekends cost
    # 30 % less (the mean of the days so far said 3100, 7 % over the true 2899)
    history = steady(date(2026, 10, 1), 92)
    truth = month_total(history, "2026-12")
    [row] = forecast.forecast_month(history, "2026-12", date(2026, 12, 2),
                                    {"a": truth * 1.05}).to_dict("records")
    assert abs(row["forecast"] - truth) < 0.005 * truth
    assert row["status"] == "within"
    assert row["to_date"] == 200.0 and row["days"] == 2 and row["days_in_month"] == 31


def test_the_interval_holds_the_truth_and_narrows_with_data() -> None:
    data = steady(date(2026, 9, 1), 91, noise=0.1)
    truth = month_total(data, "2026-11")
    early = forecast.forecast_month(data, "2026-11", date(2026, 11, 5), BUDGETS)
    late = forecast.forecast_month(data, "2026-11", date(2026, 11, 25), BUDGETS)
    for outlook in (early, late):
        row = outlook.iloc[0]
        assert row["low"] <= truth <= row["high"]
        assert row["status"] == "over"  # ~2700 against 2000
    assert (late["high"] - late["low"]).iloc[0] < (early["high"] - early["low"]).iloc[0]


def test_a_spike_does_not_carry_into_the_rest_of_the_month() -> None:
    data = steady(date(2026, 9, 1), 91)
    spiked = data["date"].isin([date(2026, 11, 9), date(2026, 11, 10), date(2026, 11, 11)])
    data.loc[spiked, "amount"] *= 6
    [row] = forecast.forecast_month(data[data["date"] <= date(2026, 11, 11)], "2026-11",
                                    date(2026, 11, 11), BUDGETS).to_dict("records")
    assert abs(row["forecast"] - month_total(data, "2026-11")) < 1.0


def test_with_under_two_weeks_of_history_a_budget_is_not_judged() -> None:
    data = steady(date(2026, 11, 1), 5, weekday=500.0, weekend=500.0)
    [row] = forecast.forecast_month(data, "2026-11", date(2026, 11, 5), BUDGETS).to_dict(
        "records")
    assert row["forecast"] > 2000 and row["status"] == "learning"


def test_a_move_recorded_for_later_this_month_hands_the_cost_over_that_day() -> None:
    data = steady(date(2026, 9, 1), 75, weekend=100.0, team="driver")  # through Nov 14

    def owner(account_id: str, day: date) -> str:
        return "driver" if day < date(2026, 11, 15) else "delivery"

    frame = forecast.forecast_month(data, "2026-11", date(2026, 11, 14), {},
                                    owner_on=owner).set_index("team")
    assert frame.loc["driver", "forecast"] == pytest.approx(1400.0)
    assert frame.loc["delivery", "forecast"] == pytest.approx(1600.0)
    assert frame.loc["delivery", "to_date"] == 0.0
    # without the record the whole month stays with the owner of the last day
    alone = forecast.forecast_month(data, "2026-11", date(2026, 11, 14), {}).set_index("team")
    assert list(alone.index) == ["driver"] and alone.loc["driver", "forecast"] == 3000.0


def test_a_tag_moved_yesterday_takes_the_rest_of_the_month() -> None:
    data = steady(date(2026, 9, 1), 75, weekend=100.0, team="driver")
    moved = data["date"] >= date(2026, 11, 10)
    data.loc[moved, "team"] = "delivery"
    frame = forecast.forecast_month(data, "2026-11", date(2026, 11, 14), {}).set_index("team")
    assert frame.loc["driver", "forecast"] == pytest.approx(900.0)  # Nov 1-9, nothing more
    assert frame.loc["delivery", "forecast"] == pytest.approx(2100.0)


@pytest.mark.parametrize(("month", "through", "left"), [
    ("2028-02", date(2028, 2, 28), 1),   # a leap February's last day is still to come
    ("2028-02", date(2028, 2, 29), 0),   # its last day: nothing left
    ("2027-01", date(2027, 1, 1), 30),   # New Year's Day, the history all in last year
    ("2026-12", date(2026, 12, 31), 0),  # a year's last day
])
def test_month_and_year_ends(month: str, through: date, left: int) -> None:
    data = steady(through - timedelta(days=70), 71, weekend=100.0)
    [row] = forecast.forecast_month(data, month, through, BUDGETS).to_dict("records")
    assert row["forecast"] == pytest.approx(row["to_date"] + 100.0 * left)
    assert row["days_in_month"] == forecast.days_in_month(month)
    band = forecast.daily_band(data, month, through)
    assert len(band) == left
    assert all(value == pytest.approx(100.0) for value in band["expected"])


def test_no_data_this_month_yet_is_no_forecast() -> None:
    data = steady(date(2026, 10, 1), 61)  # through Nov 30
    assert forecast.forecast_month(data, "2026-12", date(2026, 11, 30), BUDGETS).empty


# --- twelve simulated months -----------------------------------------------------------------


@lru_cache(maxsize=2)
def simulated(today: date) -> pd.DataFrame:
    config = load_config(REFERENCE_CONFIG)
    return team_daily(CostModel.reference(config.accounts, today), config.cost.platform_team)


@pytest.mark.parametrize("today", [date(2026, 12, 2), date(2028, 2, 29)])
def test_over_twelve_months_no_false_alarm_and_the_interval_holds(today: date) -> None:
    config = load_config(REFERENCE_CONFIG)
    daily = simulated(today)
    totals = daily.groupby(["date", "account_id"], as_index=False)["amount"].sum()
    calibration = forecast.calibrate(totals, today)
    assert calibration.months == 11 and calibration.coverage is not None
    assert 0.85 <= calibration.coverage <= 0.95
    owner = team_owner(config)
    months = sorted({d.strftime("%Y-%m") for d in daily["date"]})[-13:-1]
    false_alarms, inside, judged = [], 0, 0
    for month in months:
        first = date.fromisoformat(f"{month}-01")
        length = forecast.days_in_month(month)
        actual = daily[(daily["date"] >= first) & (daily["date"] <= first + timedelta(
            days=length - 1))].groupby("team")["amount"].sum()
        budgets = {team: amount / 0.95 for team, amount in actual.items()}  # ends 5 % under
        for day in range(1, length):
            through = first + timedelta(days=day - 1)
            outlook = forecast.forecast_month(daily[daily["date"] <= through], month,
                                              through, budgets, calibration=calibration,
                                              owner_on=owner)
            for row in outlook.to_dict("records"):
                truth = float(actual.get(row["team"], 0.0))
                judged += 1
                inside += row["low"] <= truth <= row["high"]
                if row["status"] == "over":
                    false_alarms.append((month, day, row["team"]))
    assert false_alarms == []
    assert 0.85 <= inside / judged <= 0.95


def test_one_stored_month_does_not_calibrate_the_interval() -> None:
    data = steady(date(2026, 10, 10), 54, noise=0.05)  # Oct 10 .. Dec 2
    totals = data[["date", "account_id", "amount"]]
    assert forecast.calibrate(totals, date(2026, 12, 2)) == forecast.Calibration()
    longer = steady(date(2026, 8, 10), 115, noise=0.05)  # Aug 10 .. Dec 2: Sep, Oct, Nov
    calibrated = forecast.calibrate(longer[["date", "account_id", "amount"]], date(2026, 12, 2))
    assert calibrated.months == 3 and calibrated.samples > 0 and calibrated.coverage is not None
