"""Small display helpers shared by the entrypoint and the pages."""

from __future__ import annotations


def format_age(seconds: float) -> str:
    """A short age: '45s', '12m', '3h 5m', '2d 4h' (negative ages count as 0)."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"
