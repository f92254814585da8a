"""The hostile corpus (testkit/hostile.py) fed through the collectors into every output sink.

One store for the module: QuickGrocer's sample cycles, then a last cycle where the inventory
collector reads an account whose rules are named, described, tagged and patterned with every
hostile string, the otel collector reads failing spans whose service names and attributes are
hostile, the health verdicts and heal log quote them, one account's name and access error are
hostile, and the real traces and alerts steps run over all of it. Then each sink is asserted
on what comes out: the Slack bodies the alerts step queued, every page's markdown and Plotly
figures (Streamlit's AppTest), deep links, and the CSV/XLSX exports. Nothing is lost on the
way: every hostile rule and span is stored.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from alerts.step import run_alerts
from collectors.inventory import collect_inventory
from collectors.otel import OtelCollectorConfig, collect_otel
from dashboard import alerts_data as ad
from dashboard import verdicts as vd
from orgscope import processes
from orgscope.accounts import Account
from orgscope.collect import CollectContext, Window
from orgscope.cost import review
from orgscope.datasets import RULES, SPANS, all_datasets
from orgscope.plugins import load_config
from orgscope.store import Store
from orgscope.traces.update import update_traces
from orgscope.untrusted import csv_bytes
from orgscope.wiring import CONFIG_ENV, STORE_ENV
from testkit.dashboard_sample import (
    RULE_SPECS,
    UNREACHABLE_ID,
    Cycle,
    _accounts_frame,
    _buses_frame,
    _rules_frame,
    _runs_frame,
    fill_org_store,
    write_config,
)
from testkit.hostile import (
    CORPUS,
    export_problems,
    markdown_problems,
    plotly_problems,
    slack_problems,
)
from tests.alerts.alert_frames import heal, heal_action, health, verdict
from tests.collectors.test_otel import FakeLogs

APP = str(processes.APP)
BASE_URL = "http://localhost:8501"
HOSTILE_ACCOUNT = Account("666666666666", "inventory-mgmt", "inventory")
REGION = "us-east-1"
BUS = "default"
#: Kinds whose string becomes a rule's name, description, pattern source and tag: all but
#: invalid UTF-8, which botocore cannot return (it decodes AWS's answers strictly; a surrogate
#: reaching the store fails the whole frame's write, see the report of #13).
KINDS = tuple(kind for kind in CORPUS if kind != "invalid_utf8")
PAGES = ("app_pages/event_flow.py", "app_pages/traces.py", "app_pages/organization.py",
         "app_pages/alerts.py", "app_pages/collectors.py")
MARKDOWN_ELEMENTS = ("markdown", "caption", "warning", "error", "info", "success", "title",
                     "subheader", "header")


def rule_name(kind: str) -> str:
    return f"{CORPUS[kind]} #{kind}"


class FakeEvents:
    """EventBridge as the inventory collector reads it: one bus whose rules carry the
    corpus in their name, description, pattern source, target id and tags."""

    def __init__(self, region: str, account_id: str) -> None:
        self.arn = f"arn:aws:events:{region}:{account_id}:rule/{BUS}/"
        self.queue = f"arn:aws:sqs:{region}:{account_id}:hostile-target"

    def list_event_buses(self, **_: Any) -> dict[str, Any]:
        return {"EventBuses": [{"Name": BUS, "Arn": self.arn + "bus", "Policy": None}]}

    def describe_event_bus(self, **_: Any) -> dict[str, Any]:
        return {}

    def get_paginator(self, operation: str) -> Any:
        events = self

        class Paginator:
            def paginate(self, **params: Any) -> Iterator[dict[str, Any]]:
                if operation == "list_rules":
                    yield {"Rules": [events.rule(kind) for kind in KINDS]}
                else:
                    yield {"Targets": [{"Id": params["Rule"][:64], "Arn": events.queue}]}

        return Paginator()

    def rule(self, kind: str) -> dict[str, Any]:
        return {"Name": rule_name(kind), "Arn": self.arn + kind, "State": "ENABLED",
                "Description": CORPUS[kind],
                "EventPattern": json.dumps({"source": [CORPUS[kind]]})}

    def list_tags_for_resource(self, ResourceARN: str) -> dict[str, Any]:
        kind = ResourceARN.rsplit("/", 1)[-1]
        return {"Tags": [{"Key": "Owner", "Value": CORPUS.get(kind, "")}]}


def otel_events(now: datetime) -> list[dict[str, Any]]:
    """aws/spans log events: three failing entry spans a minute for 40 minutes, for each of
    two hostile services, with hostile span names and attributes."""
    services = (CORPUS["slack_link"], CORPUS["html_anchor"])
    events = []
    for minute in range(40):
        for index, service in enumerate(services):
            for n in range(3):
                start = now - timedelta(minutes=40 - minute, seconds=n * 10)
                ns = int(start.timestamp() * 1e9)
                serial = (minute * 10 + n) * 2 + index + 1
                span = {"resource": {"attributes": {"service.name": service}},
                        "traceId": f"{serial:032x}", "spanId": f"{serial:016x}",
                        "name": CORPUS["plotly_tags"], "kind": "SPAN_KIND_SERVER",
                        "startTimeUnixNano": ns, "endTimeUnixNano": ns + 250_000_000,
                        "attributes": {"http.response.status_code": 500,
                                       "http.request.method": CORPUS["formula_hyperlink"],
                                       "url.full": CORPUS["markdown_link"]},
                        "status": {"code": "STATUS_CODE_ERROR"}}
                events.append({"eventId": f"e{serial}", "timestamp": ns // 1_000_000,
                               "message": json.dumps(span)})
    return events


def context(account: Account, client: Any, now: datetime, settings: Any = None) -> CollectContext:
    return CollectContext(account=account, region=REGION,
                          window=Window(now - timedelta(hours=1), now), collected_at=now,
                          client_factory=lambda service: client, settings=settings)


@dataclass(frozen=True)
class Hostile:
    config_path: Path
    store: Store
    now: datetime


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    tmp = tmp_path_factory.mktemp("hostile")
    config_path = write_config(tmp, tmp / "data")
    config = load_config(config_path)
    store = Store(str(tmp / "data"), all_datasets())
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    fill_org_store(store, now - timedelta(minutes=10), cycles=2, unreachable_last=0)
    # the last cycle: the hostile account's inventory read by the collector itself
    cycle = Cycle(now, frozenset({UNREACHABLE_ID}))
    frames = collect_inventory(context(HOSTILE_ACCOUNT, FakeEvents(REGION, HOSTILE_ACCOUNT.id),
                                       now))
    specs = [spec for spec in RULE_SPECS if spec[0] != HOSTILE_ACCOUNT.id]
    rules = pd.concat([_rules_frame(cycle, REGION, specs), frames[RULES.name]],
                      ignore_index=True)
    store.write("rules", rules, "hostile-cycle")
    store.write("event_buses", _buses_frame(cycle, REGION), "hostile-cycle")
    accounts = _accounts_frame(cycle)
    down = accounts["account_id"] == UNREACHABLE_ID
    accounts.loc[down, "name"] = CORPUS["markdown_image"] + " " + CORPUS["slack_broadcast"]
    accounts.loc[down, "reason"] = CORPUS["html_img"] + " " + CORPUS["markdown_link"]
    store.write("accounts", accounts, "hostile-cycle")
    store.write("runs", _runs_frame(cycle, "hostile-cycle", [REGION]), "hostile-cycle")
    # spans read by the otel collector, then the real traces step
    logs = FakeLogs([otel_events(now)])
    spans = collect_otel(context(HOSTILE_ACCOUNT, logs, now, OtelCollectorConfig(
        max_spans_per_run=10_000))).frames[SPANS.name]
    store.write("spans", spans, "hostile-spans")
    update_traces(config, store, now)
    # verdicts and heal decisions quoting the hostile names, then the real alerts step twice
    # (service alerts fire after their `for`)
    verdicts = [verdict(rule_name(kind), ("FAILING", "DISABLED")[i % 2], bus=BUS,
                        account_id=HOSTILE_ACCOUNT.id, at=now,
                        reasons=[f"{CORPUS[kind]} failed", CORPUS["slack_broadcast"]])
                for i, kind in enumerate(KINDS)]
    store.write("rule_health", health(*verdicts), "hostile-health")
    row = heal_action("enable", "failed", CORPUS["slack_link"] + " " + CORPUS["bare_words"],
                      rule=rule_name("slack_broadcast"), at=now)
    row.update(disabled_by=CORPUS["slack_user_mention"], account_name=CORPUS["formula_at"])
    store.write("heal_actions", heal(row), "hostile-heal")
    run_alerts(config, store, now=now - timedelta(minutes=6), deliver=False)
    run_alerts(config, store, now=now, deliver=False)
    yield Hostile(config_path, store, now)


# --- nothing lost ----------------------------------------------------------------------------


def test_every_hostile_record_is_stored(hostile: Hostile) -> None:
    rules = hostile.store.query("SELECT rule, description FROM rules WHERE account_id = ?",
                                [HOSTILE_ACCOUNT.id])
    assert sorted(rules["rule"]) == sorted(rule_name(kind) for kind in KINDS)
    spans = hostile.store.query("SELECT count(*) AS n FROM spans")
    assert int(spans["n"].iloc[0]) == 40 * 3 * 2


# --- Slack -----------------------------------------------------------------------------------


def test_slack_bodies_page_nobody_and_link_nowhere(hostile: Hostile) -> None:
    notes = hostile.store.query("SELECT id, kind, payload FROM notifications")
    kinds = set(notes["kind"])
    assert {"firing", "heal"} <= kinds, kinds
    bodies = [json.loads(p) for p in notes["payload"]]
    every = json.dumps(bodies, ensure_ascii=False)
    for needle in ("&lt;!channel&gt;", "&lt;https://evil.example/login|Open runbook&gt;"):
        assert needle.replace("://", ":\u2060//") in every  # the hostile text is shown
    for note, body in zip(notes.to_dict("records"), bodies, strict=True):
        assert slack_problems(body, BASE_URL) == [], note["id"]


# --- pages -----------------------------------------------------------------------------------


def _open(monkeypatch: pytest.MonkeyPatch, hostile: Hostile, page: str,
          **params: str) -> AppTest:
    monkeypatch.setenv(CONFIG_ENV, str(hostile.config_path))
    monkeypatch.delenv(STORE_ENV, raising=False)
    app = AppTest.from_file(APP, default_timeout=120)
    for name, value in params.items():
        app.query_params[name] = value
    app.run()
    app.switch_page(page).run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def _markdown(app: AppTest) -> list[str]:
    texts = []
    for kind in MARKDOWN_ELEMENTS:
        texts += [str(element.value) for element in app.get(kind)]
    texts += [str(metric.label) for metric in app.metric]
    return texts


def _figures(app: AppTest) -> list[dict[str, Any]]:
    return [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]


@pytest.mark.parametrize("page", PAGES)
def test_pages_show_hostile_text_as_text(monkeypatch: pytest.MonkeyPatch, hostile: Hostile,
                                         page: str) -> None:
    app = _open(monkeypatch, hostile, page)
    problems = [(text[:80], p) for text in _markdown(app)
                for p in markdown_problems(text, BASE_URL)]
    assert problems == []
    figures = _figures(app)
    assert [p for figure in figures for p in plotly_problems(figure)] == []


def test_event_flow_and_traces_draw_the_hostile_names(monkeypatch: pytest.MonkeyPatch,
                                                      hostile: Hostile) -> None:
    """The figures do hold the hostile names (escaped): the test above saw them."""
    flow = json.dumps(_figures(_open(monkeypatch, hostile, "app_pages/event_flow.py")))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in flow
    traces = json.dumps(_figures(_open(monkeypatch, hostile, "app_pages/traces.py")))
    assert "svc&lt;br&gt;two" in traces


def test_deep_links_are_echoed_literally(monkeypatch: pytest.MonkeyPatch,
                                         hostile: Hostile) -> None:
    alerts = _open(monkeypatch, hostile, "app_pages/alerts.py",
                   alert=CORPUS["markdown_image"])
    warnings = [str(w.value) for w in alerts.warning]
    assert any("which the store does not hold" in w for w in warnings), warnings
    assert all(markdown_problems(w) == [] for w in warnings)
    traces = _open(monkeypatch, hostile, "app_pages/traces.py",
                   account=CORPUS["markdown_link"], service=CORPUS["html_script"])
    warned = [str(w.value) for w in traces.warning]
    assert any("not applied" in w for w in warned), warned
    assert all(markdown_problems(text) == [] for text in _markdown(traces))
    collectors = _open(monkeypatch, hostile, "app_pages/collectors.py", collector="inventory",
                       interval=CORPUS["markdown_link"])
    warned = [str(w.value) for w in collectors.warning]
    assert any("is not a duration" in w for w in warned), warned
    assert all(markdown_problems(w) == [] for w in warned)


# --- exports ---------------------------------------------------------------------------------


def test_exports_hold_no_formula(hostile: Hostile) -> None:
    verdicts = hostile.store.query("SELECT * FROM rule_health")
    verdicts = verdicts.assign(account=CORPUS["formula_plus"], team=CORPUS["formula_at"],
                               state="ENABLED", urgency=0)
    exports = {
        "verdicts": vd.verdict_export(verdicts),
        "rules": hostile.store.query("SELECT rule, description, tags FROM rules"),
        "spans": hostile.store.query("SELECT service, name, http_method, http_url FROM spans"),
        "heal": pd.read_csv(io.BytesIO(ad.heal_csv(hostile.store.query(
            "SELECT * EXCLUDE (date) FROM heal_actions"))), dtype=str),
    }
    for name, frame in exports.items():
        back = pd.read_csv(io.BytesIO(csv_bytes(frame)), dtype=str, keep_default_na=False)
        assert len(back) == len(frame), name  # nothing lost
        assert export_problems(back.to_numpy().ravel()) == [], name
    sheets = {name: frame.select_dtypes(exclude=["datetimetz"])  # Excel has no time zones
              for name, frame in exports.items()}
    book = openpyxl.load_workbook(io.BytesIO(review.workbook(sheets)))
    cells = [cell.value for sheet in book for row in sheet.iter_rows() for cell in row]
    assert export_problems(cells) == []
