"""Unit cost per event flow on the Cost page (its section and XLSX sheet) and on the
Event-flow page (the selected rule's unit cost), through Streamlit's AppTest."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import openpyxl
import pytest
import time_machine
from streamlit.testing.v1 import AppTest

from dashboard import cost_data
from dashboard import verdicts as vd
from dashboard.app_pages.cost import MONTH_KEY
from dashboard.app_pages.event_flow import RULE_KEY
from dashboard.data import open_store
from dashboard.filters import Filters
from orgscope.cost.attribution import month_of
from orgscope.cost.flow_update import update_flow_cost
from orgscope.cost.review import workbook
from orgscope.plugins import load_config
from orgscope.wiring import CONFIG_ENV, STORE_ENV
from testkit.cost_sample import fill_cost
from testkit.dashboard_sample import fill_event_flow, fill_org_store, write_config
from testkit.flow_cost_sample import add_flow_cost

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "streamlit_app.py")
SECTION = "Unit cost per event flow"


@pytest.fixture
def config(tmp_path: Path, now: datetime) -> Path:
    path = write_config(tmp_path, tmp_path / "data")
    store = open_store(str(tmp_path / "data"))
    fill_org_store(store, now)
    fill_event_flow(store, now, days=1)
    add_flow_cost(store, load_config(path), now)
    return path


def _open(monkeypatch: pytest.MonkeyPatch, config: Path, page: str) -> AppTest:
    monkeypatch.setenv(CONFIG_ENV, str(config))
    monkeypatch.delenv(STORE_ENV, raising=False)
    app = AppTest.from_file(APP, default_timeout=90).run()
    app.switch_page(page).run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def test_the_cost_page_shows_flows_risers_and_the_xlsx_sheet(
        monkeypatch: pytest.MonkeyPatch, config: Path, now: datetime) -> None:
    app = _open(monkeypatch, config, "app_pages/cost.py")
    month = month_of(now.date())
    app.selectbox(key=MONTH_KEY).select(month).run()
    assert not app.exception, [e.message for e in app.exception]
    assert SECTION in [h.value for h in app.subheader]
    markdown = "\n".join(str(m.value) for m in app.markdown)
    assert "order-processing sqs" in markdown and "volume fell" in markdown
    tables = [t.value for t in app.dataframe if "per_million" in t.value.columns]
    flows = next(t for t in tables if "target_kind" in t.columns)
    assert any("end_to_end" in t.columns and "hops" in t.columns for t in tables)
    assert len(flows) > 0 and (flows["per_million"] >= 0).all()
    assert (flows["per_million"] > 0).sum() > len(flows) / 2
    metrics = {m.label: m.value for m in app.metric}
    assert int(metrics["Flows with events"]) == len(flows)
    store = open_store(str(Path(config).parent / "data"))
    review = cost_data.build_review(store, load_config(config), month, now.date())
    book = openpyxl.load_workbook(io.BytesIO(workbook(cost_data.export_sheets(review))))
    sheet = book["flow unit cost"]
    assert sheet.max_row - 1 == len(review.flows.flows) + len(review.flows.unallocated)
    assert book["flow end to end"].max_row - 1 == len(review.flows.routes)
    assert review.flows.compared and review.newest_flows is None
    assert "per_million_before" in flows.columns


def test_the_event_flow_page_shows_the_rules_unit_cost(
        monkeypatch: pytest.MonkeyPatch, config: Path) -> None:
    app = _open(monkeypatch, config, "app_pages/event_flow.py")
    store = open_store(str(Path(config).parent / "data"))
    key = next(k for k in vd.rule_keys(vd.rule_verdicts(store, Filters()))
               if k.rule == "orders-from-central")
    app.selectbox(key=RULE_KEY).set_value(key.encode()).run()
    assert not app.exception, [e.message for e in app.exception]
    text = "\n".join(str(m.value) for m in app.markdown)
    assert "**Unit cost** this month" in text and "USD per million events" in text
    assert "to sqs" in text and "the same days of last month" in text


def test_a_month_without_rule_metrics_says_its_lines_are_unallocated(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, now: datetime) -> None:
    path = write_config(tmp_path, tmp_path / "data")
    store = open_store(str(tmp_path / "data"))
    fill_org_store(store, now)
    fill_cost(store, load_config(path), now.date())
    assert update_flow_cost(load_config(path), store, now).startswith("flow cost: 0 flows")
    app = _open(monkeypatch, path, "app_pages/cost.py")
    captions = "\n".join(str(c.value) for c in app.caption)
    assert "No flow delivered events in" in captions
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Flows with events"] == "0"
    assert float(str(metrics["Unallocated (USD)"]).replace(",", "")) > 0
    # no empty flow tables and no riser text: only the lines, which nothing carried
    assert not any("per_million" in t.value.columns for t in app.dataframe)
    assert any("method" in t.value.columns for t in app.dataframe)
    assert "**Risers**" not in "\n".join(str(m.value) for m in app.markdown)
    # the only note is the resource section's: this store was filled from Cost Explorer
    assert [str(i.value) for i in app.info if "resource-level" not in str(i.value)] == []


#: A month start, a month end, New Year's Day, a leap day and a day in the middle.
FIRST_MONTH_DAYS = [date(2026, 12, 1), date(2026, 12, 31), date(2027, 1, 1),
                    date(2028, 2, 29), date(2026, 12, 15)]


@pytest.mark.parametrize("today", FIRST_MONTH_DAYS, ids=str)
def test_flows_only_in_the_month_in_progress_are_shown_from_last_months_review(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, today: date) -> None:
    """A new install (or the demo): rule metrics only since this month's first day. The page
    opens on last month, which no flow carried: the section says so and shows this month to
    date; its risers say the previous month's days have nothing to compare with."""
    moment = datetime.combine(today, datetime.min.time(), UTC) + timedelta(hours=9)
    first = today.replace(day=1)
    previous = month_of(first - timedelta(days=1))
    with time_machine.travel(moment, tick=False):
        path = write_config(tmp_path, tmp_path / "data")
        store = open_store(str(tmp_path / "data"))
        fill_org_store(store, moment)
        add_flow_cost(store, load_config(path), moment, metrics_since=first)
        review = cost_data.build_review(store, load_config(path), previous, today)
        assert review.flows is not None and review.flows.flows.empty
        newest = review.newest_flows
        assert newest is not None and newest.month == month_of(today)
        assert newest.through == today and newest.first_day == first
        assert len(newest.flows) > 0 and not newest.compared and newest.risers.empty
        app = _open(monkeypatch, path, "app_pages/cost.py")
        assert app.selectbox(key=MONTH_KEY).value == previous
        (info,) = [str(i.value) for i in app.info if "resource-level" not in str(i.value)]
        assert f"No flow delivered events in {previous}" in info
        assert f"flow metrics start on {first:%Y-%m-%d}" in info
        assert f"**{month_of(today)}, month to date (through {today:%Y-%m-%d})**" in info
        metrics = {m.label: m.value for m in app.metric}
        assert int(metrics["Flows with events"]) == len(newest.flows)
        captions = "\n".join(str(c.value) for c in app.caption)
        assert f"{previous} " in captions.split("No riser to show: ")[1].split("\n")[0]
        assert f"no flow events to compare with (flow metrics start on {first:%Y-%m-%d})" \
            in captions
        assert "No flow's unit cost rose." not in captions
        # no column of None: the previous month's unit cost is left out, not shown empty
        assert not any("per_million_before" in t.value.columns for t in app.dataframe)
        # the month in progress itself: no note, the same flows
        app.selectbox(key=MONTH_KEY).select(month_of(today)).run()
        assert not app.exception, [e.message for e in app.exception]
        assert [str(i.value) for i in app.info if "resource-level" not in str(i.value)] == []
        assert int({m.label: m.value for m in app.metric}["Flows with events"]) == \
            len(newest.flows)
