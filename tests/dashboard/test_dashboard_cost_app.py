"""The Cost page through Streamlit's AppTest, on the simulator's cost model written to a store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.app_pages.cost import CSV_KEY, MONTH_KEY, XLSX_KEY
from orgscope.datasets import all_datasets
from orgscope.plugins import load_config
from orgscope.store import Store
from orgscope.wiring import CONFIG_ENV, STORE_ENV
from testkit.cost_sample import fill_cost
from testkit.dashboard_sample import write_config

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "streamlit_app.py")


def _run(monkeypatch: pytest.MonkeyPatch, config: Path) -> AppTest:
    monkeypatch.setenv(CONFIG_ENV, str(config))
    monkeypatch.delenv(STORE_ENV, raising=False)
    app = AppTest.from_file(APP, default_timeout=60).run()
    app.switch_page("app_pages/cost.py").run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def test_no_cost_yet_says_how_to_collect(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    app = _run(monkeypatch, write_config(tmp_path, tmp_path / "data"))
    assert "No cost has been collected yet" in app.info[0].value


def test_the_review_of_the_last_complete_month(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    config = write_config(tmp_path, tmp_path / "data")
    today = datetime.now(UTC).date()
    fill_cost(Store(str(tmp_path / "data"), all_datasets()), load_config(config), today)
    app = _run(monkeypatch, config)
    previous = today.replace(day=1) - timedelta(days=1)
    assert app.selectbox(key=MONTH_KEY).value == previous.strftime("%Y-%m")
    metrics = {m.label: m.value for m in app.metric}
    assert f"Total {previous:%Y-%m} (USD)" in metrics
    assert metrics["Month"] == "complete"
    teams = app.dataframe[0].value
    assert float(str(metrics[f"Total {previous:%Y-%m} (USD)"]).replace(",", "")) == \
        pytest.approx(teams["amount"].sum(), abs=0.01)
    assert "Top movers" in [h.value for h in app.subheader]
    keys = {button.key for button in app.get("download_button")}
    assert {XLSX_KEY, CSV_KEY} <= keys


def test_the_month_in_progress_has_a_forecast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    config = write_config(tmp_path, tmp_path / "data")
    today = datetime.now(UTC).date()
    fill_cost(Store(str(tmp_path / "data"), all_datasets()), load_config(config), today)
    app = _run(monkeypatch, config)
    app.selectbox(key=MONTH_KEY).select(today.strftime("%Y-%m")).run()
    assert not app.exception
    labels = [m.label for m in app.metric]
    assert "Forecast month end" in labels
    assert "forecast" in app.dataframe[0].value.columns
