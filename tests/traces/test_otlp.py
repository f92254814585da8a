"""OTLP/JSON and aws/spans log events -> spans rows."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from orgscope.datasets import SPANS
from orgscope.traces.otlp import (
    CLAIMED_ACCOUNT,
    MAX_JSON_DEPTH,
    any_value,
    attributes,
    claimed_account,
    json_depth,
    loads,
    log_event_row,
    nanos,
    parse_requests,
    read_requests,
    request_rows,
    span_row,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
NS = int(NOW.timestamp()) * 1_000_000_000
W3C = "5759e988bd862e3fe1be46a994272793"
PRODUCER_SPAN = "53995c3f42cd8ad8"
READ = "666666666666"


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


def read_rows(req: dict[str, Any], **options: Any) -> list[dict[str, Any]]:
    """request_rows of ``req`` read for account READ unless ``options`` say otherwise."""
    return request_rows(req, **{"account_id": READ, **options})


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
    rows = read_rows(request(otlp_span("1111111111111111", "2222222222222222")))
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
    row = read_rows(request(otlp_span("1111111111111111", attributes=attrs,
                                         status={"code": code})))[0]
    assert (row["fault"], row["error"], row["throttle"]) == flags


def test_traceparent_from_attribute_or_from_a_link() -> None:
    carried = f"00-{W3C}-{PRODUCER_SPAN}-01"
    by_attribute = read_rows(request(otlp_span(
        "1111111111111111", attributes=kv(traceparent=carried.upper()))))[0]
    assert by_attribute["traceparent"] == carried
    by_link = read_rows(request(otlp_span(
        "1111111111111111", links=[{"traceId": W3C, "spanId": PRODUCER_SPAN}])))[0]
    assert by_link["traceparent"] == carried


def test_bad_spans_are_skipped_with_a_reason(caplog: pytest.LogCaptureFixture) -> None:
    good = otlp_span("1111111111111111")
    spans = [good, otlp_span("nothex"), otlp_span("2222222222222222", name=""),
             otlp_span("3333333333333333", startTimeUnixNano="soon"),
             otlp_span("4444444444444444", traceId="1-zz")]
    rows = read_rows(request(*spans), where="f.json")
    assert [r["span_id"] for r in rows] == ["1111111111111111"]
    assert caplog.text.count("otel f.json: span skipped") == 4
    assert "has no name" in caplog.text and "unix nanoseconds" in caplog.text


def test_a_span_without_account_or_region_takes_those_read() -> None:
    req = request(otlp_span("1111111111111111"))
    del req["resourceSpans"][0]["resource"]["attributes"][0:2]  # no cloud.account.id, region
    (row,) = read_rows(req, account_id="777777777777", region="eu-west-1")
    assert (row["account_id"], row["region"]) == ("777777777777", "eu-west-1")
    assert claimed_account(row) is None


def test_a_span_naming_another_account_is_stored_under_the_account_read() -> None:
    """Spoofing: whoever writes spans into account A's log group or a file mapped to A can
    write any cloud.account.id; the row is A's, and the claim is kept as an annotation."""
    req = request(otlp_span("1111111111111111"), account="222222222222")
    (row,) = read_rows(req, account_id="111111111111")
    assert row["account_id"] == "111111111111"
    assert claimed_account(row) == "222222222222"
    assert json.loads(row["annotations"]) == {CLAIMED_ACCOUNT: "222222222222", "order_id": "o-1"}
    garbage = request(otlp_span("2222222222222222"), account="x" * 500)
    (kept,) = read_rows(garbage, account_id="111111111111")  # kept, not skipped
    assert kept["account_id"] == "111111111111" and claimed_account(kept) == "x" * 64
    same = read_rows(request(otlp_span("3333333333333333"), account="111111111111"),
                     account_id="111111111111")[0]
    assert claimed_account(same) is None and CLAIMED_ACCOUNT not in same["annotations"]


def test_a_span_cannot_set_orgscope_annotations_itself() -> None:
    forged = otlp_span("1111111111111111",
                       attributes=kv(orgscope__claimed_account_id="999999999999", a="b"))
    (row,) = read_rows(request(forged))
    assert json.loads(row["annotations"]) == {"a": "b"} and claimed_account(row) is None
    shouted = otlp_span("2222222222222222", attributes=kv(
        ORGSCOPE__claimed_account_id="999999999999", Orgscope__x="y", a="b"))
    (row,) = read_rows(request(shouted))  # no look-alike of the reserved names either
    assert json.loads(row["annotations"]) == {"a": "b"}


def test_an_aws_spans_event_naming_another_account_is_the_log_groups() -> None:
    event = {"resource": {"attributes": {"cloud.account.id": "222222222222",
                                         "service.name": "x"}},
             "traceId": W3C, "spanId": "1111111111111111", "name": "GET /",
             "startTimeUnixNano": NS}
    row = log_event_row(json.dumps(event), account_id="111111111111", region="us-east-1")
    assert row["account_id"] == "111111111111" and claimed_account(row) == "222222222222"


def test_json_nested_too_deep_is_a_clear_value_error() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    assert json_depth(deep) == 100_000
    assert json_depth('{"a": "[[[[{{{{", "b": [1, {"c": "\\"}]}') == 3
    assert json_depth("7") == 0
    with pytest.raises(ValueError, match=f"nested 100000 deep; at most {MAX_JSON_DEPTH}"):
        loads(deep)
    ok = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert loads(ok) is not None
    nested = {"resource": {"attributes": {}}, "traceId": W3C, "spanId": "1111111111111111",
              "name": "x", "startTimeUnixNano": NS, "attributes": {"k": deep}}
    message = json.dumps(nested).replace(json.dumps(deep), deep)
    with pytest.raises(ValueError, match="nested"):
        log_event_row(message, account_id=READ, region="us-east-1")
    with pytest.raises(ValueError, match=r"not OTLP/JSON.*line 1: JSON nested 100000 deep"):
        parse_requests(deep)


def test_json_lines_are_read_one_line_at_a_time() -> None:
    """A file is streamed: the first request comes out before later lines are read."""
    one = request(otlp_span("1111111111111111"))
    consumed: list[int] = []

    class Lines(io.StringIO):
        def __next__(self) -> str:
            consumed.append(1)
            return super().__next__()

    stream = Lines("\n".join(json.dumps(one) for _ in range(5)) + "\n")
    requests = read_requests(stream)
    assert next(requests) == one and len(consumed) == 1
    assert len(list(requests)) == 4


def test_a_document_over_several_lines_and_bad_first_lines() -> None:
    one = request(otlp_span("1111111111111111"))
    assert parse_requests(json.dumps(one, indent=2)) == [one]
    assert parse_requests(json.dumps([one, 5, one], indent=1)) == [one, one]
    assert parse_requests("not json\n" + json.dumps(one) + "\n") == [one]
    with pytest.raises(ValueError, match="no text"):
        parse_requests("\n\n")


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
        span_row([], {}, account_id=READ, region=None)  # type: ignore[arg-type]


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
    rows = read_rows(odd, where="odd.json")
    assert [row["span_id"] for row in rows] == ["1111111111111111"]
    assert "resourceSpans[0] skipped: resource is a list" in caplog.text
    assert "resourceSpans[1] skipped" in caplog.text
    assert read_rows({"resourceSpans": 7}) == []


def test_a_lone_surrogate_in_a_span_becomes_a_replacement_character(tmp_path: Any) -> None:
    """JSON may escape a lone surrogate ("\\ud800"), valid JSON but not Unicode: pandas' and
    Arrow's string columns refuse such a str, which lost every row of the frame. The span is
    kept with U+FFFD instead; an escaped pair (an emoji) stays the character it is."""
    req = request(otlp_span("1111111111111111", name="GET /\udcff \U0001f600"))
    text = json.dumps(req).replace("inventory-mgmt", "inventory\\ud800mgmt")
    (row,) = read_rows(loads(text))
    assert (row["service"], row["name"]) == ("inventory\ufffdmgmt", "GET /\ufffd \U0001f600")
    assert SPANS.to_table(pd.DataFrame([row])).num_rows == 1
    # a file holding bytes that are not UTF-8: its spans are read, the bytes replaced
    path = tmp_path / "spans.json"
    path.write_bytes(json.dumps(request(otlp_span("2222222222222222", name="GET /x"))).encode()
                     .replace(b"GET /x", b"GET /\xff\xfe"))
    from collectors.otlp_files import file_rows

    (from_file,) = file_rows(path, READ)
    assert from_file["name"] == "GET /\ufffd\ufffd"
