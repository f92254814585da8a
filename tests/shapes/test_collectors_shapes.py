"""Every collector against every shape AWS's API models allow (botocore's service models):
optional members absent and present, enums, hostile text. No exception, every frame within
its dataset's contract, and nothing AWS said dropped without a log line.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.rule import AccountInfo, AlertInputs
from alerts.rules import evaluate as evaluate_alerts
from heal.policy import plan, rule_facts
from orgscope import plugins
from orgscope.accounts import Account
from orgscope.collect import CollectContext, Collected, Collector, Frames, Window
from orgscope.config import Config
from orgscope.datasets import HEAL_ACTIONS, VERDICTS
from orgscope.health.model import evaluate
from orgscope.ownership import rule_teams
from orgscope.plugins import load_config
from orgscope.schema_drift import SchemaContentError, schema_fields
from testkit import synthetic as sy
from tests.conftest import REFERENCE_CONFIG
from tests.shapes.answers import HOOKS, count_spans
from tests.shapes.model_client import ModelClient

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
ACCOUNT = Account("400000000003", "berth-planning", "berths")
SHAPES = settings(max_examples=50, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@cache
def reference() -> Config:
    """The reference config, with the metrics back-fill one chunk long (the shapes matter
    here, not the number of chunks)."""
    config = load_config(REFERENCE_CONFIG)
    return config.with_collector("metrics", backfill=timedelta(minutes=30))


def run(collector: Collector, config: Config, data: st.DataObject,
        inputs: dict[str, pd.DataFrame] | None = None) -> tuple[Frames, dict[str, ModelClient]]:
    clients: dict[str, ModelClient] = {}

    def client(service: str) -> ModelClient:
        return clients.setdefault(service, ModelClient(service, data.draw,
                                                       HOOKS.get(service, {})))

    settings_ = config.collector(collector.name)
    ctx = CollectContext(
        account=ACCOUNT, region="eu-west-1",
        window=Window(NOW - settings_.interval, NOW), collected_at=NOW,
        client_factory=client, settings=settings_, inputs=inputs or {},
        watermark=None)
    returned = collector.fn(ctx)
    frames = returned.frames if isinstance(returned, Collected) else returned
    for dataset in collector.datasets:
        dataset.to_table(frames.get(dataset.name, dataset.empty_frame()))  # the contract
    return frames, clients


def _json_or_absent(text: Any) -> bool:
    """An EventPattern the inventory keeps: absent or empty (no pattern), or JSON."""
    if not text:
        return True
    try:
        json.loads(text)
    except (TypeError, ValueError):
        return False
    return True


@SHAPES
@given(st.data())
def test_inventory_keeps_every_rule_aws_listed(data: st.DataObject) -> None:
    frames, clients = run(plugins.collector("inventory"), reference(), data)
    events = clients["events"]
    buses = [b for page in events.said("list_event_buses") for b in page.get("EventBuses", [])]
    listed = [r for page in events.said("list_rules") for r in page.get("Rules", [])]
    storable = [r for r in listed
                if isinstance(r.get("Name"), str) and _json_or_absent(r.get("EventPattern"))]
    rules = frames["rules"]
    assert len(rules) == len(storable)
    assert len(frames["event_buses"]) == len([b for b in buses if "Name" in b])
    scheduled = [r for r in storable if r.get("ScheduleExpression") is not None]
    assert int(rules["schedule_expression"].notna().sum()) == len(scheduled)


@SHAPES
@given(st.data())
def test_xray_keeps_every_span_of_every_readable_document(data: st.DataObject) -> None:
    frames, clients = run(plugins.collector("xray"), reference(), data)
    documents = []
    for page in clients["xray"].said("batch_get_traces"):
        for trace in page.get("Traces", []):
            for segment in trace.get("Segments", []):
                try:
                    documents.append(json.loads(segment.get("Document", "")))
                except ValueError:
                    continue  # not JSON: logged and skipped
    assert len(frames["spans"]) == sum(count_spans(d) for d in documents
                                       if isinstance(d, dict))


def _readable(content: Any) -> bool:
    try:
        schema_fields(content)
    except SchemaContentError:
        return False
    return True


@SHAPES
@given(st.data())
def test_schemas_keeps_every_readable_version_of_a_discovering_account(
        data: st.DataObject) -> None:
    frames, clients = run(plugins.collector("schemas"), reference(), data)
    schemas = clients["schemas"]
    started = any(d.get("State") == "STARTED" for page in schemas.said("list_discoverers")
                  for d in page.get("Discoverers", []))
    described = schemas.said("describe_schema")
    readable = [a for a in described if "SchemaVersion" in a and _readable(a.get("Content"))]
    assert len(frames["event_schemas"]) == len(readable)
    assert started or described == []


@SHAPES
@given(st.data())
def test_metrics_dlq_xray_otel_cost_take_any_answer(data: st.DataObject) -> None:
    config = reference()
    inventory, _ = run(plugins.collector("inventory"), config, data)
    inputs = {"rules": inventory["rules"], "event_buses": inventory["event_buses"],
              "cost_daily": plugins.collector("cost").datasets[0].empty_frame(),
              "cost_resources": plugins.collector("cost").datasets[1].empty_frame()}
    for name in ("metrics", "dlq", "xray", "otel", "cost"):
        collector = plugins.collector(name)
        run(collector, config, data, {k: inputs[k] for k in collector.inputs})


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_whatever_aws_said_every_rule_gets_a_verdict_an_alert_decision_and_a_heal_plan(
        data: st.DataObject) -> None:
    """The collectors' frames from drawn answers through the health model, the alert rules
    and auto-heal's policy: no exception, and every rule inventoried is judged."""
    config = reference()
    inventory, _ = run(plugins.collector("inventory"), config, data)
    rules = inventory["rules"]
    metrics, _ = run(plugins.collector("metrics"), config, data,
                     {"rules": rules, "event_buses": inventory["event_buses"]})
    dlq, _ = run(plugins.collector("dlq"), config, data, {"rules": rules})
    accounts = sy.accounts({ACCOUNT.id: ACCOUNT.name}, NOW)
    runs = sy.runs([(ACCOUNT.id, "eu-west-1")], NOW)
    verdicts = evaluate(rules, metrics["event_metrics"], dlq["dlq_depth"], accounts, runs,
                        inventory["event_buses"], NOW, config.health)
    keys = ["account_id", "region", "bus", "rule"]
    judged = set(verdicts[keys].itertuples(index=False, name=None))
    listed = set(rules.assign(bus=rules["bus"].fillna("default"))[keys].itertuples(
        index=False, name=None))
    assert judged == listed
    assert set(verdicts["verdict"]) <= set(VERDICTS)
    inputs = AlertInputs(rule_health=verdicts, runs=pd.DataFrame(), latency={},
                         anomalies=pd.DataFrame(), forecast=pd.DataFrame(),
                         heal_actions=pd.DataFrame(columns=HEAL_ACTIONS.columns),
                         accounts={ACCOUNT.id: AccountInfo(ACCOUNT.name, ACCOUNT.team)},
                         rule_teams=rule_teams(rules))
    alerts = evaluate_alerts(inputs, config, NOW, "2026-12")
    assert {c.labels["rule"] for c in alerts.conditions if c.labels.get("rule")} <= \
        {rule for *_, rule in listed}
    facts = rule_facts(rules, pd.DataFrame(columns=[*keys, "first_seen_at", "last_enabled_at",
                                                    "disabled_since"]))
    decided = plan(facts, len(rules), pd.DataFrame(columns=HEAL_ACTIONS.columns),
                   config.heal.model_copy(update={"enabled": True}), now=NOW, dry_run=True)
    disabled = rules[rules["state"] == "DISABLED"]
    assert len(facts) == len(disabled)
    if decided.maintenance:  # one organization-wide skip
        assert [d.key for d in decided.decisions] == [None]
    else:  # one decision per DISABLED rule; never seen ENABLED, none is re-enabled
        assert sorted(d.key for d in decided.decisions if d.key) == sorted(f.key for f in facts)
        assert all(d.action == "skip" for d in decided.decisions)
