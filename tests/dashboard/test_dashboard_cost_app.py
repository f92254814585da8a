"""The Cost page through Streamlit's AppTest, on the simulator's cost model written to a store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.app_pages.cost import CSV_KEY, MONTH_KEY, RESOURCES_CSV_KEY, XLSX_KEY
from dashboard.cost_data import resources_csv
from orgscope.datasets import all_datasets
from orgscope.plugins import load_config
from orgscope.store import Store
from orgscope.wiring import CONFIG_ENV, STORE_ENV
from sim.costs import EVENTBRIDGE
from testkit.cost_sample import fill_cost, fill_resources
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


def test_without_a_data_export_the_resources_section_says_why(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = write_config(tmp_path, tmp_path / "data")
    today = datetime.now(UTC).date()
    fill_cost(Store(str(tmp_path / "data"), all_datasets()), load_config(config), today)
    app = _run(monkeypatch, config)
    assert "Costliest resources" in [h.value for h in app.subheader]
    assert any("Cost Explorer does not give resource-level lines; configure a data export "
               "(docs/cost.md)" in i.value for i in app.info)
    assert RESOURCES_CSV_KEY not in {button.key for button in app.get("download_button")}


def test_the_costliest_resources_of_the_month_untrusted_ids_as_plain_text(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = write_config(tmp_path, tmp_path / "data")
    today = datetime.now(UTC).date()
    store = Store(str(tmp_path / "data"), all_datasets())
    model = fill_cost(store, load_config(config), today)
    bus = "121212121212"  # the reference config's event-bus account
    hostile = "=HYPERLINK(\"http://x\")\u202e**rule**\n<b>x</b>"
    arns = [f"arn:aws:events:us-east-1:{bus}:rule/central-bus/r{i:02d}" for i in range(24)]
    previous = today.replace(day=1) - timedelta(days=1)
    # first in the split: its share of each line is the largest, so it is in the top 20
    written = fill_resources(store, model, {(bus, EVENTBRIDGE): [hostile, *arns]},
                             previous.replace(day=1))
    app = _run(monkeypatch, config)
    table = next(d.value for d in app.dataframe if "resource_id" in d.value.columns)
    assert list(table.columns) == ["resource_id", "account", "service", "amount"]
    month = written[[d.strftime("%Y-%m") == f"{previous:%Y-%m}" for d in written["date"]]]
    expected = month.groupby("resource_id")["amount"].sum().sort_values(ascending=False)
    assert len(table) == 20 == len(expected.head(20))
    assert list(table["amount"]) == pytest.approx(list(expected.head(20)))
    assert set(table["account"]) == {"event-bus"}
    assert all("\n" not in r and "\u202e" not in r for r in table["resource_id"])
    assert '=HYPERLINK("http://x")**rule** <b>x</b>' in set(table["resource_id"])
    assert RESOURCES_CSV_KEY in {button.key for button in app.get("download_button")}


def test_the_resources_csv_quotes_formula_cells(tmp_path: Path) -> None:
    frame = pd.DataFrame({"resource_id": ["=cmd()", "arn:aws:sqs:us-east-1:1:q"],
                          "account": ["a", "b"], "account_id": ["1", "2"],
                          "service": ["s", "s"], "amount": [2.0, 1.0],
                          "currency": ["USD", "USD"]})
    text = resources_csv(frame, "2026-11").decode()
    assert "'=cmd()" in text and text.startswith("month,resource_id,account")
