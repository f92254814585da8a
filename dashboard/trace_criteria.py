"""What the Traces page searches for: the search criteria, the time window, and the error
that names a criterion the page cannot use. Pure values, no store and no Streamlit."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from dashboard.buckets import period_end
from dashboard.filters import TIME_RANGES

STATUSES: tuple[str, ...] = ("ok", "error", "fault")


class SearchError(ValueError):
    """A search criterion the page cannot use; the message says what is allowed."""


@dataclass(frozen=True)
class TraceSearch:
    """The Traces page's own search, on top of the sidebar filters. Empty tuples mean "any";
    within one criterion values are alternatives (OR), criteria combine with AND."""

    services: tuple[str, ...] = ()
    account_ids: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    min_duration_ms: float = 0.0
    #: (key, value) pairs every matching trace's merged annotations must hold.
    annotations: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        unknown = [s for s in self.statuses if s not in STATUSES]
        if unknown:
            raise SearchError(f"status {unknown[0]!r} is not one of {', '.join(STATUSES)}")
        if not math.isfinite(self.min_duration_ms) or self.min_duration_ms < 0:
            raise SearchError(f"minimum duration {self.min_duration_ms!r} must be a number of "
                              "milliseconds >= 0")


def parse_annotations(text: str) -> tuple[tuple[str, str], ...]:
    """``'order_id=ord-1 event_rule=orders'`` -> (('order_id', 'ord-1'), ('event_rule',
    'orders')); pairs separated by spaces; raises :class:`SearchError` naming the bad one."""
    pairs = []
    for item in text.split():
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise SearchError(f"annotation filter {item!r}: write key=value, for example "
                              "order_id=ord-12ab (several separated by spaces)")
        pairs.append((key, value))
    return tuple(pairs)


def format_annotations(pairs: Sequence[tuple[str, str]]) -> str:
    return " ".join(f"{key}={value}" for key, value in pairs)


@dataclass(frozen=True)
class Window:
    """[since, until) in UTC."""

    since: datetime
    until: datetime

    def __post_init__(self) -> None:
        if self.since.tzinfo is None or self.until.tzinfo is None:
            raise SearchError("window bounds must carry a time zone (UTC)")
        if self.until <= self.since:
            raise SearchError(f"window: until {self.until:%Y-%m-%d %H:%M} UTC is not after "
                              f"since {self.since:%Y-%m-%d %H:%M} UTC")

    @property
    def length(self) -> timedelta:
        return self.until - self.since

    @classmethod
    def last(cls, time_range: str, now: datetime) -> Window:
        """The sidebar's range ending at the end of the minute ``now`` is in (so that the
        cached reads of one minute share a key)."""
        until = period_end(now, timedelta(minutes=1))
        return cls(until - TIME_RANGES.get(time_range, TIME_RANGES["24h"]), until)
