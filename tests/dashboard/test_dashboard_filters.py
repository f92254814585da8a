"""Filters value object, session-state reading, and the small formatting helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dashboard.filters import (
    ACCOUNTS_KEY,
    REGIONS_KEY,
    TEAMS_KEY,
    TIME_RANGE_KEY,
    Filters,
    read_filters,
)
from dashboard.formatting import format_age


def test_defaults_when_session_state_is_empty():
    assert read_filters({}) == Filters(time_range="24h")


def test_reads_prefixed_keys_into_sorted_tuples():
    state = {
        TIME_RANGE_KEY: "1h",
        ACCOUNTS_KEY: ["222222222222", "111111111111"],
        TEAMS_KEY: ["payments"],
        REGIONS_KEY: [],
    }
    filters = read_filters(state)
    assert filters == Filters("1h", ("111111111111", "222222222222"), ("payments",), ())
    assert filters.narrowed
    hash(filters)  # usable as a cache key


def test_unknown_time_range_falls_back_to_default():
    assert read_filters({TIME_RANGE_KEY: "90d"}).time_range == "24h"


def test_since_and_describe():
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    filters = Filters("7d", ("111111111111",), ("payments", "orders"), ("us-east-1",))
    assert filters.since(now) == now - timedelta(days=7)
    assert filters.describe() == "last 7d · 1 account · teams payments, orders · us-east-1"
    assert Filters().describe() == "last 24h"
    assert not Filters().narrowed


def test_format_age():
    assert format_age(-3) == "0s"
    assert format_age(45) == "45s"
    assert format_age(12 * 60 + 5) == "12m"
    assert format_age(3 * 3600 + 5 * 60) == "3h 5m"
    assert format_age(2 * 3600) == "2h"
    assert format_age(2 * 86400 + 4 * 3600) == "2d 4h"
