"""The dashboard as a whole, through Streamlit's AppTest (no browser, no server)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.app_pages.organization import ONLY_DISABLED_KEY, SEARCH_KEY
from dashboard.filters import ACCOUNTS_KEY, TEAMS_KEY, TIME_RANGE_KEY
from orgscope.datasets import all_datasets
from orgscope.store import Store
from orgscope.untrusted import markdown as md_text
from orgscope.wiring import CONFIG_ENV, STORE_ENV
from testkit.dashboard_sample import UNREACHABLE_REASON, fill_org_store, write_config
from testkit.hostile import shown

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "streamlit_app.py")
TIMEOUT_S = 60


ORGANIZATION = "app_pages/organization.py"


def _run(monkeypatch: pytest.MonkeyPatch, config: Path) -> AppTest:
    monkeypatch.setenv(CONFIG_ENV, str(config))
    monkeypatch.delenv(STORE_ENV, raising=False)
    app = AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()
    app.switch_page(ORGANIZATION).run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def _metrics(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def _texts(elements: Iterable[Any]) -> str:
    return "\n".join(str(element.value) for element in elements)


@pytest.fixture
def populated(tmp_path: Path, now: datetime) -> Path:
    store = Store(str(tmp_path / "data"), all_datasets())
    fill_org_store(store, now)
    return write_config(tmp_path, tmp_path / "data")


def test_empty_store_says_no_collection_yet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    app = _run(monkeypatch, write_config(tmp_path, tmp_path / "data"))
    info = _texts(app.info)
    assert "No collection has run yet" in info
    assert "orgscope collect --once" in info
    assert f"ORGSCOPE_CONFIG={tmp_path / 'config.toml'}" in info
    assert not app.error, "an empty store is not a failure to read"
    assert not app.metric


def test_populated_store_shows_metrics(monkeypatch: pytest.MonkeyPatch, populated: Path):
    app = _run(monkeypatch, populated)
    metrics = _metrics(app)
    assert metrics["Accounts watched"] == "13"
    assert metrics["Readable"] == "12"
    assert metrics["Could not read"] == "1"
    assert metrics["Rules disabled"] == "4"
    assert metrics["Last collection"].endswith("ago")
    assert "QuickGrocer" in app.title[0].value


def test_unreachable_banner_names_the_account_and_reason(
    monkeypatch: pytest.MonkeyPatch, populated: Path
):
    app = _run(monkeypatch, populated)
    banner = shown(_texts(app.error))
    assert "could not read 1 account" in banner
    assert "payment-service" in banner
    assert UNREACHABLE_REASON in banner
    assert "No collection has run yet" not in _texts(app.info)


def test_page_shows_tables_chart_and_download(
    monkeypatch: pytest.MonkeyPatch, populated: Path
):
    app = _run(monkeypatch, populated)
    assert [s.value for s in app.subheader] == [
        "Accounts", "Rules per account", "Disabled rules", "Rule inventory",
    ]
    assert len(app.dataframe) == 3  # accounts, disabled rules, inventory
    assert app.get("plotly_chart")
    assert app.get("download_button")


def test_team_filter_applies_to_the_page(monkeypatch: pytest.MonkeyPatch, populated: Path):
    app = _run(monkeypatch, populated)
    app.multiselect(key=TEAMS_KEY).set_value(["platform"]).run()
    metrics = _metrics(app)
    assert metrics["Accounts watched"] == "3"
    assert metrics["Could not read"] == "0"
    assert not app.error
    assert "team platform" in app.caption[0].value


def test_account_filter_and_time_range(monkeypatch: pytest.MonkeyPatch, populated: Path):
    app = _run(monkeypatch, populated)
    app.multiselect(key=ACCOUNTS_KEY).set_value(["999999999999"])
    app.selectbox(key=TIME_RANGE_KEY).set_value("1h").run()
    assert _metrics(app)["Accounts watched"] == "1"
    assert "payment-service" in _texts(app.error)
    assert "last 1h" in app.caption[0].value


def test_search_and_only_disabled_narrow_the_inventory(
    monkeypatch: pytest.MonkeyPatch, populated: Path
):
    app = _run(monkeypatch, populated)
    app.text_input(key=SEARCH_KEY).input("order placed").run()
    assert "5 rules, 1 disabled" in _texts(app.caption)
    app.toggle(key=ONLY_DISABLED_KEY).set_value(True).run()
    assert "1 rule, 1 disabled" in _texts(app.caption)
    app.text_input(key=SEARCH_KEY).input("no such rule anywhere").run()
    assert "No rules match." in _texts(app.caption)


def test_store_override_from_the_environment_is_used_and_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, populated: Path
):
    other = tmp_path / "elsewhere"
    monkeypatch.setenv(CONFIG_ENV, str(populated))
    monkeypatch.setenv(STORE_ENV, str(other))
    app = AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()
    app.switch_page(ORGANIZATION).run()
    info = _texts(app.info)
    assert "No collection has run yet" in info
    assert f"ORGSCOPE_STORE={other}" in info


def test_bad_config_shows_its_error_lines(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    good = write_config(tmp_path, tmp_path / "data").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(good.replace('id = "111111111111"', 'id = "1234"', 1))
    app = _run(monkeypatch, bad)
    message = _texts(app.error)
    assert "config file" in message
    assert "accounts[0].id" in message
    assert "12-digit" in message
    assert not app.metric


def test_missing_config_file_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    app = _run(monkeypatch, tmp_path / "nope.toml")
    assert "file not found" in _texts(app.error)


def test_unsupported_store_url_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    config = write_config(tmp_path, tmp_path / "data")
    # s3:// is supported (tests/test_store_s3.py); other schemes are refused with the forms
    config.write_text(config.read_text().replace(str(tmp_path / "data"), "gs://bucket/orgscope"))
    app = _run(monkeypatch, config)
    assert "cannot open the store" in _texts(app.error)
    assert "gs://" in _texts(app.error) and "s3://" in _texts(app.error)


def test_an_account_readable_with_gaps_names_the_refused_action_and_its_collector(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, now: datetime) -> None:
    store = Store(str(tmp_path / "data"), all_datasets())
    fill_org_store(store, now)
    # inventory-mgmt's role predates the otel collector: FilterLogEvents is refused there
    refused = ("AccessDeniedException on FilterLogEvents: User: arn:aws:sts::666666666666:"
               "assumed-role/OrgScopeReadOnly is not authorized to perform: "
               "logs:FilterLogEvents")
    runs = store.query("SELECT * EXCLUDE (date) FROM runs WHERE account_id = '666666666666' "
                       "ORDER BY started_at DESC LIMIT 1")
    store.write("runs", runs.assign(collector="otel", status="error", error=refused,
                                    api_calls=1, run_id="otel-run"), "otel-run")
    app = _run(monkeypatch, write_config(tmp_path, tmp_path / "data"))
    assert not app.exception
    metrics = _metrics(app)
    assert metrics["Readable"] == "12" and metrics["Could not read"] == "1"
    gaps = shown(_texts(app.warning))
    assert "1 account readable with gaps" in gaps
    assert "inventory-mgmt" in gaps and "logs:FilterLogEvents (otel)" in gaps
    accounts = app.dataframe[0].value
    row = accounts[accounts["account_id"] == "666666666666"].iloc[0]
    assert row["status"] == "partial" and row["refused"] == "logs:FilterLogEvents (otel)"
    assert set(accounts["status"]) == {"readable", "partial", "unreachable"}


def test_names_and_reasons_from_accounts_never_become_links_or_markup(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, now: datetime) -> None:
    store = Store(str(tmp_path / "data"), all_datasets())
    fill_org_store(store, now)
    accounts = store.query("SELECT * EXCLUDE (date) FROM accounts "
                           "WHERE account_id = '999999999999'")
    hostile = "[Open runbook](https://evil.example) ![x](https://evil.example/p.png) $x$"
    store.write("accounts", accounts.assign(
        name=hostile, reason="<img src=x onerror=alert(1)> **AccessDenied**",
        checked_at=accounts["checked_at"] + pd.Timedelta(seconds=1)), "hostile")
    app = _run(monkeypatch, write_config(tmp_path, tmp_path / "data"))
    banner = _texts(app.error)
    assert hostile in shown(banner)  # shown as the text it is ...
    # ... and never a link, an image, HTML, emphasis or math
    assert "[Open runbook](" not in banner and "![x](" not in banner
    assert not re.search(r"(?<!\\)<img", banner)
    assert "**AccessDenied**" not in banner and "$x$" not in banner
    assert md_text("[a](b)") == r"\[a\]\(b\)"
