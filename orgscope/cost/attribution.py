"""Who pays for each dollar: ``cost_daily`` rows -> rows with a team and the rule that chose it.

The rules, in order (docs/cost.md, "Attribution"):

1. A **shared account** (config ``shared = true``) is allocated by ``[cost] shared_allocation``,
   whatever its tags say (a tag there names who runs the shared service, not who uses it):
   ``platform`` gives it all to ``platform_team``; ``even`` splits each day's cost evenly over
   the teams owning a non-shared account that day; ``events`` splits each month's cost in
   proportion to the events each team's accounts published that month (CloudWatch
   ``PutEventsEntriesCount``), and falls back to ``even`` for a month without that signal.
2. Otherwise the **Team tag** names the team where present.
3. **Untagged** cost (``team_tag == ""``) goes to the account's team *on that day*
   (``team`` and ``team_history`` in config, so a move does not rewrite history), or, with
   ``untagged = "separate"``, to a line of its own called ``untagged``.

Every output row keeps its account, tag, service and usage type, and says in ``method`` which
rule made it, so each number on the page can be traced back to ``cost_daily``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import pandas as pd

from orgscope.config import AccountConfig, CostConfig

log = logging.getLogger(__name__)

UNTAGGED = "untagged"
UNMAPPED = "(account not in config)"

#: Columns of an attributed frame, in order.
COLUMNS = ["date", "month", "account_id", "team", "team_tag", "service", "usage_type",
           "amount", "currency", "estimated", "tagged", "shared", "method"]

METHOD_TAG = "Team tag"
METHOD_ACCOUNT = "untagged: account's team that day"
METHOD_UNTAGGED_LINE = "untagged: own line"
METHOD_UNMAPPED = "untagged: account not in config"


@dataclass(frozen=True)
class Attribution:
    """Attributed rows (:data:`COLUMNS`) and human notes on what was assumed."""

    frame: pd.DataFrame
    notes: tuple[str, ...]


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def _days(column: pd.Series) -> pd.Series:
    """A date column (dates, timestamps or text) as Python dates."""
    return pd.to_datetime(column).dt.date


def account_teams(accounts: Sequence[AccountConfig], pairs: pd.DataFrame) -> pd.Series:
    """The owning team of each (account_id, date) row of ``pairs`` (effective-dated);
    :data:`UNMAPPED` for an account config does not list."""
    by_id = {account.id: account for account in accounts}
    unique = pairs[["account_id", "date"]].drop_duplicates()
    teams = {
        (account_id, day): (by_id[account_id].team_on(day) if account_id in by_id else UNMAPPED)
        for account_id, day in unique.itertuples(index=False)
    }
    keys = list(zip(pairs["account_id"], pairs["date"], strict=True))
    return pd.Series([teams[key] for key in keys], index=pairs.index, dtype=object)


def even_weights(accounts: Sequence[AccountConfig], days: Sequence[date]) -> pd.DataFrame:
    """date, team, weight, method: each day, the teams owning a non-shared account share 1."""
    rows = []
    for day in days:
        teams = sorted({a.team_on(day) for a in accounts if not a.shared})
        for team in teams:
            rows.append({"date": day, "team": team, "weight": 1 / len(teams),
                         "method": f"shared: even over {len(teams)} teams"})
    return pd.DataFrame(rows, columns=["date", "team", "weight", "method"])


def event_weights(
    accounts: Sequence[AccountConfig], days: Sequence[date], events: pd.DataFrame
) -> tuple[pd.DataFrame, list[str]]:
    """date, team, weight, method from ``events`` (date, account_id, entries): each month's
    share of events published by each team's non-shared accounts; months without events get
    :func:`even_weights`, and a note says so."""
    by_id = {account.id: account for account in accounts}
    frame = events.copy()
    frame["date"] = _days(frame["date"]) if len(frame) else frame["date"]
    frame = frame[[a in by_id and not by_id[a].shared for a in frame["account_id"]]]
    frame = frame.assign(
        team=[by_id[a].team_on(d) for a, d in zip(frame["account_id"], frame["date"],
                                                  strict=True)],
        month=[month_of(d) for d in frame["date"]],
    )
    per_team = frame.groupby(["month", "team"])["entries"].sum()
    months = sorted({month_of(day) for day in days})
    notes: list[str] = []
    parts = []
    for month in months:
        month_days = [d for d in days if month_of(d) == month]
        shares = per_team.get(month) if month in per_team.index.get_level_values(0) else None
        if shares is None or float(shares.sum()) <= 0:
            notes.append(f"{month}: no events published were recorded (event_metrics "
                         "PutEventsEntriesCount); shared accounts split evenly instead")
            parts.append(even_weights(accounts, month_days).assign(
                method=lambda f: f["method"] + " (no events data)"))
            continue
        total = float(shares.sum())
        rows = [{"date": day, "team": str(team), "weight": float(value) / total,
                 "method": f"shared: by events published ({int(total):,} in {month})"}
                for day in month_days for team, value in shares.items() if value > 0]
        parts.append(pd.DataFrame(rows, columns=["date", "team", "weight", "method"]))
    weights = pd.concat(parts, ignore_index=True) if parts else even_weights(accounts, [])
    return weights, notes


def attribute(
    cost: pd.DataFrame,
    accounts: Sequence[AccountConfig],
    settings: CostConfig,
    events: pd.DataFrame | None = None,
) -> Attribution:
    """Attribute ``cost`` (cost_daily columns) to teams; see the module docstring.

    ``events`` (date, account_id, entries) is needed only by ``shared_allocation = "events"``.
    Amounts are conserved: the output sums to the input, day by day.
    """
    if cost.empty:
        return Attribution(pd.DataFrame(columns=COLUMNS), ())
    frame = cost.copy()
    frame["date"] = _days(frame["date"])
    frame["month"] = [month_of(d) for d in frame["date"]]
    frame["team_tag"] = frame["team_tag"].fillna("").astype(str)
    shared_ids = {account.id for account in accounts if account.shared}
    frame["shared"] = frame["account_id"].isin(shared_ids)
    frame["tagged"] = frame["team_tag"] != ""
    owner = account_teams(accounts, frame)
    notes: list[str] = []

    own = frame[~frame["shared"]].copy()
    own_owner = owner[~frame["shared"]]
    own["team"] = own["team_tag"].where(own["tagged"], own_owner)
    own["method"] = METHOD_TAG
    untagged = ~own["tagged"]
    own.loc[untagged, "method"] = METHOD_ACCOUNT
    unmapped = untagged & (own_owner == UNMAPPED)
    own.loc[unmapped, "method"] = METHOD_UNMAPPED
    if settings.untagged == "separate":
        own.loc[untagged, "team"] = UNTAGGED
        own.loc[untagged, "method"] = METHOD_UNTAGGED_LINE
    if unmapped.any():
        missing = sorted(set(own.loc[unmapped, "account_id"]))
        notes.append(f"accounts not in config, their untagged cost shown as {UNMAPPED!r}: "
                     + ", ".join(missing))

    shared = frame[frame["shared"]]
    parts = [own]
    if not shared.empty:
        parts.append(_allocate_shared(shared, accounts, settings, events, notes))
    result = pd.concat(parts, ignore_index=True)
    return Attribution(result[COLUMNS].reset_index(drop=True), tuple(notes))


def _allocate_shared(
    shared: pd.DataFrame,
    accounts: Sequence[AccountConfig],
    settings: CostConfig,
    events: pd.DataFrame | None,
    notes: list[str],
) -> pd.DataFrame:
    rule = settings.shared_allocation
    if rule == "platform":
        return shared.assign(team=settings.platform_team,
                             method=f"shared: all to {settings.platform_team}")
    days = sorted(set(shared["date"]))
    if rule == "events" and events is not None:
        weights, more = event_weights(accounts, days, events)
        notes.extend(more)
    else:
        if rule == "events":
            notes.append("no events data was read; shared accounts split evenly instead")
        weights = even_weights(accounts, days)
        if rule == "events":
            weights["method"] = weights["method"] + " (no events data)"
    spread = shared.merge(weights, on="date", how="left")
    if spread["team"].isna().any():  # a day with no non-shared team at all
        spread["team"] = spread["team"].fillna(settings.platform_team)
        spread["weight"] = spread["weight"].fillna(1.0)
        spread["method"] = spread["method"].fillna(
            f"shared: all to {settings.platform_team} (no teams that day)")
    spread["amount"] = spread["amount"] * spread["weight"]
    return spread.drop(columns=["weight"])
