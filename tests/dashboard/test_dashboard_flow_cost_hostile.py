"""Rule names from monitored accounts are untrusted: on the Cost page's flow section (the
risers' markdown, the chart's names) and in its XLSX sheet they stay text."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import cost_data
from dashboard.app_pages.cost import MONTH_KEY
from dashboard.data import open_store
from orgscope.cost.attribution import month_of
from orgscope.cost.review import workbook
from orgscope.datasets import FLOW_COST_DAILY
from orgscope.plugins import load_config
from orgscope.wiring import CONFIG_ENV, STORE_ENV
from testkit.dashboard_sample import write_config
from testkit.flow_cost_sample import FALLEN_ACCOUNT, fill_flow_cost
from testkit.hostile import CORPUS, markdown_problems, plotly_problems

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "streamlit_app.py")
HOSTILE = " ".join(CORPUS[k] for k in ("markdown_link", "html_script", "plotly_tags",
                                       "formula_hyperlink"))


@pytest.fixture
def config(tmp_path: Path, now: datetime) -> Path:
    """The sample's flow cost, with the fallen account's rules renamed to hostile text (a
    later computation of the same days, so it is the latest)."""
    path = write_config(tmp_path, tmp_path / "data")
    store = open_store(str(tmp_path / "data"))
    fill_flow_cost(store, load_config(path), now)
    rows = store.query("SELECT * FROM flow_cost_daily")
    renamed = rows["account_id"] == FALLEN_ACCOUNT
    rows.loc[renamed, "rule"] = HOSTILE + " " + rows.loc[renamed, "rule"]
    rows["computed_at"] = pd.Timestamp(now) + pd.Timedelta(minutes=1)
    store.write(FLOW_COST_DAILY.name, rows, "hostile-flow-cost")
    return path


def test_hostile_rule_names_stay_text(monkeypatch: pytest.MonkeyPatch, config: Path,
                                      now: datetime) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(config))
    monkeypatch.delenv(STORE_ENV, raising=False)
    app = AppTest.from_file(APP, default_timeout=90).run()
    app.switch_page("app_pages/cost.py").run()
    month = month_of(now.date())
    app.selectbox(key=MONTH_KEY).select(month).run()
    assert not app.exception, [e.message for e in app.exception]
    texts = [str(m.value) for m in app.markdown]
    # the risers name the hostile flow, escaped
    assert any("\\<script\\>alert\\(1\\)" in t for t in texts), texts
    assert [p for t in texts for p in markdown_problems(t)] == []
    figures = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    assert [p for figure in figures for p in plotly_problems(figure)] == []
    review = cost_data.build_review(open_store(str(config.parent / "data")),
                                    load_config(config), month, now.date())
    book = openpyxl.load_workbook(io.BytesIO(workbook(cost_data.export_sheets(review))))
    cells = [str(c.value) for row in book["flow unit cost"].iter_rows() for c in row
             if c.value is not None]
    assert any("HYPERLINK" in c for c in cells)
    assert not any(c.startswith("=") for c in cells)
