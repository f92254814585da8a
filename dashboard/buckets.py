"""Time buckets of the dashboard's charts: the smallest bucket that keeps a series within
:data:`MAX_POINTS` points, and the Event-flow range rounded to the metrics' 5-minute period."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from dashboard.filters import Filters

MAX_POINTS = 300
PERIOD = timedelta(minutes=5)
#: Bucket sizes a chart may use: the smallest that keeps a series within MAX_POINTS wins.
BUCKETS: tuple[timedelta, ...] = (
    timedelta(minutes=5), timedelta(minutes=10), timedelta(minutes=15), timedelta(minutes=30),
    timedelta(hours=1), timedelta(hours=2), timedelta(hours=3), timedelta(hours=6),
    timedelta(hours=12), timedelta(days=1),
)


def bucket_for(window: timedelta, max_points: int = MAX_POINTS) -> timedelta:
    """The smallest bucket in :data:`BUCKETS` that splits ``window`` into <= max_points."""
    for bucket in BUCKETS:
        if window / bucket <= max_points:
            return bucket
    days = math.ceil(window / timedelta(days=1) / max_points)
    return timedelta(days=days)


def period_end(now: datetime, period: timedelta) -> datetime:
    """The end of the ``period`` (aligned to the epoch) that ``now`` is in: ``now`` itself on
    a boundary is the start of a period, never the end of the one before."""
    step = period.total_seconds()
    return datetime.fromtimestamp((math.floor(now.timestamp() / step) + 1) * step, UTC)


def window(filters: Filters, now: datetime) -> tuple[datetime, datetime]:
    """[since, until) of the time range, ``until`` the end of the 5-minute period being
    collected (so that the newest bucket is always the one ``now`` is in)."""
    until = period_end(now, PERIOD)
    return until - filters.window, until
