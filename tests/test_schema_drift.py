"""Schema drift: schema content as fields, versions diffed, patterns crossed with versions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orgscope.schema_drift import (
    BREAK_COLUMNS,
    FieldChange,
    SchemaContentError,
    breaking_changes,
    diff_fields,
    field_status,
    fields_json,
    pattern_tests,
    rule_dependencies,
    schema_fields,
    schema_versions,
)

T0 = datetime(2024, 2, 29, 23, 55, tzinfo=UTC)  # a leap day, minutes before a month ends

#: The shape EventBridge's discoverer writes (OpenAPI 3, AWSEvent + one component per object),
#: modelled on the discovered schema of aws.ec2's "EC2 Instance State-change Notification".
EC2_OPENAPI = {
    "openapi": "3.0.0",
    "info": {"version": "1.0.0", "title": "EC2InstanceStateChangeNotification"},
    "paths": {},
    "components": {"schemas": {
        "AWSEvent": {
            "type": "object",
            "required": ["detail-type", "resources", "detail", "id", "source", "time",
                         "region", "version", "account"],
            "x-amazon-events-detail-type": "EC2 Instance State-change Notification",
            "x-amazon-events-source": "aws.ec2",
            "properties": {
                "detail": {"$ref": "#/components/schemas/EC2InstanceStateChangeNotification"},
                "account": {"type": "string"}, "detail-type": {"type": "string"},
                "id": {"type": "string"}, "region": {"type": "string"},
                "resources": {"type": "array", "items": {"type": "string"}},
                "source": {"type": "string"}, "time": {"type": "string",
                                                       "format": "date-time"},
                "version": {"type": "string"}}},
        "EC2InstanceStateChangeNotification": {
            "type": "object", "required": ["instance-id", "state"],
            "properties": {"instance-id": {"type": "string"}, "state": {"type": "string"},
                           "tags": {"type": "array", "items": {"type": "string"}},
                           "placement": {"$ref": "#/components/schemas/Placement"},
                           "cpu": {"type": "integer"}}},
        "Placement": {"type": "object",
                      "properties": {"zone": {"type": "string"}, "spot": {"type": "boolean"}}},
    }},
}

DRAFT4 = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "type": "object", "x-amazon-events-source": "shop.orders",
    "x-amazon-events-detail-type": "Order Placed",
    "properties": {"source": {"type": "string"},
                   "detail": {"$ref": "#/definitions/Detail"}},
    "definitions": {"Detail": {"type": "object", "properties": {
        "total": {"type": ["number", "null"]},
        "lines": {"type": "array", "items": {"$ref": "#/definitions/Line"}}}},
        "Line": {"type": "object", "properties": {"sku": {"type": "string"}}}},
}


def test_openapi_content_as_aws_discovers_it() -> None:
    parsed = schema_fields(json.dumps(EC2_OPENAPI))
    assert parsed.source == "aws.ec2"
    assert parsed.detail_type == "EC2 Instance State-change Notification"
    assert parsed.fields == {"detail.instance-id": "string", "detail.state": "string",
                             "detail.tags": "array<string>", "detail.placement.zone": "string",
                             "detail.placement.spot": "boolean", "detail.cpu": "integer"}


def test_jsonschema_draft4_content() -> None:
    parsed = schema_fields(json.dumps(DRAFT4))
    assert (parsed.source, parsed.detail_type) == ("shop.orders", "Order Placed")
    assert parsed.fields == {"detail.total": "number", "detail.lines.sku": "array<string>"}


@pytest.mark.parametrize("content", [
    "not json", "[]", json.dumps({"openapi": "2.0"}), json.dumps({"openapi": "3.0.0"}),
    json.dumps({"openapi": "3.0.0", "components": {"schemas": {"X": {"type": "object"}}}}),
    json.dumps({"openapi": "3.0.0", "components": {"schemas": {"AWSEvent": {
        "properties": {"detail": {"$ref": "#/components/schemas/Gone"}}}}}}),
    json.dumps({"openapi": "3.0.0", "components": {"schemas": {"AWSEvent": {
        "properties": {"detail": {"$ref": "#/components/schemas/AWSEvent"}}}}}}),
    json.dumps({"openapi": "3.0.0", "components": {"schemas": {"AWSEvent": {
        "properties": {"detail": {"$ref": "https://evil.example/x"}}}}}}),
])
def test_unreadable_content_raises_its_own_error(content: str) -> None:
    with pytest.raises(SchemaContentError):
        schema_fields(content)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.sampled_from(["openapi", "components", "schemas",
                                                       "AWSEvent", "properties", "detail",
                                                       "$ref", "type", "items", "$schema",
                                                       "#/components/schemas/AWSEvent"]),
                                      inner, max_size=4), max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_malformed_content_never_raises_anything_else(document: Any) -> None:
    try:
        parsed = schema_fields(json.dumps(document))
    except SchemaContentError:
        return
    assert all(path.startswith("detail") for path in parsed.fields)


def test_diff_names_added_removed_retyped_and_moved() -> None:
    old = {"detail.purpose": "string", "detail.amount": "number", "detail.id": "string",
           "detail.note": "string"}
    new = {"detail.context.purpose": "string", "detail.amount": "string",
           "detail.id": "string", "detail.currency": "string"}
    assert diff_fields(old, new) == [
        FieldChange("added", "detail.currency", None, "string"),
        FieldChange("moved", "detail.context.purpose", "string", "string", "detail.purpose"),
        FieldChange("removed", "detail.note", "string", None),
        FieldChange("retyped", "detail.amount", "number", "string"),
    ]
    assert diff_fields(new, new) == []


def test_a_field_gone_with_another_type_elsewhere_is_not_moved() -> None:
    changes = diff_fields({"detail.purpose": "string"}, {"detail.context.purpose": "integer"})
    assert [c.kind for c in changes] == ["added", "removed"]


def test_pattern_tests_and_the_types_they_match() -> None:
    pattern = {"source": ["shop"], "detail-type": ["Order Placed"], "account": ["1"],
               "detail": {"status": ["PENDING"], "total": [{"numeric": [">=", 100]}],
                          "method": [{"anything-but": ["GIFT_CARD"]}],
                          "plan": {"features": [{"prefix": "prio"}]},
                          "gone": [{"exists": False}], "present": [{"exists": True}],
                          "flag": [True], "mixed": ["a", 1],
                          "$or": [{"x": ["1"]}]}}
    tests = {t.path: t.types for t in pattern_tests(json.dumps(pattern))}
    assert tests == {"detail.status": {"string"}, "detail.total": {"number"},
                     "detail.method": {"string"}, "detail.plan.features": {"string"},
                     "detail.present": {"any"}, "detail.flag": {"boolean"},
                     "detail.mixed": {"string", "number"}}
    assert pattern_tests(None) == [] and pattern_tests("{not json") == []
    assert pattern_tests(json.dumps({"source": ["shop"]})) == []


def test_field_status_reads_arrays_integers_and_objects() -> None:
    (features,) = pattern_tests(json.dumps({"detail": {"features": ["a"]}}))
    (total,) = pattern_tests(json.dumps({"detail": {"total": [{"numeric": [">", 1]}]}}))
    (plan,) = pattern_tests(json.dumps({"detail": {"plan": ["plus"]}}))
    assert field_status(features, {"detail.features": "array<string>"}) == \
        ("ok", "array<string>")
    assert field_status(total, {"detail.total": "integer"}) == ("ok", "integer")
    assert field_status(total, {"detail.total": "string"}) == ("retyped", "string")
    assert field_status(plan, {"detail.plan.id": "string"}) == ("retyped", "object")
    assert field_status(plan, {}) == ("missing", None)


def schema_rows(versions: list[dict[str, str]], *, account: str = "121212121212",
                source: str = "shop.payments", detail_type: str = "Payment Processed",
                start: datetime = T0) -> list[dict[str, Any]]:
    return [{"account_id": account, "region": "us-east-1", "source": source,
             "detail_type": detail_type, "version": str(number),
             "version_created": start + timedelta(minutes=number),
             "fields": fields_json(fields)}
            for number, fields in enumerate(versions, start=1)]


def rule_row(name: str, pattern: dict[str, Any], account: str = "777777777777"
             ) -> dict[str, Any]:
    return {"account_id": account, "region": "us-east-1", "bus": "default", "rule": name,
            "event_pattern": json.dumps(pattern)}


V1 = {"detail.purpose": "string", "detail.amount": "number"}
V2 = {**V1, "detail.currency": "string"}
V3 = {"detail.context.purpose": "string", "detail.amount": "number", "detail.currency": "string"}
PAYMENTS = {"source": ["shop.payments"], "detail-type": ["Payment Processed"]}


def test_a_moved_field_breaks_the_rules_matching_on_it() -> None:
    schemas = pd.DataFrame(schema_rows([V1, V2, V3]))
    rules = pd.DataFrame([
        rule_row("by-purpose", {**PAYMENTS, "detail": {"purpose": ["order"]}}),
        rule_row("by-amount", {**PAYMENTS, "detail": {"amount": [{"numeric": [">", 0]}]}}),
        rule_row("by-prefix", {"source": [{"prefix": "shop."}],
                               "detail": {"purpose": ["subscription"]}}),
        rule_row("other-type", {"source": ["shop.payments"], "detail-type": ["Payment Failed"],
                                "detail": {"purpose": ["order"]}}),
        rule_row("never-sent", {**PAYMENTS, "detail": {"channel": ["web"]}}),
    ])
    found = breaking_changes(rules, schemas, {"shop.payments": ["999999999999"]})
    assert list(found.columns) == list(BREAK_COLUMNS)
    assert sorted(found.rule) == ["by-prefix", "by-purpose"]
    row = found[found.rule == "by-purpose"].iloc[0]
    assert (row.field, row.change, row.moved_to) == ("detail.purpose", "moved",
                                                     "detail.context.purpose")
    assert (row.from_version, row.to_version, row.newest_version) == ("2", "3", "3")
    assert row.producers == "999999999999"
    assert row.to_version_created == T0 + timedelta(minutes=3)
    statuses = rule_dependencies(rules, schemas).set_index("rule").status.to_dict()
    assert statuses == {"by-purpose": "missing", "by-amount": "ok", "by-prefix": "missing",
                        "never-sent": "never sent"}


def test_a_retyped_field_breaks_and_a_compatible_one_does_not() -> None:
    schemas = pd.DataFrame(schema_rows([{"detail.total": "number"},
                                        {"detail.total": "string"}]))
    numeric = rule_row("numeric", {**PAYMENTS, "detail": {"total": [{"numeric": [">", 5]}]}})
    exists = rule_row("exists", {**PAYMENTS, "detail": {"total": [{"exists": True}]}})
    found = breaking_changes(pd.DataFrame([numeric, exists]), schemas)
    assert found[["rule", "change", "old_type", "new_type"]].values.tolist() == [
        ["numeric", "retyped", "number", "string"]]


def test_the_registry_that_saw_the_newest_version_wins() -> None:
    """A bus downstream of the rule that stopped matching never sees the new shape."""
    upstream = schema_rows([V1, V2, V3], account="121212121212")
    downstream = schema_rows([V1, V2], account="777777777777",
                             start=T0 + timedelta(minutes=30))
    schemas = pd.DataFrame([*upstream, *downstream])
    schemas.loc[len(upstream):, "version_created"] = [T0 - timedelta(days=1), T0]
    rules = pd.DataFrame([rule_row("by-purpose", {**PAYMENTS, "detail": {"purpose": ["x"]}})])
    found = breaking_changes(rules, schemas)
    assert found.schema_account_id.tolist() == ["121212121212"]


def test_no_schemas_or_no_rules_find_nothing() -> None:
    rules = pd.DataFrame([rule_row("r", {**PAYMENTS, "detail": {"purpose": ["x"]}})])
    assert breaking_changes(rules, pd.DataFrame()).empty
    assert breaking_changes(pd.DataFrame(), pd.DataFrame(schema_rows([V1, V3]))).empty
    unreadable = pd.DataFrame(schema_rows([V1, V3]))
    unreadable["fields"] = ["{not json", None]
    assert breaking_changes(rules, unreadable).empty


def test_registries_of_one_account_in_two_regions_are_not_mixed() -> None:
    east = schema_rows([V1, V2, V3])
    west = [{**row, "region": "eu-west-1"} for row in schema_rows([V1])]
    groups = schema_versions(pd.DataFrame([*east, *west]))
    assert [(g.region, [v for v, _, _ in g.items]) for g in groups] == [
        ("eu-west-1", ["1"]), ("us-east-1", ["1", "2", "3"])]
    rules = pd.DataFrame([rule_row("by-purpose", {**PAYMENTS, "detail": {"purpose": ["x"]}})])
    found = breaking_changes(rules, pd.DataFrame([*east, *west]))
    assert found[["schema_region", "to_version"]].values.tolist() == [["us-east-1", "3"]]
