"""Schema drift's I/O edge: the latest discovered schemas and rules read from the store, and
crossed (:mod:`orgscope.schema_drift`). Every value reaches DuckDB as a parameter."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import pandas as pd

from orgscope.health.producers import source_producers
from orgscope.schema_drift import breaking_changes
from orgscope.store import Store

log = logging.getLogger(__name__)

SCHEMAS_SQL = ("SELECT account_id, region, registry, schema_name, source, detail_type, version, "
               "version_created, content_type, fields, field_count FROM event_schemas "
               "ORDER BY account_id, region, schema_name, version")
RULES_SQL = ("SELECT account_id, region, bus, rule, state, event_pattern FROM rules "
             "ORDER BY account_id, region, bus, rule")


def read_schemas(store: Store) -> pd.DataFrame:
    """The latest ``event_schemas`` snapshot (empty before the first schemas run)."""
    if "event_schemas" not in store.datasets:
        return pd.DataFrame()
    return store.query(SCHEMAS_SQL)


def read_rules(store: Store) -> pd.DataFrame:
    """The latest rules with their event patterns."""
    return store.query(RULES_SQL)


def producer_map(sources: pd.Series, accounts: pd.DataFrame) -> dict[str, list[str]]:
    """source -> producer account ids, by the health model's heuristic
    (:func:`orgscope.health.producers.source_producers`)."""
    if accounts.empty:
        return {}
    return {str(s): source_producers(str(s), accounts) for s in sources.dropna().unique()}


def read_breaking_changes(store: Store, accounts: pd.DataFrame) -> pd.DataFrame:
    """Every rule the newest discovered versions break (orgscope.schema_drift.BREAK_COLUMNS);
    ``accounts``: account_id, name, team (names the producers)."""
    schemas = read_schemas(store)
    if schemas.empty:
        return breaking_changes(pd.DataFrame(), schemas)
    return breaking_changes(read_rules(store), schemas, producer_map(schemas["source"], accounts))


def accounts_frame(infos: Mapping[str, tuple[str, str]]) -> pd.DataFrame:
    """account id -> (name, team) as the frame :func:`producer_map` reads."""
    return pd.DataFrame([{"account_id": k, "name": v[0], "team": v[1]} for k, v in infos.items()],
                        columns=["account_id", "name", "team"])
