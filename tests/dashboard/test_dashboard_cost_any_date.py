"""The Cost page and the cost alerts on the days that break date arithmetic: the 1st, the 2nd
and the last day of a month, New Year's Day, 29 February and the day after a month closes.
The clock is frozen there (time-machine) and the cost model written through that day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
import time_machine
from streamlit.testing.v1 import AppTest

from alerts import step as alerts_step
from dashboard import cost_data
from dashboard.app_pages.cost import MONTH_KEY
from orgscope.cli import main
from orgscope.cost.forecast import COLUMNS
from orgscope.datasets import all_datasets
from orgscope.plugins import load_config
from orgscope.store import Store
from orgscope.wiring import CONFIG_ENV, STORE_ENV
from testkit.cost_sample import fill_cost
from testkit.dashboard_sample import write_config

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "streamlit_app.py")
DAYS = [date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 31), date(2027, 1, 1),
        date(2028, 2, 29), date(2026, 12, 6)]  # the 6th: the day after bill_final_day = 5


@pytest.mark.parametrize("today", DAYS, ids=str)
def test_the_cost_page_and_alerts_on_any_day(today: date, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    config_path = write_config(tmp_path, tmp_path / "data")
    config = load_config(config_path)
    moment = datetime.combine(today, datetime.min.time(), UTC) + timedelta(hours=9)
    with time_machine.travel(moment, tick=False):
        store = Store(str(tmp_path / "data"), all_datasets())
        fill_cost(store, config, today)
        monkeypatch.setenv(CONFIG_ENV, str(config_path))
        monkeypatch.delenv(STORE_ENV, raising=False)
        app = AppTest.from_file(APP, default_timeout=60).run()
        app.switch_page("app_pages/cost.py").run()
        assert not app.exception, [e.message for e in app.exception]
        # finance opens the last complete month; the current one is in progress all its days
        previous = today.replace(day=1) - timedelta(days=1)
        assert app.selectbox(key=MONTH_KEY).value == previous.strftime("%Y-%m")
        app.selectbox(key=MONTH_KEY).select(today.strftime("%Y-%m")).run()
        assert not app.exception, [e.message for e in app.exception]
        metrics = {m.label: m.value for m in app.metric}
        assert "Month" not in metrics  # "complete" or "closed" is for a month that ended
        assert "Forecast month end" in metrics
        signals = alerts_step.read_cost_signals(config, store, moment)
        assert signals.month == today.strftime("%Y-%m")
        assert list(signals.forecast.columns) == COLUMNS and len(signals.forecast) > 0
        # the alerts and the page forecast the same month from the same history
        review = cost_data.build_review(store, config, today.strftime("%Y-%m"), today)
        assert review.forecast.set_index("team")["forecast"].round(2).to_dict() == \
            signals.forecast.set_index("team")["forecast"].round(2).to_dict()
        # the reference budgets are set to the model's usual months: never "over" by a mile
        over = signals.forecast[signals.forecast["status"] == "over"]
        assert (over["forecast"] <= 1.1 * over["budget"]).all()
        # the month that ended closes; the one in progress (even on its last day) does not
        assert main(["--config", str(config_path), "cost", "close",
                     previous.strftime("%Y-%m")]) == 0
        assert main(["--config", str(config_path), "cost", "close",
                     today.strftime("%Y-%m")]) == 2
        # a later visit (past the data cache's 30 s, which a frozen clock never reaches) shows
        # the month closed
        st.cache_data.clear()
        app.selectbox(key=MONTH_KEY).select(previous.strftime("%Y-%m")).run()
        assert not app.exception, [e.message for e in app.exception]
        assert {m.label: m.value for m in app.metric}["Month"] == "closed"


def test_on_the_first_with_nothing_of_the_new_month_yet_the_month_just_ended_opens(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Cost Explorer often has nothing for the 1st until later that day
    config_path = write_config(tmp_path, tmp_path / "data")
    config = load_config(config_path)
    with time_machine.travel(datetime(2026, 12, 1, 6, 0, tzinfo=UTC), tick=False):
        fill_cost(Store(str(tmp_path / "data"), all_datasets()), config,
                  date(2026, 11, 30))
        monkeypatch.setenv(CONFIG_ENV, str(config_path))
        monkeypatch.delenv(STORE_ENV, raising=False)
        app = AppTest.from_file(APP, default_timeout=60).run()
        app.switch_page("app_pages/cost.py").run()
        assert not app.exception, [e.message for e in app.exception]
        assert app.selectbox(key=MONTH_KEY).value == "2026-11"
        assert {m.label: m.value for m in app.metric}["Month"] == "complete"
