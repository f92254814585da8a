"""X-Ray <-> W3C trace ids, span ids and traceparent headers."""

from __future__ import annotations

import pytest

from orgscope.traces.ids import (
    TraceParent,
    check_span_id,
    format_traceparent,
    parse_traceparent,
    to_w3c_trace_id,
    w3c_to_xray,
    xray_to_w3c,
)

XRAY = "1-5759e988-bd862e3fe1be46a994272793"
W3C = "5759e988bd862e3fe1be46a994272793"


def test_round_trip_between_forms() -> None:
    assert xray_to_w3c(XRAY) == W3C
    assert w3c_to_xray(W3C) == XRAY
    assert to_w3c_trace_id(XRAY) == to_w3c_trace_id(W3C) == W3C
    assert xray_to_w3c(XRAY.upper().replace("1-", "1-", 1)) == W3C  # case-insensitive


@pytest.mark.parametrize("bad", ["", "5759e988-bd862e3fe1be46a994272793",
                                 "2-5759e988-bd862e3fe1be46a994272793",
                                 "1-5759e98-bd862e3fe1be46a994272793",
                                 "1-5759e988-bd862e3fe1be46a99427279z"])
def test_malformed_xray_ids_say_the_expected_form(bad: str) -> None:
    with pytest.raises(ValueError, match=r"1-<8 hex>-<24 hex>"):
        xray_to_w3c(bad)


@pytest.mark.parametrize("bad", ["", W3C[:-1], W3C + "0", "0" * 32, "g" * 32])
def test_malformed_w3c_ids(bad: str) -> None:
    with pytest.raises(ValueError, match="32 hex digits"):
        w3c_to_xray(bad)
    with pytest.raises(ValueError):
        to_w3c_trace_id(bad)


def test_span_ids() -> None:
    assert check_span_id("53995C3F42CD8AD8") == "53995c3f42cd8ad8"
    for bad in ("", "53995c3f42cd8ad", "0" * 16, "53995c3f42cd8adx"):
        with pytest.raises(ValueError, match="16 hex digits"):
            check_span_id(bad)


def test_traceparent_parse_and_format() -> None:
    header = f"00-{W3C}-53995c3f42cd8ad8-01"
    parsed = parse_traceparent(header)
    assert parsed == TraceParent(W3C, "53995c3f42cd8ad8", "01", "00")
    assert parsed.sampled and parsed.xray_trace_id == XRAY
    assert parsed.format() == header
    assert format_traceparent(XRAY, "53995c3f42cd8ad8", "00") == f"00-{W3C}-53995c3f42cd8ad8-00"
    assert not parse_traceparent(f"00-{W3C}-53995c3f42cd8ad8-00").sampled
    # a future version may carry more fields
    assert parse_traceparent(f"01-{W3C}-53995c3f42cd8ad8-01-extra").version == "01"


@pytest.mark.parametrize(("bad", "message"), [
    ("", "must look like"),
    (f"00-{W3C}-53995c3f42cd8ad8", "must look like"),
    (f"00-{W3C}-53995c3f42cd8ad8-01-extra", "must look like"),
    (f"ff-{W3C}-53995c3f42cd8ad8-01", "must look like"),
    (f"00-{'0' * 32}-53995c3f42cd8ad8-01", "trace id must be 32 hex"),
    (f"00-{XRAY}-53995c3f42cd8ad8-01", "must look like"),
    (f"00-{W3C}-{'0' * 16}-01", "span id must be 16 hex"),
    (f"00-{W3C}-53995c3f42cd8ad8-1", "flags must be 2 hex"),
])
def test_malformed_traceparents(bad: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_traceparent(bad)
