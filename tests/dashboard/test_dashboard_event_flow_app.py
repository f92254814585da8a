"""The Event-flow page through Streamlit's AppTest (no browser, no server)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import verdicts as vd
from dashboard.app_pages.event_flow import (
    DOWNLOAD_KEY,
    METRIC_KEY,
    ONLY_NOT_OK_KEY,
    ROWS_KEY,
    RULE_KEY,
)
from dashboard.data import open_store
from dashboard.filters import TEAMS_KEY, TIME_RANGE_KEY, Filters
from orgscope.datasets import VERDICTS
from orgscope.store import Store
from orgscope.wiring import CONFIG_ENV, STORE_ENV
from testkit.dashboard_sample import (
    FAILING_RULE,
    SILENT_RULE,
    UNREACHABLE_ID,
    fill_event_flow,
    fill_org_store,
    write_config,
)

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "streamlit_app.py")
PAGE = "app_pages/event_flow.py"
TIMEOUT_S = 60


def _open(monkeypatch: pytest.MonkeyPatch, config: Path) -> AppTest:
    monkeypatch.setenv(CONFIG_ENV, str(config))
    monkeypatch.delenv(STORE_ENV, raising=False)
    app = AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()
    app.switch_page(PAGE).run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def _texts(elements: Iterable[Any]) -> str:
    return "\n".join(str(element.value) for element in elements)


def _headline(app: AppTest) -> dict[str, str]:
    """Verdict -> the number shown (labels are Markdown-coloured: ':red[**FAILING**]')."""
    shown = {}
    for metric in app.metric:
        for verdict in VERDICTS:
            if f"**{verdict}**" in metric.label:
                shown[verdict] = metric.value
    return shown


@pytest.fixture
def store(tmp_path: Path, now: datetime) -> Store:
    flow_store = open_store(str(tmp_path / "data"))
    fill_org_store(flow_store, now)
    fill_event_flow(flow_store, now, days=1)
    return flow_store


@pytest.fixture
def populated(tmp_path: Path, store: Store) -> Path:
    return write_config(tmp_path, tmp_path / "data")


def test_headline_counts_match_the_store(monkeypatch: pytest.MonkeyPatch, populated: Path,
                                         store: Store):
    app = _open(monkeypatch, populated)
    counts = store.query("SELECT verdict, count(*) AS n FROM rule_health GROUP BY verdict")
    expected = dict(zip(counts["verdict"], counts["n"], strict=True))
    assert _headline(app) == {v: str(expected.get(v, 0)) for v in VERDICTS}
    assert app.title[0].value == "Event flow"


def test_the_most_urgent_rule_is_preselected(monkeypatch: pytest.MonkeyPatch, populated: Path):
    app = _open(monkeypatch, populated)
    chosen = vd.RuleKey.decode(str(app.selectbox(key=RULE_KEY).value))
    assert chosen.rule == FAILING_RULE
    box = _texts(app.error)
    assert "FAILING" in box and FAILING_RULE in box and "failed invocations" in box


def _open_link(monkeypatch: pytest.MonkeyPatch, config: Path,
               params: dict[str, str]) -> AppTest:
    """The dashboard opened on an alert's Event-flow link (alerts/slack.py page_url)."""
    monkeypatch.setenv(CONFIG_ENV, str(config))
    monkeypatch.delenv(STORE_ENV, raising=False)
    app = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    for name, value in params.items():
        app.query_params[name] = value
    app.run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def test_an_alerts_link_picks_its_rule_once(monkeypatch: pytest.MonkeyPatch, populated: Path,
                                            store: Store):
    keys = vd.rule_keys(vd.rule_verdicts(store, Filters()))
    silent = next(key for key in keys if key.rule == SILENT_RULE)
    app = _open_link(monkeypatch, populated, {
        "account": silent.account_id, "region": silent.region, "bus": silent.bus,
        "rule": silent.rule})
    assert app.selectbox(key=RULE_KEY).value == silent.encode()  # not the most urgent
    assert "Matched 0 events" in _texts(app.warning)
    # the reader picks another rule: the link does not take it back on the next run
    other = next(key.encode() for key in keys if key != silent)
    app.selectbox(key=RULE_KEY).set_value(other).run()
    app.run()
    assert app.selectbox(key=RULE_KEY).value == other


def test_a_link_to_a_rule_not_in_scope_says_so(monkeypatch: pytest.MonkeyPatch,
                                                populated: Path):
    app = _open_link(monkeypatch, populated, {"rule": "no-such-rule*[x](http://evil)"})
    chosen = vd.RuleKey.decode(str(app.selectbox(key=RULE_KEY).value))
    assert chosen.rule == FAILING_RULE  # the most urgent, as without a link
    note = _texts(app.caption)
    assert "The link names rule" in note and "](http" not in note


def test_unreachable_banner_names_the_account(monkeypatch: pytest.MonkeyPatch, populated: Path):
    app = _open(monkeypatch, populated)
    banner = next(e.value for e in app.error if "could not read" in e.value)
    assert "payment-service" in banner and UNREACHABLE_ID in banner
    assert "AccessDenied" in banner and "STALE" in banner


def test_picking_another_rule_shows_its_verdict(monkeypatch: pytest.MonkeyPatch,
                                                populated: Path, store: Store):
    app = _open(monkeypatch, populated)
    verdicts = vd.rule_verdicts(store, Filters())
    silent = next(key for key in vd.rule_keys(verdicts) if key.rule == SILENT_RULE)
    app.selectbox(key=RULE_KEY).set_value(silent.encode()).run()
    assert not app.exception
    assert "Matched 0 events" in _texts(app.warning)


def test_widgets_rerun_without_errors(monkeypatch: pytest.MonkeyPatch, populated: Path):
    app = _open(monkeypatch, populated)
    app.segmented_control(key=ROWS_KEY).set_value("team").run()
    app.toggle(key=ONLY_NOT_OK_KEY).set_value(False).run()
    app.selectbox(key=METRIC_KEY).set_value("IngestionToInvocationStartLatency").run()
    assert not app.exception
    assert any(button.key == DOWNLOAD_KEY for button in app.download_button)


def test_team_filter_narrows_the_headline(monkeypatch: pytest.MonkeyPatch, populated: Path):
    app = _open(monkeypatch, populated)
    app.multiselect(key=TEAMS_KEY).set_value(["payments"]).run()
    assert not app.exception
    headline = _headline(app)
    assert headline["STALE"] == "2"
    assert all(value == "0" for verdict, value in headline.items() if verdict != "STALE")


def test_thirty_days_range_renders(monkeypatch: pytest.MonkeyPatch, populated: Path):
    app = _open(monkeypatch, populated)
    app.selectbox(key=TIME_RANGE_KEY).set_value("30d").run()
    assert not app.exception
    assert "last 30d" in _texts(app.caption)


def test_no_metrics_yet_says_how_to_collect(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                            now: datetime):
    fill_org_store(open_store(str(tmp_path / "data")), now)
    app = _open(monkeypatch, write_config(tmp_path, tmp_path / "data"))
    info = _texts(app.info)
    assert "No event metrics have been collected yet" in info
    assert "orgscope collect --once" in info
    assert not app.metric
    # the unreachable account is still named: "could not read" is not "no data"
    assert any("could not read" in e.value for e in app.error)


def test_empty_store_is_not_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    app = _open(monkeypatch, write_config(tmp_path, tmp_path / "data"))
    assert "orgscope collect --once" in _texts(app.info)
    assert not app.error
