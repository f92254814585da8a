"""The dashboard's data layer: read-only, parameterized queries over the store, then caching.

Two layers, on purpose:

* plain functions that take a :class:`~orgscope.store.Store` and filter values and return a
  DataFrame: the query logic, unit-tested without Streamlit;
* ``load_*`` wrappers decorated with ``st.cache_data(ttl=30)`` that take only hashable widget
  values (the store's base path, the time range label, tuples of ids) so that every distinct
  filter combination is cached on its own, and open the store themselves.

Every user-chosen value reaches DuckDB as a ``?`` parameter. The only text spliced into SQL is
column names chosen in this module.

Filter semantics: an empty tuple means "all". Accounts and teams narrow the set of accounts;
regions narrow rules and runs (accounts have no region). The time range applies to history
(reachability checks, collection runs); inventory and reachability are always the *latest*
snapshot, with its age shown, because "what is true now" is what the page is for.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from dashboard.filters import Filters
from dashboard.sql import in_list, list_params, scope_params, text_list
from orgscope import plugins
from orgscope.access import ACCESS_STATES, REACHABILITY_COLLECTOR, access_table
from orgscope.datasets import all_datasets
from orgscope.store import Store
from orgscope.targets import target_arns

log = logging.getLogger(__name__)

CACHE_TTL_S = 30

#: Rule states in display order, with one colour each, shared by charts and tables.
STATE_COLOURS: dict[str, str] = {
    "ENABLED": "#2e9e6b",
    "DISABLED": "#d6453d",
}
OTHER_STATE_COLOUR = "#9aa0a6"


def open_store(store_base: str) -> Store:
    """A read-only handle on the store at ``store_base`` with every registered dataset."""
    return Store(store_base, all_datasets())


_SCOPE_CTE = f"""
scope AS (
    SELECT * FROM accounts
    WHERE {in_list("account_id")} AND {in_list("team")}
)"""


# --- plain query functions -----------------------------------------------------------------


def last_collection(store: Store) -> datetime | None:
    """When the newest collection cycle started (runs or reachability), or None if never."""
    frame = store.query(
        "SELECT greatest((SELECT max(started_at) FROM runs_latest), "
        "(SELECT max(checked_at) FROM accounts_history)) AS last"
    )
    value = frame["last"].iloc[0] if len(frame) else None
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).tz_convert(UTC).to_pydatetime()


def account_choices(store: Store) -> pd.DataFrame:
    """Every account the store knows: account_id, name, team (for the sidebar filters)."""
    return store.query("SELECT account_id, name, team FROM accounts ORDER BY name, account_id")


def region_choices(store: Store) -> list[str]:
    """Regions that appear in collection runs."""
    frame = store.query("SELECT DISTINCT region FROM runs_latest ORDER BY region")
    return [str(region) for region in frame["region"]]


def accounts_overview(store: Store, filters: Filters, now: datetime) -> pd.DataFrame:
    """One row per account in scope: its latest reachability, its rules, its recent history.

    Columns: account_id, name, team, environment, cost_center, reachable, reason, checked_at,
    unreachable_since (start of the current unreachable streak, else NaT), checks_in_range,
    unreachable_in_range, failed_runs_in_range, inventory_at (newest ok inventory run, NaT when
    none ever succeeded), rules, rules_enabled, rules_disabled (NULL, not 0, when no inventory
    has ever been read: "no data" is not "no rules"), access (readable, partial, no-read or
    unreachable: :mod:`orgscope.access`, from the latest run of every collector), denied
    (the refused actions, "action (collector)"). Worst access first.
    """
    since = filters.since(now)
    regions = in_list("region")
    sql = f"""
    WITH {_SCOPE_CTE},
    last_ok AS (
        SELECT account_id, max(checked_at) AS at FROM accounts_history
        WHERE reachable GROUP BY account_id
    ),
    streak AS (
        SELECT h.account_id, min(h.checked_at) AS unreachable_since
        FROM accounts_history h LEFT JOIN last_ok o USING (account_id)
        WHERE NOT h.reachable AND (o.at IS NULL OR h.checked_at > o.at)
        GROUP BY h.account_id
    ),
    checks AS (
        SELECT account_id, count(*) AS checks_in_range,
               count(*) FILTER (WHERE NOT reachable) AS unreachable_in_range
        FROM accounts_history WHERE checked_at >= ? GROUP BY account_id
    ),
    failures AS (
        SELECT account_id, count(*) AS failed_runs_in_range FROM runs
        WHERE started_at >= ? AND status = 'error' AND {regions} GROUP BY account_id
    ),
    inventory AS (
        SELECT account_id, max(ok_at) AS inventory_at FROM runs_latest
        WHERE collector = ? AND ok_at IS NOT NULL AND {regions} GROUP BY account_id
    ),
    rule_counts AS (
        SELECT account_id, count(*) AS rules,
               count(*) FILTER (WHERE state = 'ENABLED') AS rules_enabled,
               count(*) FILTER (WHERE state = 'DISABLED') AS rules_disabled
        FROM rules WHERE {regions} GROUP BY account_id
    )
    SELECT s.account_id, s.name, s.team, s.environment, s.cost_center, s.reachable, s.reason,
           s.checked_at, k.unreachable_since,
           coalesce(c.checks_in_range, 0) AS checks_in_range,
           coalesce(c.unreachable_in_range, 0) AS unreachable_in_range,
           coalesce(f.failed_runs_in_range, 0) AS failed_runs_in_range,
           i.inventory_at,
           CASE WHEN i.inventory_at IS NULL THEN NULL ELSE coalesce(r.rules, 0) END AS rules,
           CASE WHEN i.inventory_at IS NULL THEN NULL
                ELSE coalesce(r.rules_enabled, 0) END AS rules_enabled,
           CASE WHEN i.inventory_at IS NULL THEN NULL
                ELSE coalesce(r.rules_disabled, 0) END AS rules_disabled
    FROM scope s
    LEFT JOIN streak k USING (account_id)
    LEFT JOIN checks c USING (account_id)
    LEFT JOIN failures f USING (account_id)
    LEFT JOIN inventory i USING (account_id)
    LEFT JOIN rule_counts r USING (account_id)
    ORDER BY s.reachable, s.name, s.account_id
    """
    params = [
        *scope_params(filters),
        since,
        since,
        *list_params(filters.regions),
        REACHABILITY_COLLECTOR,
        *list_params(filters.regions),
        *list_params(filters.regions),
    ]
    frame = store.query(sql, params)
    for column in ("rules", "rules_enabled", "rules_disabled"):
        frame[column] = frame[column].astype("Int64")
    states = access_table(frame[["account_id", "reachable", "reason"]],
                          latest_runs(store, now - ACCESS_LOOKBACK),
                          {c.name: c.iam_actions for c in plugins.COLLECTORS.values()})
    frame = frame.merge(states[["account_id", "access", "denied"]], on="account_id", how="left")
    order = {state: i for i, state in enumerate(ACCESS_STATES)}
    frame["access_order"] = frame["access"].map(order).fillna(len(order)).astype("int64")
    return frame.sort_values(["access_order", "name", "account_id"], kind="stable") \
        .drop(columns="access_order").reset_index(drop=True)


#: How far back the latest run of each collector is looked for to tell an account's access
#: state (the cost collector runs every 8 hours by default).
ACCESS_LOOKBACK = timedelta(days=2)


def latest_runs(store: Store, since: datetime) -> pd.DataFrame:
    """The newest run of each (collector, account_id, region) since ``since``: collector,
    account_id, region, status, error, api_calls."""
    return store.query(
        "SELECT collector, account_id, region, status, error, api_calls FROM runs_latest "
        "WHERE started_at >= ?", [since])


def rules_inventory(store: Store, filters: Filters, search: str = "") -> pd.DataFrame:
    """The latest rule inventory of the accounts and regions in scope, optionally searched.

    ``search`` is matched case-insensitively, as plain text (no wildcards), against the rule,
    bus, description, account name and id, targets and event pattern.

    Columns: account, account_id, team, region, bus, rule, state, target_count, targets (list
    of target ARNs), dlq_arns (list), description, schedule_expression, event_pattern,
    managed_by, collected_at.
    """
    sql = f"""
    WITH {_SCOPE_CTE}
    SELECT s.name AS account, r.account_id, s.team, r.region, r.bus, r.rule, r.state,
           r.target_count, r.targets, r.dlq_arns, r.description, r.schedule_expression,
           r.event_pattern, r.managed_by, r.collected_at
    FROM rules r JOIN scope s USING (account_id)
    WHERE {in_list("r.region")}
      AND (? = '' OR contains(lower(concat_ws(' ', r.rule, r.bus, r.description, s.name,
                                               r.account_id, r.targets, r.event_pattern)),
                              lower(?)))
    ORDER BY s.name, r.region, r.bus, r.rule
    """
    text = search.strip()
    params = [*scope_params(filters), *list_params(filters.regions), text, text]
    frame = store.query(sql, params)
    frame["targets"] = frame["targets"].map(target_arns)
    frame["dlq_arns"] = frame["dlq_arns"].map(text_list)
    frame["target_count"] = frame["target_count"].astype("Int64")
    return frame


def rule_state_counts(overview: pd.DataFrame) -> pd.DataFrame:
    """Rules per account and state from :func:`accounts_overview`, long form for a chart.

    Columns: account (display name), state (ENABLED, DISABLED, OTHER), rules. Accounts whose
    inventory was never read are left out; accounts with no rules keep a zero row.
    """
    known = overview[overview["rules"].notna()]
    rows = []
    for record in known.to_dict("records"):
        rules, enabled = int(record["rules"]), int(record["rules_enabled"])
        disabled = int(record["rules_disabled"])
        for state, count in (("ENABLED", enabled), ("DISABLED", disabled),
                             ("OTHER", rules - enabled - disabled)):
            if count or state == "ENABLED":
                rows.append({"account": record["name"], "state": state, "rules": count})
    return pd.DataFrame(rows, columns=["account", "state", "rules"])


def state_colours(states: Sequence[str]) -> dict[str, str]:
    """A colour for every state present; unknown states share one neutral colour."""
    return {state: STATE_COLOURS.get(state, OTHER_STATE_COLOUR) for state in states}


# --- cached wrappers (hashable widget values in, DataFrames out) -----------------------------


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_last_collection(store_base: str) -> datetime | None:
    return last_collection(open_store(store_base))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_account_choices(store_base: str) -> pd.DataFrame:
    return account_choices(open_store(store_base))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_region_choices(store_base: str) -> list[str]:
    return region_choices(open_store(store_base))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner="Reading accounts…")
def load_accounts_overview(
    store_base: str,
    time_range: str,
    account_ids: tuple[str, ...],
    teams: tuple[str, ...],
    regions: tuple[str, ...],
) -> pd.DataFrame:
    filters = Filters(time_range=time_range, account_ids=account_ids, teams=teams, regions=regions)
    return accounts_overview(open_store(store_base), filters, datetime.now(UTC))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner="Reading rule inventory…")
def load_rules_inventory(
    store_base: str,
    account_ids: tuple[str, ...],
    teams: tuple[str, ...],
    regions: tuple[str, ...],
    search: str,
) -> pd.DataFrame:
    filters = Filters(account_ids=account_ids, teams=teams, regions=regions)
    return rules_inventory(open_store(store_base), filters, search)
