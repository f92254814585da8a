"""The simulator's Schemas API: botocore's output shapes and AWS's errors, behind the IAM gate;
discovery from the traffic model; and a producer's canary raising schema_breaking_change
before the affected rules' traffic drops."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.session
import pandas as pd
import pytest
from botocore.exceptions import ClientError
from botocore.parsers import RestJSONParser

from alerts.rule import AccountInfo, AlertInputs, Condition
from alerts.rules import evaluate
from collectors.inventory import INVENTORY
from collectors.schemas import SCHEMAS
from orgscope.datasets import all_datasets
from orgscope.runner import Runner
from orgscope.schema_drift import schema_fields
from orgscope.schema_io import accounts_frame, read_breaking_changes
from orgscope.store import Store
from orgscope.wiring import session_factory
from sim.discovery import REGISTRY, SchemaRegistry
from sim.schemas_api import ApiError, answer
from tests.sim.conftest import Running
from tests.sim.test_sim_org import BUS, CENTRAL, PAYMENTS, matched_events

T0 = datetime(2028, 2, 29, 23, 58, tzinfo=UTC)
EVENT = {"source": "shop.payments", "detail-type": "Payment Processed", "account": "2",
         "detail": {"purpose": "order", "amount": 4.5, "plan": {"id": "x", "tags": ["a"]}}}
ORDERS = "777777777777"
PAYMENT_RULES = ("payment-processed-to-subscriptions", "payment-events-to-order-processing")


def _operation(name: str) -> Any:
    return botocore.session.get_session().get_service_model("schemas").operation_model(name)


def parsed(name: str, status: int, body: dict[str, Any],
           headers: dict[str, str] | None = None) -> dict[str, Any]:
    """``body`` as botocore parses it for operation ``name``."""
    response = {"status_code": status, "headers": headers or {},
                "body": json.dumps(body).encode()}
    result: dict[str, Any] = RestJSONParser().parse(response, _operation(name).output_shape)
    return result


def unknown_members(shape: Any, value: Any) -> list[str]:
    """Keys of ``value`` (a body as sent) that ``shape`` does not declare under that wire name
    (``tags``, not ``Tags``), recursively."""
    if shape.type_name == "structure" and isinstance(value, dict):
        wire = {m.serialization.get("name", n): m for n, m in shape.members.items()}
        found = [k for k in value if k not in wire]
        for key, item in value.items():
            if key in wire:
                found += unknown_members(wire[key], item)
        return found
    if shape.type_name == "list" and isinstance(value, list):
        return [k for item in value for k in unknown_members(shape.member, item)]
    return []


@pytest.fixture
def registry() -> SchemaRegistry:
    found = SchemaRegistry()
    found.add_discoverer(CENTRAL, "us-east-1", BUS)
    assert found.observe(CENTRAL, "us-east-1", BUS, EVENT, T0) == "1"
    assert found.observe(CENTRAL, "us-east-1", BUS, EVENT, T0 + timedelta(minutes=1)) is None
    moved = {**EVENT, "detail": {"context": {"purpose": "order"}, "amount": 4.5}}
    assert found.observe(CENTRAL, "us-east-1", BUS, moved, T0 + timedelta(minutes=2)) == "2"
    return found


SCHEMA = "shop.payments@PaymentProcessed"
CALLS = [
    ("ListDiscoverers", "/v1/discoverers", {}),
    ("ListSchemas", f"/v1/registries/name/{REGISTRY}/schemas", {}),
    ("ListSchemaVersions", f"/v1/registries/name/{REGISTRY}/schemas/name/{SCHEMA}/versions", {}),
    ("DescribeSchema", f"/v1/registries/name/{REGISTRY}/schemas/name/{SCHEMA}",
     {"schemaVersion": "1"}),
]


@pytest.mark.parametrize(("operation", "path", "params"), CALLS)
def test_answers_have_botocores_output_shapes(registry: SchemaRegistry, operation: str,
                                              path: str, params: dict[str, str]) -> None:
    body = answer(registry, CENTRAL, "us-east-1", "GET", path, params=params)
    shape = _operation(operation).output_shape
    assert unknown_members(shape, body) == []
    assert set(shape.required_members) <= set(body)
    result = parsed(operation, 200, body)
    wire = {m.serialization.get("name", n): n for n, m in shape.members.items()}
    assert set(result) - {"ResponseMetadata"} == {wire[k] for k in body}


def test_describe_reads_back_as_an_event_schema(registry: SchemaRegistry) -> None:
    path = f"/v1/registries/name/{REGISTRY}/schemas/name/{SCHEMA}"
    newest = parsed("DescribeSchema", 200, answer(registry, CENTRAL, "us-east-1", "GET", path,
                                                  params={}))
    assert newest["SchemaVersion"] == "2"
    assert newest["VersionCreatedDate"] == T0 + timedelta(minutes=2)
    assert schema_fields(newest["Content"]).fields == {"detail.amount": "number",
                                                       "detail.context.purpose": "string"}
    first = answer(registry, CENTRAL, "us-east-1", "GET", path, params={"schemaVersion": "1"})
    assert schema_fields(first["Content"]).fields == {
        "detail.amount": "number", "detail.purpose": "string", "detail.plan.id": "string",
        "detail.plan.tags": "array<string>"}


def test_pages_follow_next_token(registry: SchemaRegistry) -> None:
    path = f"/v1/registries/name/{REGISTRY}/schemas/name/{SCHEMA}/versions"
    first = answer(registry, CENTRAL, "us-east-1", "GET", path, params={"limit": "1"})
    second = answer(registry, CENTRAL, "us-east-1", "GET", path,
                    params={"limit": "1", "nextToken": first["NextToken"]})
    assert [v["SchemaVersion"] for v in first["SchemaVersions"] + second["SchemaVersions"]] \
        == ["1", "2"]
    assert "NextToken" not in second


@pytest.mark.parametrize(("account", "path", "params"), [
    ("111111111111", f"/v1/registries/name/{REGISTRY}/schemas", {}),
    (CENTRAL, "/v1/registries/name/custom/schemas", {}),
    (CENTRAL, f"/v1/registries/name/{REGISTRY}/schemas/name/nope/versions", {}),
    (CENTRAL, f"/v1/registries/name/{REGISTRY}/schemas/name/{SCHEMA}", {"schemaVersion": "9"}),
])
def test_what_does_not_exist_is_not_found(registry: SchemaRegistry, account: str, path: str,
                                          params: dict[str, str]) -> None:
    with pytest.raises(ApiError) as caught:
        answer(registry, account, "us-east-1", "GET", path, params=params)
    error = caught.value
    assert (error.status, error.code) == ("404 Not Found", "NotFoundException")


def test_a_discoverer_without_cross_account_ignores_other_accounts_events() -> None:
    found = SchemaRegistry()
    found.add_discoverer(ORDERS, "us-east-1", "default", cross_account=False)
    assert found.observe(ORDERS, "us-east-1", "default", EVENT, T0) is None
    assert found.observe(ORDERS, "us-east-1", "default", {**EVENT, "account": ORDERS}, T0) == "1"
    assert found.observe(ORDERS, "us-east-1", BUS, {**EVENT, "account": ORDERS}, T0) is None


# --- through the running simulator ------------------------------------------------------------


@pytest.mark.integration
def test_the_read_role_reads_discovery_where_it_is_on(running: Running) -> None:
    factory = running.factory()
    central = factory.client(CENTRAL, "schemas", "us-east-1")
    (discoverer,) = central.list_discoverers()["Discoverers"]
    assert discoverer["State"] == "STARTED" and discoverer["CrossAccount"] is True
    assert discoverer["SourceArn"].endswith(f":{CENTRAL}:event-bus/{BUS}")
    names = [s["SchemaName"] for s in central.list_schemas(RegistryName=REGISTRY)["Schemas"]]
    assert "quickgrocer.payment-service@PaymentProcessed" in names
    versions = central.list_schema_versions(
        RegistryName=REGISTRY, SchemaName="quickgrocer.payment-service@PaymentProcessed")
    assert [v["SchemaVersion"] for v in versions["SchemaVersions"]] == ["1", "2"]
    other = factory.client("111111111111", "schemas", "us-east-1")
    assert other.list_discoverers()["Discoverers"] == []
    with pytest.raises(ClientError) as caught:
        other.list_schemas(RegistryName=REGISTRY)
    assert caught.value.response["Error"]["Code"] == "NotFoundException"


@pytest.mark.integration
def test_the_gate_refuses_a_read_role_without_the_schemas_actions(running: Running) -> None:
    running.org.withhold_actions(CENTRAL, ["schemas:DescribeSchema"])
    try:
        client = running.factory().client(CENTRAL, "schemas", "us-east-1")
        client.list_discoverers()
        with pytest.raises(ClientError) as caught:
            client.describe_schema(RegistryName=REGISTRY,
                                   SchemaName="quickgrocer.payment-service@PaymentProcessed")
        assert caught.value.response["Error"]["Code"] == "AccessDeniedException"
        assert "schemas:DescribeSchema" in caught.value.response["Error"]["Message"]
    finally:
        running.org.repair_account(CENTRAL)


def _share(running: Running, account: str, bus: str, rule: str, start: datetime,
           end: datetime) -> float:
    """The rule's matched events per event payment-service put in [start, end): unlike a rate
    per minute, not moved by the daily traffic shape (the evening's decline alone is 16 % over
    twenty minutes)."""
    cloudwatch = running.org.admin.client(PAYMENTS, "cloudwatch")
    response = cloudwatch.get_metric_statistics(
        Namespace="AWS/Events", MetricName="PutEventsEntriesCount", Dimensions=[],
        StartTime=start, EndTime=end, Period=60, Statistics=["Sum"])
    put = sum(point["Sum"] for point in response["Datapoints"])
    assert put > 0
    return matched_events(running, account, bus, rule, start, end) / put


@pytest.mark.integration
def test_a_canary_is_alerted_before_the_rules_traffic_drops(running: Running,
                                                            tmp_path: Path) -> None:
    store = Store(str(tmp_path / "store"), all_datasets())
    runner = Runner(running.config, session_factory(running.config), store)  # counts calls
    infos = {a.id: AccountInfo(a.name, a.team) for a in running.config.accounts}
    accounts = accounts_frame({k: (v.name, v.team) for k, v in infos.items()})

    def alerts() -> list[Condition]:
        assert [r.error for r in runner.run_cycle([INVENTORY, SCHEMAS]).failed] == []
        breaks = read_breaking_changes(store, accounts)
        inputs = AlertInputs(rule_health=pd.DataFrame(), runs=pd.DataFrame(), latency={},
                             anomalies=pd.DataFrame(), forecast=pd.DataFrame(),
                             heal_actions=pd.DataFrame(), accounts=infos,
                             schema_breaks=breaks)
        now = running.now
        return [c for c in evaluate(inputs, running.config, now, now.strftime("%Y-%m"))
                .conditions if c.alert_name == "schema_breaking_change"]

    assert alerts() == []  # versions 1 and 2 (currency added) break nothing
    before_start, canary_start = running.advance(10)
    running.org.add_rollout("payments-context", 0.1, canary_start)
    _, canary_end = running.advance(10)
    found = alerts()
    # both routes matching on detail.purpose: their central rule and their team's rule
    assert sorted((c.labels["rule"], c.labels["bus"]) for c in found) == \
        sorted((rule, bus) for rule in PAYMENT_RULES for bus in (BUS, "default"))
    summaries = [c.summary for c in found]
    calls = store.query("SELECT api_calls_by_operation FROM runs WHERE collector = 'schemas' "
                        "AND account_id = ? ORDER BY started_at", [CENTRAL])
    first, second = (json.loads(text) for text in calls["api_calls_by_operation"])
    assert first["schemas:DescribeSchema"] >= 8  # every version of every detail-type
    assert second["schemas:DescribeSchema"] == 1  # only the new version 3
    assert all("version 3 moved detail.purpose to detail.context.purpose (version 2" in s
               and f"producer account payment-service ({PAYMENTS})" in s for s in summaries)
    # the busier rule (order payments, ~50 a minute at peak, ~6 at night): its share of what
    # payment-service puts is ~0.95 before and ~0.9 x that with the 10 % canary
    before = _share(running, CENTRAL, BUS, PAYMENT_RULES[1], before_start, canary_start)
    during = _share(running, CENTRAL, BUS, PAYMENT_RULES[1], canary_start, canary_end)
    assert before > 0.8 and during >= 0.75 * before  # alerted while traffic is still flowing
    running.org.add_rollout("payments-context", 1.0, canary_end)
    _, end = running.advance(10)
    assert matched_events(running, CENTRAL, BUS, PAYMENT_RULES[0], canary_end, end) == 0
    team = _share(running, ORDERS, "default", PAYMENT_RULES[1], canary_end, end)
    assert team < 0.2 * _share(running, ORDERS, "default", PAYMENT_RULES[1], before_start,
                               canary_start)  # only Payment Failed still matches
