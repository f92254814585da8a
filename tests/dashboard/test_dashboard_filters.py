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
