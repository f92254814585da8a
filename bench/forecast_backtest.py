"""How well the month-end forecast holds, replayed over the simulated organization's cost.

For each "today" given, the simulator's cost model (sim/costs.py: 13 months of QuickGrocer's
daily cost with its weekly shape, growth, noise, the team move and the NAT spike) is
attributed to teams as config.toml's rules do, and

* the interval is calibrated as orgscope does at run time (orgscope.cost.forecast.calibrate:
  a backtest over the stored months, per account), with its out-of-sample coverage;
* on every day of each of the twelve complete months before today's, every team's forecast
  is made with the data through that day and compared with the team's actual month: the
  share of actual totals inside the 90 % interval, the worst relative error of the point
  forecast, and the false alarms against budgets set 5 % above each team's actual month
  (a forecast "over" such a budget would be a `cost_forecast` alert for a team that ends
  the month 5 % under budget).

    .venv/bin/python bench/forecast_backtest.py [--today 2026-12-02 ...]

Results: bench/results/forecast_backtest.json and bench/results/forecast_backtest.md (the
table docs/cost.md shows).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orgscope.cost import forecast  # noqa: E402
from orgscope.cost.store_io import team_owner  # noqa: E402
from orgscope.plugins import load_config  # noqa: E402
from sim.costs import CostModel, team_daily  # noqa: E402

DEFAULT_DAYS = ("2026-12-02", "2027-01-01", "2027-03-31", "2028-02-29", "2028-03-01")


def replay(today: date) -> dict[str, Any]:
    config = load_config(ROOT / "config.toml")
    daily = team_daily(CostModel.reference(config.accounts, today), config.cost.platform_team)
    totals = daily.groupby(["date", "account_id"], as_index=False)["amount"].sum()
    clock = time.perf_counter()
    calibration = forecast.calibrate(totals, today)
    calibrate_s = time.perf_counter() - clock
    owner = team_owner(config)
    months = sorted({d.strftime("%Y-%m") for d in daily["date"]})[-13:-1]
    judged = inside = calls = 0
    worst = 0.0
    alarms: list[str] = []
    clock = time.perf_counter()
    for month in months:
        first = date.fromisoformat(f"{month}-01")
        length = forecast.days_in_month(month)
        actual = daily[(daily["date"] >= first) & (daily["date"] <= first + timedelta(
            days=length - 1))].groupby("team")["amount"].sum()
        budgets = {team: amount / 0.95 for team, amount in actual.items()}
        for day in range(1, length):
            through = first + timedelta(days=day - 1)
            outlook = forecast.forecast_month(daily[daily["date"] <= through], month, through,
                                              budgets, calibration=calibration,
                                              owner_on=owner)
            calls += 1
            for row in outlook.to_dict("records"):
                truth = float(actual.get(row["team"], 0.0))
                judged += 1
                inside += int(row["low"] <= truth <= row["high"])
                if truth > 0:
                    worst = max(worst, abs(float(row["forecast"]) - truth) / truth)
                if row["status"] == "over":
                    alarms.append(f"{month} day {day} {row['team']}")
    forecast_s = time.perf_counter() - clock
    return {"today": today.isoformat(), "months": months[0] + ".." + months[-1],
            "scale": round(calibration.scale, 3),
            "calibration_coverage": round(calibration.coverage or 0.0, 3),
            "calibration_samples": calibration.samples,
            "team_forecasts": judged, "team_coverage": round(inside / judged, 3),
            "worst_relative_error": round(worst, 4), "false_alarms": len(alarms),
            "false_alarm_examples": alarms[:5], "calibrate_s": round(calibrate_s, 2),
            "forecast_ms_each": round(1000 * forecast_s / calls, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--today", nargs="*", default=list(DEFAULT_DAYS))
    args = parser.parse_args()
    rows = [replay(date.fromisoformat(day)) for day in args.today]
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "forecast_backtest.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["| today | months replayed | scale | calibration coverage (out of sample, "
             "per account) | team forecasts | team coverage (90 % interval) | worst error "
             "| false alarms at budget = actual / 0.95 |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['today']} | {r['months']} | {r['scale']} | "
                     f"{r['calibration_coverage']:.1%} | {r['team_forecasts']:,} | "
                     f"{r['team_coverage']:.1%} | {r['worst_relative_error']:.1%} | "
                     f"{r['false_alarms']} |")
    (out / "forecast_backtest.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
