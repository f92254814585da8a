"""OTLP/JSON and aws/spans log events -> spans rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from orgscope.datasets import SPANS
from orgscope.traces.otlp import (
    any_value,
    attributes,
    log_event_row,
    nanos,
    parse_requests,
    request_rows,
    span_row,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
NS = int(NOW.timestamp()) * 1_000_000_000
W3C = "5759e988bd862e3fe1be46a994272793"
PRODUCER_SPAN = "53995c3f42cd8ad8"


def kv(**values: Any) -> list[dict[str, Any]]:
    """OTLP/JSON attributes."""
    out = []
    for name, value in values.items():
        key = name.replace("__", ".")
        if isinstance(value, bool):
            wrapped: dict[str, Any] = {"boolValue": value}
        elif isinstance(value, int):
            wrapped = {"intValue": str(value)}
        elif isinstance(value, float):
            wrapped = {"doubleValue": value}
        else:
            wrapped = {"stringValue": value}
        out.append({"key": key, "value": wrapped})
    return out


def otlp_span(span_id: str, parent: str = "", **extra: Any) -> dict[str, Any]:
    span: dict[str, Any] = {
        "traceId": W3C, "spanId": span_id, "parentSpanId": parent, "name": "POST /reserve",
        "kind": 2, "startTimeUnixNano": str(NS), "endTimeUnixNano": str(NS + 25_500_000),
        "attributes": kv(http__request__method="POST", url__full="https://inv/reserve",
                         http__response__status_code=200, order_id="o-1"),
        "status": {"code": 0},
    }
    span.update(extra)
    return span


def request(*spans: dict[str, Any], account: str = "666666666666") -> dict[str, Any]:
    return {"resourceSpans": [{
        "resource": {"attributes": kv(cloud__account__id=account, cloud__region="us-east-1",
                                      service__name="inventory-mgmt",
                                      cloud__platform="aws_ecs")},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": list(spans)}]}]}


def test_any_value_and_attributes() -> None:
    assert any_value({"intValue": "7"}) == 7
    assert any_value({"arrayValue": {"values": [{"stringValue": "a"}, {"boolValue": True}]}}) \
        == ["a", True]
    assert any_value({"kvlistValue": {"values": kv(a="b")}}) == {"a": "b"}
    assert attributes(kv(x=1.5)) == {"x": 1.5}
    assert attributes({"plain": "object"}) == {"plain": "object"}
    assert attributes(None) == {}


def test_nanos() -> None:
    assert nanos(str(NS + 1_500_000), "t") == NOW.replace(microsecond=1500)
    assert nanos(NS, "t") == NOW
    for bad in ("abc", -1, 0, 1.5, True, None):
        with pytest.raises(ValueError, match="unix nanoseconds"):
            nanos(bad, "t")


def test_an_otlp_request_becomes_rows_with_resource_fields() -> None:
    rows = request_rows(request(otlp_span("1111111111111111", "2222222222222222")))
    (row,) = rows
    assert row["trace_id"] == W3C and row["span_id"] == "1111111111111111"
    assert row["parent_id"] == "2222222222222222"
    assert (row["account_id"], row["region"], row["service"], row["origin"]) == \
        ("666666666666", "us-east-1", "inventory-mgmt", "aws_ecs")
    assert row["start"] == NOW and row["duration_ms"] == 25.5
    assert (row["http_method"], row["http_url"], row["http_status"]) == \
        ("POST", "https://inv/reserve", 200)
    assert (row["fault"], row["error"], row["throttle"]) == (False, False, False)
    assert json.loads(row["annotations"]) == {"order_id": "o-1"}
    assert row["source"] == "otel" and row["traceparent"] is None
    SPANS.to_table(pd.DataFrame(rows, columns=SPANS.columns))  # valid spans rows


@pytest.mark.parametrize(("status", "code", "flags"), [
    (500, 0, (True, False, False)), (404, 0, (False, True, False)),
    (429, 0, (False, True, True)), (None, 2, (True, False, False)),
    (None, "STATUS_CODE_ERROR", (True, False, False)), (200, 2, (False, False, False)),
])
def test_status_flags(status: int | None, code: Any, flags: tuple[bool, bool, bool]) -> None:
    attrs = kv(http__response__status_code=status) if status is not None else []
    row = request_rows(request(otlp_span("1111111111111111", attributes=attrs,
                                         status={"code": code})))[0]
    assert (row["fault"], row["error"], row["throttle"]) == flags


def test_traceparent_from_attribute_or_from_a_link() -> None:
    carried = f"00-{W3C}-{PRODUCER_SPAN}-01"
    by_attribute = request_rows(request(otlp_span(
        "1111111111111111", attributes=kv(traceparent=carried.upper()))))[0]
    assert by_attribute["traceparent"] == carried
    by_link = request_rows(request(otlp_span(
        "1111111111111111", links=[{"traceId": W3C, "spanId": PRODUCER_SPAN}])))[0]
    assert by_link["traceparent"] == carried


def test_bad_spans_are_skipped_with_a_reason(caplog: pytest.LogCaptureFixture) -> None:
    good = otlp_span("1111111111111111")
    spans = [good, otlp_span("nothex"), otlp_span("2222222222222222", name=""),
             otlp_span("3333333333333333", startTimeUnixNano="soon"),
             otlp_span("4444444444444444", traceId="1-zz")]
    rows = request_rows(request(*spans), where="f.json")
    assert [r["span_id"] for r in rows] == ["1111111111111111"]
    assert caplog.text.count("otel f.json: span skipped") == 4
    assert "has no name" in caplog.text and "unix nanoseconds" in caplog.text


def test_a_span_without_account_is_skipped_unless_read_in_one(
        caplog: pytest.LogCaptureFixture) -> None:
    req = request(otlp_span("1111111111111111"), account="not-an-account")
    assert request_rows(req) == []
    assert "cloud.account.id 'not-an-account' is not a 12-digit account id" in caplog.text
    del req["resourceSpans"][0]["resource"]["attributes"][0]  # no cloud.account.id at all
    rows = request_rows(req, account_id="777777777777", region="eu-west-1")
    assert rows[0]["account_id"] == "777777777777" and rows[0]["region"] == "us-east-1"


def test_an_aws_spans_log_event() -> None:
    event = {
        "resource": {"attributes": {"service.name": "inventory-mgmt",
                                    "cloud.region": "us-east-1"}},
        "scope": {"name": "x"}, "traceId": W3C, "spanId": "1111111111111111",
        "parentSpanId": "2222222222222222", "name": "POST /reservations", "kind": "SERVER",
        "startTimeUnixNano": NS, "endTimeUnixNano": NS + 5_000_000, "durationNano": 5_000_000,
        "attributes": {"http.response.status_code": 503, "order_id": "o-1"},
        "status": {"code": "ERROR"},
    }
    row = log_event_row(json.dumps(event), account_id="666666666666", region="us-east-1")
    assert (row["account_id"], row["service"], row["fault"], row["http_status"]) == \
        ("666666666666", "inventory-mgmt", True, 503)
    with pytest.raises(ValueError):
        log_event_row("[1, 2]", account_id="666666666666", region="us-east-1")


def test_parse_requests_reads_one_document_or_json_lines() -> None:
    one = request(otlp_span("1111111111111111"))
    assert parse_requests(json.dumps(one)) == [one]
    lines = json.dumps(one) + "\n\nnot json\n" + json.dumps(one) + "\n"
    assert parse_requests(lines) == [one, one]
    with pytest.raises(ValueError, match="not OTLP/JSON"):
        parse_requests("garbage\nmore garbage")


def test_span_row_rejects_a_non_object() -> None:
    with pytest.raises(ValueError, match="not a JSON object"):
        span_row([], {}, account_id=None, region=None)  # type: ignore[arg-type]


def test_parts_of_the_wrong_shape_are_skipped_and_the_rest_read(
        caplog: pytest.LogCaptureFixture) -> None:
    good = request(otlp_span("1111111111111111"))["resourceSpans"][0]
    odd = {"resourceSpans": [
        {"resource": ["not", "an", "object"], "scopeSpans": [{"spans": [otlp_span(
            "2222222222222222")]}]},
        {"resource": {"attributes": [{"key": "n", "value": {"intValue": "x"}}]},
         "scopeSpans": [{"spans": [otlp_span("3333333333333333")]}]},
        {**good, "scopeSpans": ["scope as text", {"spans": 5}, None, *good["scopeSpans"]]},
        "not an object",
    ]}
    rows = request_rows(odd, where="odd.json")
    assert [row["span_id"] for row in rows] == ["1111111111111111"]
    assert "resourceSpans[0] skipped: resource is a list" in caplog.text
    assert "resourceSpans[1] skipped" in caplog.text
    assert request_rows({"resourceSpans": 7}) == []
