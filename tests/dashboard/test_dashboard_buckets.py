"""Chart buckets (dashboard.buckets)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dashboard import buckets
from dashboard.filters import Filters
from dashboard.trace_criteria import Window
from orgscope.durations import bucket_text


def test_bucket_for_keeps_at_most_max_points():
    assert buckets.bucket_for(timedelta(hours=1)) == timedelta(minutes=5)
    assert buckets.bucket_for(timedelta(hours=24)) == timedelta(minutes=5)
    assert buckets.bucket_for(timedelta(days=7)) == timedelta(hours=1)
    assert buckets.bucket_for(timedelta(days=30)) == timedelta(hours=3)
    assert buckets.bucket_for(timedelta(days=3650)) == timedelta(days=13)
    assert bucket_text(timedelta(hours=3)) == "3 h"


@pytest.mark.parametrize(("now", "until"), [
    ("2026-12-07T13:00:00", "2026-12-07T13:05:00"),  # on a boundary: the period just begun
    ("2026-12-07T13:00:01", "2026-12-07T13:05:00"),
    ("2026-12-07T13:04:59.999", "2026-12-07T13:05:00"),
    ("2026-12-31T23:59:59", "2027-01-01T00:00:00"),
    ("2028-02-29T23:55:00", "2028-03-01T00:00:00"),
])
def test_the_window_ends_with_the_period_now_is_in(now: str, until: str) -> None:
    at = datetime.fromisoformat(now).replace(tzinfo=UTC)
    since, end = buckets.window(Filters(time_range="6h"), at)
    assert end == datetime.fromisoformat(until).replace(tzinfo=UTC)
    assert end - since == timedelta(hours=6) and since <= at < end


def test_a_trace_window_on_a_whole_minute_holds_that_minute() -> None:
    at = datetime(2026, 12, 7, 13, 0, tzinfo=UTC)
    window = Window.last("1h", at)
    assert window.since <= at < window.until == at + timedelta(minutes=1)
