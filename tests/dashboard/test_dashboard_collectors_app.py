"""The Collectors page through Streamlit's AppTest: "no runs yet" on an empty store, the bill
and the what-if on a sample store, and a bad store read is said, not raised."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import collectors_data as cd
from dashboard.app_pages.collectors import (
    DOWNLOAD_KEY,
    WHAT_IF_COLLECTOR_KEY,
    WHAT_IF_INTERVAL_KEY,
)
from orgscope import bill
from orgscope.datasets import RUNS, all_datasets
from orgscope.plugins import load_config
from orgscope.store import Store
from orgscope.wiring import CONFIG_ENV, STORE_ENV
from testkit.collectors_sample import runs_frame
from testkit.dashboard_sample import UNREACHABLE_ID, write_config

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "streamlit_app.py")


def _run(monkeypatch: pytest.MonkeyPatch, config: Path) -> AppTest:
    monkeypatch.setenv(CONFIG_ENV, str(config))
    monkeypatch.delenv(STORE_ENV, raising=False)
    app = AppTest.from_file(APP, default_timeout=60).run()
    app.switch_page("app_pages/collectors.py").run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def test_no_runs_yet_says_how_to_collect(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    app = _run(monkeypatch, write_config(tmp_path, tmp_path / "data"))
    assert "No collection run in the last 3d" in app.info[0].value
    assert not app.error


def test_the_bill_and_a_what_if(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config_path = write_config(tmp_path, tmp_path / "data")
    store = Store(str(tmp_path / "data"), all_datasets())
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    store.write(RUNS.name, runs_frame({"111111111111": (3, 2, 20), UNREACHABLE_ID: (2, 1, 0)},
                                      now - timedelta(hours=3), now,
                                      unreachable={UNREACHABLE_ID: now - timedelta(minutes=7)}),
                "runs")
    app = _run(monkeypatch, config_path)
    config = load_config(config_path)
    usage = cd.usage(store, config, datetime.now(UTC))
    total = bill.by_collector(bill.bill(usage, config))["monthly_usd"].sum()
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Estimated monthly bill"] == f"${total:,.2f}"
    assert any("could not read 1 account" in e.value and UNREACHABLE_ID in e.value
               for e in app.error)
    app.selectbox(key=WHAT_IF_COLLECTOR_KEY).set_value("xray").run()
    app.selectbox(key=WHAT_IF_INTERVAL_KEY).set_value("10m").run()
    metrics = {m.label: m.value for m in app.metric}
    ten = bill.collector_monthly(usage, config, "xray", timedelta(minutes=10))
    assert metrics["xray every 10m"] == f"${ten:,.2f}"
    assert DOWNLOAD_KEY in {button.key for button in app.get("download_button")}
