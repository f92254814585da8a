"""The Schemas page through Streamlit's AppTest: the empty state, and on demo-shaped data the
rules that will go silent, the versions side by side and the rules depending on each field."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import schemas_data as sd
from dashboard.app_pages.schemas import DETAIL_TYPE_KEY, DOWNLOAD_KEY
from dashboard.filters import Filters
from orgscope.datasets import all_datasets
from orgscope.processes import APP
from orgscope.store import Store
from orgscope.wiring import CONFIG_ENV, STORE_ENV
from testkit.dashboard_sample import ORG, fill_org_store, write_config
from testkit.hostile import hostile, markdown_problems
from testkit.schemas_sample import (
    BROKEN_RULES,
    CENTRAL,
    STOCK_KEY,
    STOCK_RULE,
    add_stock_drift,
    fill_schema_drift,
)

PAYMENTS_KEY = f"{CENTRAL}|us-east-1|quickgrocer.payment-service|Payment Processed"


def _run(monkeypatch: pytest.MonkeyPatch, config: Path,
         link: dict[str, str] | None = None) -> AppTest:
    monkeypatch.setenv(CONFIG_ENV, str(config))
    monkeypatch.delenv(STORE_ENV, raising=False)
    app = AppTest.from_file(str(APP), default_timeout=60).run()
    for name, value in (link or {}).items():
        app.query_params[name] = value
    app.switch_page("app_pages/schemas.py").run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def _store(tmp_path: Path) -> tuple[Path, Store]:
    config = write_config(tmp_path, tmp_path / "data")
    store = Store(str(tmp_path / "data"), all_datasets())
    cycles = fill_org_store(store, datetime.now(UTC).replace(microsecond=0))
    fill_schema_drift(store, cycles[-1].started_at)
    return config, store


def test_no_schemas_yet_says_where_they_come_from(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    config = write_config(tmp_path, tmp_path / "data")
    store = Store(str(tmp_path / "data"), all_datasets())
    fill_org_store(store, datetime.now(UTC).replace(microsecond=0))
    app = _run(monkeypatch, config)
    assert "No discovered schemas yet" in app.info[0].value
    assert not app.error


def test_the_data_layer_reads_the_demos_drift(tmp_path: Path) -> None:
    _, store = _store(tmp_path)
    result = sd.drift(store, Filters())
    assert result.breaks[["account_id", "bus", "rule"]].drop_duplicates().shape[0] == \
        BROKEN_RULES
    types = sd.detail_types(result)
    assert types.iloc[0]["key"] == PAYMENTS_KEY and types.iloc[0]["breaking"] == BROKEN_RULES
    table = sd.side_by_side(result, PAYMENTS_KEY).set_index("field")
    assert list(table.columns) == ["v1", "v2", "v3"]
    assert table.loc["detail.purpose"].tolist() == ["string", "string", sd.ABSENT]
    assert table.loc["detail.context.purpose"].tolist() == [sd.ABSENT, sd.ABSENT, "string"]
    assert sd.changes(result, PAYMENTS_KEY)[1] == ("v2 → v3", [
        "added detail.context.channel", "moved detail.purpose → detail.context.purpose"])
    only_orders = sd.drift(store, Filters(account_ids=("777777777777",)))
    assert only_orders.breaks["rule"].tolist() == ["payment-events-to-order-processing"]


def test_the_page_names_the_rules_that_will_go_silent(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    config, _ = _store(tmp_path)
    app = _run(monkeypatch, config)
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Rules that will go silent"] == str(BROKEN_RULES)
    assert metrics["Detail-types discovered"] == "1"
    banner = app.error[0].value.replace("\\", "")  # markdown escapes read as shown
    assert f"{BROKEN_RULES} rules will go silent" in banner
    assert "payment-processed-to-subscriptions" in banner
    assert "version 3 moved detail.purpose to detail.context.purpose" in banner
    assert "producer payment-service (999999999999)" in banner
    assert app.selectbox(key=DETAIL_TYPE_KEY).value == PAYMENTS_KEY
    side = app.dataframe[1].value.set_index("field")
    assert side.loc["detail.purpose"].tolist() == ["string", "string", sd.ABSENT]
    deps = app.dataframe[2].value
    assert set(deps["status"]) == {"missing", "ok"}
    assert DOWNLOAD_KEY in {button.key for button in app.get("download_button")}


def test_hostile_names_reach_the_page_as_text(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    """Rule names, sources, detail-types and field names come from the monitored accounts:
    every markdown the page writes must leave them inert (testkit/hostile.py)."""
    config, store = _store(tmp_path)
    at = store.query("SELECT max(started_at) AS t FROM runs WHERE collector = 'schemas'"
                     )["t"].iloc[0].to_pydatetime()
    rules = store.query("SELECT * EXCLUDE (date) FROM rules_history WHERE collected_at = ? "
                        "LIMIT 1", [at])
    schemas = store.query("SELECT * EXCLUDE (date) FROM event_schemas_history "
                          "WHERE collected_at = ? ORDER BY version LIMIT 2", [at])
    kinds = ("markdown_link", "slack_broadcast", "html_script", "autolink",
             "streamlit_directive", "markdown_emphasis")
    for index, kind in enumerate(kinds):
        source, detail_type = hostile(kind, f" s{index}"), hostile(kind, f" d{index}")
        field = hostile("markdown_image", str(index))
        pattern = {"source": [source], "detail-type": [detail_type], "detail": {field: ["x"]}}
        store.write("rules", rules.assign(rule=hostile(kind, f" r{index}"),
                                          event_pattern=json.dumps(pattern)), f"h{index}")
        store.write("event_schemas", schemas.assign(
            source=source, detail_type=detail_type, schema_name=hostile(kind),
            fields=[json.dumps({f"detail.{field}": "string"}),
                    json.dumps({f"detail.{kind}.{field}": "string"})]), f"h{index}")
    app = _run(monkeypatch, config)
    texts = [e.value for e in app.error] + [m.value for m in app.markdown]
    assert sum(f"r{i}" in text for text in texts for i in range(len(kinds))) >= len(kinds)
    assert [p for text in texts for p in markdown_problems(text)] == []


def _stock_store(tmp_path: Path) -> Path:
    config, store = _store(tmp_path)
    at = store.query("SELECT max(started_at) AS t FROM runs WHERE collector = 'schemas'"
                     )["t"].iloc[0].to_pydatetime()
    add_stock_drift(store, at)
    return config


def _texts(app: AppTest) -> str:
    return "\n".join([str(e.value) for e in (*app.info, *app.caption, *app.markdown)]
                     ).replace("\\", "")


def test_an_alerts_link_names_its_rule_and_selects_the_detail_type_that_breaks_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The schema_breaking_change button's parameters (alerts/slack.py): the picker opens on
    the rule's broken detail-type, not on the one listed first; a later pick is the
    reader's."""
    config = _stock_store(tmp_path)
    account, bus, rule = STOCK_RULE
    assert _run(monkeypatch, config).selectbox(key=DETAIL_TYPE_KEY).value == PAYMENTS_KEY
    app = _run(monkeypatch, config, {"account": account, "region": "us-east-1", "bus": bus,
                                     "rule": rule, "detail_type": "Stock Reserved"})
    assert app.selectbox(key=DETAIL_TYPE_KEY).value == STOCK_KEY
    info = app.info[0].value.replace("\\", "")
    name = next(n for i, n, _, _ in ORG if i == account)
    assert f"alert about rule **{rule}** (bus {bus}, {name} ({account}), us-east-1)" in info
    deps = app.dataframe[-1].value
    assert deps["rule"].tolist() == [rule] and deps["status"].tolist() == ["retyped"]
    app.selectbox(key=DETAIL_TYPE_KEY).set_value(PAYMENTS_KEY).run()
    assert app.selectbox(key=DETAIL_TYPE_KEY).value == PAYMENTS_KEY
    # the rule alone is enough: its breaks name the detail-type
    alone = _run(monkeypatch, config, {"rule": rule})
    assert alone.selectbox(key=DETAIL_TYPE_KEY).value == STOCK_KEY


@pytest.mark.parametrize("link", [
    {"rule": "no-such-rule", "account": CENTRAL},
    {"rule": STOCK_RULE[2], "detail_type": "Payment Processed"},
    {"rule": STOCK_RULE[2], "bus": "central-bus"},
])
def test_a_link_that_matches_nothing_says_so_and_shows_the_page_as_usual(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, link: dict[str, str]) -> None:
    app = _run(monkeypatch, _stock_store(tmp_path), link)
    assert f"The link names rule **{link['rule']}**" in _texts(app)
    assert "matches it now" in _texts(app) and not app.info
    assert app.selectbox(key=DETAIL_TYPE_KEY).value == PAYMENTS_KEY
    assert f"{BROKEN_RULES + 1} rules will go silent" in app.error[0].value


@pytest.mark.parametrize("kind", ["markdown_link", "html_script", "streamlit_directive",
                                  "markdown_emphasis", "autolink"])
def test_a_hostile_link_is_shown_as_text(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                         kind: str) -> None:
    """Anyone can write a link: its values reach the page as text."""
    config, _ = _store(tmp_path)
    app = _run(monkeypatch, config, {"rule": hostile(kind, " r"), "bus": hostile(kind, " b"),
                                     "account": hostile(kind, " a"),
                                     "detail_type": hostile(kind, " d")})
    captions = [str(c.value) for c in app.caption if "The link names rule" in str(c.value)]
    assert len(captions) == 1
    assert markdown_problems(captions[0]) == []


def test_missing_values_read_as_a_dash_under_human_headings(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The newest version of Payment Processed has no detail.purpose: its type reads as the
    dash the captions explain, never None; headings are words, not column names."""
    config, store = _store(tmp_path)
    deps = sd.dependencies_of(sd.drift(store, Filters()), PAYMENTS_KEY, {})
    assert deps.loc[deps["status"] == "missing", "newest_type"].unique().tolist() == \
        [sd.ABSENT]
    assert deps["newest_type"].notna().all()
    app = _run(monkeypatch, config)
    breaks, _, shown = (t.value for t in app.dataframe)
    assert breaks["moved_to"].notna().all() and shown["newest_type"].notna().all()
    headings = {c: json.loads(t.proto.columns) for c, t in zip(
        ("breaks", "side", "deps"), app.dataframe, strict=True)}
    assert headings["deps"]["newest_type"]["label"] == "Newest type"
    assert headings["breaks"]["detail_type"]["label"] == "Detail-type"
    assert headings["side"]["field"]["label"] == "Field"
    assert f"{sd.ABSENT}: that version does not send the field" in _texts(app)
