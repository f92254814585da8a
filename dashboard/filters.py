"""The shared sidebar filters, as one value object every page reads the same way.

The entrypoint draws the widgets under the ``orgscope.filter.*`` session keys below; pages call
:func:`read_filters` and pass the plain values on to the cached data functions. An empty
selection means "everything", like an unticked filter in any console.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from orgscope.untrusted import markdown

#: Time range choices, label -> length. The first-class on-call question is "the last hour".
TIME_RANGES: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
DEFAULT_TIME_RANGE = "24h"

KEY_PREFIX = "orgscope.filter."
TIME_RANGE_KEY = KEY_PREFIX + "time_range"
ACCOUNTS_KEY = KEY_PREFIX + "accounts"
TEAMS_KEY = KEY_PREFIX + "teams"
REGIONS_KEY = KEY_PREFIX + "regions"


@dataclass(frozen=True)
class Filters:
    """What the user narrowed the view to. Empty tuples mean "all"."""

    time_range: str = DEFAULT_TIME_RANGE
    account_ids: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()

    @property
    def window(self) -> timedelta:
        return TIME_RANGES.get(self.time_range, TIME_RANGES[DEFAULT_TIME_RANGE])

    def since(self, now: datetime) -> datetime:
        """Start of the time range ending at ``now``."""
        return now - self.window

    @property
    def narrowed(self) -> bool:
        """True when any account, team or region filter is set."""
        return bool(self.account_ids or self.teams or self.regions)

    def describe(self) -> str:
        """A short human summary as Streamlit markdown, e.g. 'last 24h · 2 accounts · team
        payments' (team and region names, read from the store, escaped)."""
        parts = [f"last {self.time_range}"]
        if self.account_ids:
            count = len(self.account_ids)
            parts.append(f"{count} account{'s' if count != 1 else ''}")
        if self.teams:
            parts.append(("team " if len(self.teams) == 1 else "teams ")
                         + ", ".join(markdown(team) for team in self.teams))
        if self.regions:
            parts.append(", ".join(markdown(region) for region in self.regions))
        return " · ".join(parts)


def _strings(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(sorted(str(item) for item in value))


def read_filters(state: Mapping[Any, Any]) -> Filters:
    """The current filters from Streamlit session state (defaults for missing keys)."""
    time_range = state.get(TIME_RANGE_KEY) or DEFAULT_TIME_RANGE
    if time_range not in TIME_RANGES:
        time_range = DEFAULT_TIME_RANGE
    return Filters(
        time_range=str(time_range),
        account_ids=_strings(state.get(ACCOUNTS_KEY)),
        teams=_strings(state.get(TEAMS_KEY)),
        regions=_strings(state.get(REGIONS_KEY)),
    )
