"""Chart buckets (dashboard.buckets)."""

from __future__ import annotations

from datetime import timedelta

from dashboard import buckets
from orgscope.durations import bucket_text


def test_bucket_for_keeps_at_most_max_points():
    assert buckets.bucket_for(timedelta(hours=1)) == timedelta(minutes=5)
    assert buckets.bucket_for(timedelta(hours=24)) == timedelta(minutes=5)
    assert buckets.bucket_for(timedelta(days=7)) == timedelta(hours=1)
    assert buckets.bucket_for(timedelta(days=30)) == timedelta(hours=3)
    assert buckets.bucket_for(timedelta(days=3650)) == timedelta(days=13)
    assert bucket_text(timedelta(hours=3)) == "3 h"
