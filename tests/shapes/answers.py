"""Hooks that make drawn AWS answers agree with their requests (tests/shapes/model_client.py):
metric results for the query ids asked, X-Ray segment documents (JSON inside a string member)
with every optional field absent and present, rules with real event patterns, Cost Explorer
groups keyed as the request grouped."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from sim.discovery import openapi_content
from tests.shapes.model_client import HOSTILE, TEXT, Hook

# W3C ids are never all zeros (a zero id is invalid and skipped, tests/traces/test_ids.py)
HEX16 = st.text(alphabet="0123456789abcdef", min_size=16, max_size=16).filter(
    lambda text: text.strip("0") != "")
HEX24 = st.text(alphabet="0123456789abcdef", min_size=24, max_size=24).filter(
    lambda text: text.strip("0") != "")
XRAY_TRACE = st.builds(lambda t, r: f"1-{t:08x}-{r}",
                       st.integers(0x60000000, 0x70000000), HEX24)
EPOCH = st.floats(1.7e9, 1.8e9, allow_nan=False)

MATCHER = st.one_of(
    TEXT, st.integers(-5, 5000), st.booleans(), st.none(),
    st.fixed_dictionaries({"prefix": TEXT}), st.fixed_dictionaries({"suffix": TEXT}),
    st.fixed_dictionaries({"anything-but": st.one_of(TEXT, st.lists(TEXT, max_size=2))}),
    st.fixed_dictionaries({"numeric": st.just([">", 0, "<=", 5000])}),
    st.fixed_dictionaries({"exists": st.booleans()}),
    st.fixed_dictionaries({"wildcard": TEXT}),
    st.fixed_dictionaries({"equals-ignore-case": TEXT}),
)
PATTERN = st.fixed_dictionaries({}, optional={
    "source": st.lists(st.one_of(TEXT, st.fixed_dictionaries({"prefix": TEXT})), max_size=2),
    "detail-type": st.lists(MATCHER, max_size=2),
    "detail": st.dictionaries(TEXT, st.lists(MATCHER, min_size=1, max_size=2), max_size=2),
    "$or": st.lists(st.fixed_dictionaries({"detail": st.dictionaries(
        TEXT, st.lists(MATCHER, min_size=1, max_size=2), max_size=1)}), min_size=2,
        max_size=2),
})


def _segment(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    optional: dict[str, st.SearchStrategy[Any]] = {
        "end_time": EPOCH, "in_progress": st.booleans(), "origin": TEXT,
        "fault": st.booleans(), "error": st.booleans(), "throttle": st.booleans(),
        "namespace": st.sampled_from(["aws", "remote"]),
        "http": st.fixed_dictionaries({}, optional={
            "request": st.fixed_dictionaries({}, optional={
                "method": st.sampled_from(["GET", "POST"]), "url": TEXT}),
            "response": st.fixed_dictionaries({}, optional={
                "status": st.integers(100, 599)})}),
        "annotations": st.dictionaries(TEXT, st.one_of(TEXT, st.integers(), st.booleans()),
                                       max_size=3),
        "metadata": st.dictionaries(TEXT, st.dictionaries(TEXT, TEXT, max_size=2),
                                    max_size=2),
    }
    if depth < 2:
        optional["subsegments"] = st.lists(_segment(depth + 1), max_size=2)
    return st.fixed_dictionaries({"id": HEX16, "name": st.one_of(TEXT, st.sampled_from(HOSTILE)),
                                  "start_time": EPOCH}, optional=optional)


def segment_document() -> st.SearchStrategy[dict[str, Any]]:
    """A top-level X-Ray segment document (as a dict): id, trace_id, name, start_time, and
    any of its optional fields, with subsegments two deep."""
    return st.builds(lambda doc, trace, parent: {**doc, "trace_id": trace,
                                                 **({"parent_id": parent} if parent else {})},
                     _segment(0), XRAY_TRACE, st.one_of(st.none(), HEX16))


def count_spans(document: dict[str, Any]) -> int:
    """Segments and subsegments of a document that become spans: one without a name (X-Ray
    requires one) is skipped with its own subsegments (collectors/xray.py segment_rows)."""
    name = document.get("name")
    if not isinstance(name, str) or not name:
        return 0
    return 1 + sum(count_spans(sub) for sub in document.get("subsegments") or [])


def metric_data(params: dict[str, Any], drawn: Any, draw: Any) -> Any:
    """GetMetricData answers with the query ids the request asked for."""
    ids = [q["Id"] for q in params.get("MetricDataQueries", [])]
    results = drawn.get("MetricDataResults", [])
    for result in results:
        if ids:
            result["Id"] = draw(st.sampled_from(ids))
    return drawn


def batch_traces(params: dict[str, Any], drawn: Any, draw: Any) -> Any:
    """BatchGetTraces: each segment's Document is JSON of a segment document (a few drawn
    documents stay as drawn: text that is not JSON)."""
    for trace in drawn.get("Traces", []):
        for segment in trace.get("Segments", []):
            if draw(st.integers(0, 9)) > 0:
                segment["Document"] = json.dumps(draw(segment_document()))
    return drawn


def list_rules(params: dict[str, Any], drawn: Any, draw: Any) -> Any:
    """ListRules: most rules have a name and a real pattern (or a schedule)."""
    for rule in drawn.get("Rules", []):
        if draw(st.integers(0, 9)) > 0:
            rule["Name"] = draw(st.one_of(TEXT.filter(bool), st.sampled_from(HOSTILE)))
            if "EventPattern" in rule:
                rule["EventPattern"] = json.dumps(draw(PATTERN))
    return drawn


def cost_groups(params: dict[str, Any], drawn: Any, draw: Any) -> Any:
    """GetCostAndUsage: each group keyed by the request's GroupBy (accounts as 12 digits, tag
    keys as 'Key$value'), its metric an amount in text."""
    group_by = params.get("GroupBy", [])
    for result in drawn.get("ResultsByTime", []):
        for group in result.get("Groups", []):
            keys = []
            for grouping in group_by:
                if grouping.get("Type") == "TAG":
                    keys.append(f"{grouping['Key']}${draw(TEXT)}")
                elif grouping.get("Key") == "LINKED_ACCOUNT":
                    keys.append(draw(st.from_regex(r"\A[0-9]{12}\Z")))
                else:
                    keys.append(draw(TEXT))
            group["Keys"] = keys
            metric = draw(st.sampled_from(["UnblendedCost", "BlendedCost"]))
            group["Metrics"] = {metric: {"Amount": str(draw(st.decimals(
                -10, 1000, places=4, allow_nan=False))), "Unit": "USD"}}
    return drawn


def discoverers(params: dict[str, Any], drawn: Any, draw: Any) -> Any:
    """ListDiscoverers: about half the discoverers are started."""
    for discoverer in drawn.get("Discoverers", []):
        if draw(st.booleans()):
            discoverer["State"] = "STARTED"
    return drawn


DETAIL = st.dictionaries(TEXT.filter(bool), st.one_of(
    st.integers(), st.floats(allow_nan=False), st.booleans(), TEXT,
    st.lists(TEXT, max_size=2), st.dictionaries(TEXT.filter(bool), TEXT, max_size=2)),
    max_size=4)


def discovered_schema(params: dict[str, Any], drawn: Any, draw: Any) -> Any:
    """DescribeSchema: most answers carry the OpenAPI content a discoverer writes, of an event
    whose source, detail-type and field names are drawn (hostile ones too)."""
    if draw(st.integers(0, 9)) > 0:
        drawn["Content"] = openapi_content({"source": draw(TEXT), "detail-type": draw(TEXT),
                                            "detail": draw(DETAIL)})
    return drawn


HOOKS: dict[str, dict[str, Hook]] = {
    "cloudwatch": {"get_metric_data": metric_data},
    "xray": {"batch_get_traces": batch_traces},
    "events": {"list_rules": list_rules},
    "ce": {"get_cost_and_usage": cost_groups},
    "schemas": {"list_discoverers": discoverers, "describe_schema": discovered_schema},
}
