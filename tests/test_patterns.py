"""The sources an event pattern names (orgscope.patterns), for the health model and the
dashboard's route map alike."""

from __future__ import annotations

import json

from orgscope.patterns import PatternSource, pattern_sources, source_matchers

PATTERN = json.dumps({"source": ["quickgrocer.orders", {"prefix": "quickgrocer.pay"},
                                 {"anything-but": "x"}], "detail-type": ["OrderPlaced"]})


def test_names_and_prefixes_in_order():
    assert source_matchers(PATTERN) == [PatternSource("quickgrocer.orders"),
                                        PatternSource("quickgrocer.pay", prefix=True)]
    assert pattern_sources(PATTERN) == ["quickgrocer.orders", "quickgrocer.pay"]
    assert [s.label for s in source_matchers(PATTERN)] == ["quickgrocer.orders",
                                                           "quickgrocer.pay*"]


def test_a_single_source_and_patterns_that_name_none():
    assert pattern_sources('{"source": "aws.s3"}') == ["aws.s3"]
    for pattern in (None, "", "not json", "[1]", '{"detail": {}}', float("nan")):
        assert source_matchers(pattern) == []
