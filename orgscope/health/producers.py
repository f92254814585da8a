"""Who produces a rule's events, and whether they can still publish them (pure functions).

CloudWatch says nothing about which account sent the events a rule matches: PutEvents metrics
are per account, MatchedEvents per rule. The health model links them with a stated heuristic
(docs/health.md, "Producers"):

* a rule's event pattern names its sources (``"source": ["quickgrocer.customer-web"]``); a
  source is mapped to the accounts whose 12-digit id, account name or team appears in it as a
  whole dot-separated part (``quickgrocer.customer-web`` -> the ``customer-web`` account);
  ``aws.*`` sources are AWS services, published in the rule's own account, and map to nobody;
* a producer *fails* when its account-level PutEvents metrics show failed entries (or failed
  calls) in the window;
* a producer *was removed* from a bus when an earlier ``event_buses`` snapshot listed it among
  the principals allowed to PutEvents and the latest one no longer does (and the latest policy
  does not allow everyone, or the whole organization).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from typing import Any

import pandas as pd

from orgscope.targets import arn_account

log = logging.getLogger(__name__)

#: Account-level PutEvents metrics the model reads (sums over the window).
PUT_ENTRIES = "PutEventsEntriesCount"
PUT_FAILED_ENTRIES = "PutEventsFailedEntriesCount"
PUT_CALLS = "PutEventsApproximateCallCount"
PUT_FAILED_CALLS = "PutEventsApproximateFailedCount"
PUT_METRICS: tuple[str, ...] = (PUT_ENTRIES, PUT_FAILED_ENTRIES, PUT_CALLS, PUT_FAILED_CALLS)

_SPLIT = re.compile(r"[./:]")
_ACCOUNT_ID = re.compile(r"\d{12}")


def _norm(text: str) -> str:
    return text.strip().lower().replace("_", "-")


def source_producers(source: str, accounts: pd.DataFrame) -> list[str]:
    """Account ids that publish ``source``, by name (see the module docstring).

    ``accounts``: the ``accounts`` dataset (account_id, name, team; other columns ignored).
    Returns sorted ids; empty for ``aws.*`` sources and for sources no account's id, name or
    team appears in.
    """
    text = _norm(source)
    if text.startswith("aws."):
        return []
    parts = {p for p in _SPLIT.split(text) if p}
    ids_in_source = set(_ACCOUNT_ID.findall(text))
    found = set()
    for row in tuples(accounts[["account_id", "name", "team"]]):
        account_id, name, team = (str(v) if v is not None else "" for v in row)
        if account_id in ids_in_source or (name and _norm(name) in parts) or \
                (team and _norm(team) in parts):
            found.add(account_id)
    return sorted(found)


def _principal_account(principal: str) -> str:
    """'arn:aws:iam::111111111111:role/x' -> '111111111111'; anything else as it is."""
    account = arn_account(principal) if principal.startswith("arn:") else None
    return account or principal


def _as_list(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def tuples(frame: pd.DataFrame) -> Iterator[Any]:
    """``frame``'s rows as named tuples (typed loosely: columns differ per frame)."""
    return frame.itertuples(index=False)


def latest_snapshot(frame: pd.DataFrame, keys: Iterable[str], time_column: str) -> pd.DataFrame:
    """The rows of ``frame`` taken at the newest ``time_column`` of each ``keys`` group."""
    keys = list(keys)
    if frame.empty:
        return frame
    newest = frame.groupby(keys, dropna=False)[time_column].transform("max")
    return frame[frame[time_column] == newest]


def policy_removals(buses: pd.DataFrame) -> pd.DataFrame:
    """Principals a bus policy allowed earlier and no longer does.

    ``buses``: ``event_buses`` snapshots (account_id, region, bus, allowed_principals,
    collected_at), the latest and any earlier ones to compare with. The latest snapshot is the
    newest per (account_id, region).

    Returns columns account_id, region, bus (the bus and its owner), producer (the removed
    principal's account id), last_allowed_at (the newest snapshot that still allowed it),
    removed_by (the latest snapshot's time). A bus whose latest policy allows ``*`` or a whole
    organization (``org:...``) has no removals; a bus's owner is never "removed".
    """
    columns = ["account_id", "region", "bus", "producer", "last_allowed_at", "removed_by"]
    if buses.empty:
        return pd.DataFrame(columns=columns)
    times = pd.to_datetime(buses["collected_at"], utc=True)
    frame = buses.assign(collected_at=times)
    latest = latest_snapshot(frame, ("account_id", "region"), "collected_at")
    now_allowed: dict[tuple[str, str, str], set[str]] = {}
    open_to_all: set[tuple[str, str, str]] = set()
    removed_by: dict[tuple[str, str, str], pd.Timestamp] = {}
    for row in tuples(latest):
        key = (str(row.account_id), str(row.region), str(row.bus))
        principals = _as_list(row.allowed_principals)
        if any(p == "*" or p.startswith("org:") for p in principals):
            open_to_all.add(key)
        now_allowed[key] = {_principal_account(p) for p in principals}
        removed_by[key] = row.collected_at
    rows: dict[tuple[str, str, str, str], pd.Timestamp] = {}
    for row in tuples(frame):
        key = (str(row.account_id), str(row.region), str(row.bus))
        if key not in now_allowed or key in open_to_all:
            continue  # a deleted bus, or one that now admits everyone
        for principal in _as_list(row.allowed_principals):
            producer = _principal_account(principal)
            if producer in now_allowed[key] or producer == key[0] or \
                    producer == "*" or producer.startswith("org:"):
                continue
            seen = rows.get((*key, producer))
            if seen is None or row.collected_at > seen:
                rows[(*key, producer)] = row.collected_at
    return pd.DataFrame(
        [(*key, when, removed_by[key[:3]]) for key, when in sorted(rows.items())],
        columns=columns,
    )
