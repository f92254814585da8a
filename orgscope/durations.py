"""Durations as text for people: the one owner of human-facing duration wording.

Two wordings, both built from the same unit table:

* :func:`duration_text` — an elapsed time or a window, its two largest units: '45s', '12m',
  '3h 5m', '2d 4h' (ages on the pages, windows and staleness in verdict reasons and alerts);
* :func:`bucket_text` — the length of a chart bucket in one whole unit: '5 min', '3 h', '1 d'.

Config syntax ('5m', the inverse of parsing an interval) is another thing:
:func:`orgscope.config.format_interval`.
"""

from __future__ import annotations

from datetime import timedelta

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def _seconds(delta: timedelta | float) -> int:
    """Whole seconds of a timedelta (or of a number of seconds); negative counts as 0."""
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
    return max(0, int(seconds))


def duration_text(delta: timedelta | float) -> str:
    """A short duration, its two largest units: '45s', '12m', '3h 5m', '2d 4h'.

    ``delta``: a timedelta (pandas' included) or seconds. Seconds show only under a minute;
    a zero lower unit is left out ('3h', '2d'); negative durations count as 0.
    """
    whole = _seconds(delta)
    if whole < MINUTE:
        return f"{whole}s"
    minutes = whole // MINUTE
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"


def bucket_text(bucket: timedelta) -> str:
    """A chart bucket's length in its largest whole unit: '5 min', '3 h', '1 d'."""
    whole = _seconds(bucket)
    if whole < HOUR:
        return f"{whole // MINUTE} min"
    if whole < DAY:
        return f"{whole // HOUR} h"
    return f"{whole // DAY} d"
