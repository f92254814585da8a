"""The Traces page through Streamlit's AppTest (no browser, no server)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard.app_pages.event_flow import RULE_KEY
from dashboard.app_pages.traces import (
    ANNOTATION_KEY,
    MIN_MS_KEY,
    SERVICES_KEY,
    TRACE_KEY,
)
from dashboard.data import open_store
from orgscope.wiring import CONFIG_ENV, STORE_ENV
from testkit.dashboard_sample import (
    FAILING_RULE,
    failing_disk,
    fill_event_flow,
    fill_org_store,
    write_config,
)
from testkit.traces_sample import FLOW_ACCOUNTS, fill_traces, sample_spans

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "streamlit_app.py")
PAGE = "app_pages/traces.py"
TIMEOUT_S = 60


def _open(monkeypatch: pytest.MonkeyPatch, config: Path,
          params: dict[str, str] | None = None) -> AppTest:
    monkeypatch.setenv(CONFIG_ENV, str(config))
    monkeypatch.delenv(STORE_ENV, raising=False)
    app = AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()
    app.switch_page(PAGE)
    for name, value in (params or {}).items():
        app.query_params[name] = value
    app.run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def _texts(elements: Iterable[Any]) -> str:
    return "\n".join(str(element.value) for element in elements)


@pytest.fixture
def summaries(tmp_path: Path, now: datetime) -> pd.DataFrame:
    store = open_store(str(tmp_path / "data"))
    fill_org_store(store, now)
    return fill_traces(store, now)


@pytest.fixture
def populated(tmp_path: Path, summaries: pd.DataFrame) -> Path:
    return write_config(tmp_path, tmp_path / "data")


def test_the_slowest_trace_is_opened_with_its_waterfall_map_and_latency(
        monkeypatch: pytest.MonkeyPatch, populated: Path, summaries: pd.DataFrame) -> None:
    app = _open(monkeypatch, populated)
    assert app.title[0].value == "Traces"
    assert f"**{len(summaries)}** traces match" in _texts(app.markdown)
    slowest = summaries.sort_values("duration_ms", ascending=False)["trace_id"].iloc[0]
    assert app.selectbox(key=TRACE_KEY).value == slowest
    assert len(app.get("plotly_chart")) == 3
    captions = _texts(app.caption)
    assert "12 spans in 5 accounts" in captions and "4 account crossings" in captions
    assert "p99 rose" in captions and "payment-service" in captions
    # the URL follows what is shown, so it can be shared
    assert app.query_params["trace"] == slowest


def test_minimum_duration_and_service_narrow_the_results(
        monkeypatch: pytest.MonkeyPatch, populated: Path, summaries: pd.DataFrame) -> None:
    app = _open(monkeypatch, populated)
    threshold = int(summaries["duration_ms"].quantile(0.8))
    app.number_input(key=MIN_MS_KEY).set_value(threshold).run()
    expected = int((summaries["duration_ms"] >= threshold).sum())
    assert f"**{expected}** traces match" in _texts(app.markdown)
    assert app.query_params["min_ms"] == str(threshold)
    app.multiselect(key=SERVICES_KEY).set_value(["payment-service"]).run()
    assert not app.exception
    app.number_input(key=MIN_MS_KEY).set_value(10_000_000).run()
    assert "No trace matches" in _texts(app.info)
    app.text_input(key=ANNOTATION_KEY).set_value("order_id").run()
    assert "write key=value" in _texts(app.error)
    assert not app.exception


def test_a_deep_link_fills_the_search(monkeypatch: pytest.MonkeyPatch, populated: Path,
                                      summaries: pd.DataFrame) -> None:
    one = summaries.iloc[5]
    app = _open(monkeypatch, populated, {"account": "payment-service",
                                         "service": "order-processing",
                                         "trace": str(one["trace_id"])})
    assert app.multiselect(key=SERVICES_KEY).value == ["order-processing"]
    assert app.selectbox(key=TRACE_KEY).value == one["trace_id"]
    # the same link followed again after another page: applied again (widget state is gone)
    app.switch_page("app_pages/organization.py").run()
    app.switch_page(PAGE)
    app.query_params["service"] = "order-processing"
    app.run()
    assert app.multiselect(key=SERVICES_KEY).value == ["order-processing"]
    bad = _open(monkeypatch, populated, {"min_ms": "slow"})
    assert "min_ms='slow'" in _texts(bad.warning)


def test_no_spans_yet_names_the_collector_and_command(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path, now: datetime) -> None:
    fill_org_store(open_store(str(tmp_path / "data")), now)
    app = _open(monkeypatch, write_config(tmp_path, tmp_path / "data"))
    note = _texts(app.info)
    assert "No spans have been collected yet" in note and "xray" in note
    assert "orgscope collect --once --only xray" in note
    assert not app.error
    open_store(str(tmp_path / "data")).write("spans", sample_spans(now, 3), "spans-only")
    st.cache_data.clear()
    app.run()
    assert "has not stitched them into traces yet" in _texts(app.info)


def test_an_unreadable_store_is_an_error_not_no_data(monkeypatch: pytest.MonkeyPatch,
                                                     populated: Path, tmp_path: Path) -> None:
    failing_disk(monkeypatch)
    app = _open(monkeypatch, populated)
    assert "The store could not be read" in _texts(app.error)
    assert not any("No spans have been collected" in i.value for i in app.info)


def test_sidebar_account_filter_applies(monkeypatch: pytest.MonkeyPatch,
                                        populated: Path) -> None:
    app = _open(monkeypatch, populated)
    app.sidebar.multiselect[0].set_value(["222222222222"]).run()
    assert "No trace matches" in _texts(app.info)
    app.sidebar.multiselect[0].set_value([FLOW_ACCOUNTS["payment-service"]]).run()
    assert "traces match" in _texts(app.markdown)


def test_a_failing_rule_on_the_event_flow_page_links_to_its_consumers_traces(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, now: datetime) -> None:
    store = open_store(str(tmp_path / "data"))
    fill_org_store(store, now)
    fill_event_flow(store, now, days=1)
    monkeypatch.setenv(CONFIG_ENV, str(write_config(tmp_path, tmp_path / "data")))
    monkeypatch.delenv(STORE_ENV, raising=False)
    app = AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()
    assert not app.exception, [e.message for e in app.exception]
    assert app.selectbox(key=RULE_KEY).value.endswith(FAILING_RULE)
    (link,) = [e for e in app.get("page_link") if "consumer of" in e.proto.label]
    assert link.proto.page.endswith("traces")
    # the failing rule delivers to delivery-orchestration (its target's account); no spans
    # name it, so the link searches that account over the page's time range
    assert link.proto.label.startswith("Traces of delivery-orchestration, the consumer of "
                                       f"{FAILING_RULE}, in the last 24h")
    params = dict(item.split("=", 1) for item in link.proto.query_string.split("&"))
    assert params["account"] == "888888888888"
    assert {"since", "until"} <= set(params)
