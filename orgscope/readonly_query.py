"""`orgscope query`'s SQL: one read-only SELECT over the store's views, and nothing else.

The text comes from whoever runs the command (or from a script that builds it from data), so
it is checked and then run on a connection that cannot reach past the store:

* exactly one statement, and it is a SELECT (``WITH``, ``FROM``-first, ``DESCRIBE`` and
  ``SUMMARIZE`` are SELECTs to DuckDB); COPY, ATTACH, INSTALL, LOAD, SET, PRAGMA, CREATE and
  every other statement are refused before DuckDB runs anything;
* after the views are built, DuckDB's ``enable_external_access`` is off with the store's
  folder as the only ``allowed_directories`` (none for a store on S3: its views scan Arrow
  datasets registered by orgscope, not paths), extensions are neither installed nor loaded
  automatically, and ``lock_configuration`` keeps a query from setting any of it back.

So ``read_text('/etc/passwd')``, ``COPY ... TO``, ``ATTACH`` and ``INSTALL httpfs`` fail with a
line saying what is allowed (docs/datasets.md, "Querying the store").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from orgscope.store import Store
from orgscope.store_files import LocalFiles

ALLOWED = ("one SELECT statement over the store's views (WITH, DESCRIBE and SUMMARIZE "
           "included); no COPY, ATTACH, INSTALL, LOAD, SET, PRAGMA, CREATE or second statement, "
           "and no file outside the store")


class QueryRefused(ValueError):
    """SQL that `orgscope query` will not run; the message says why and what is allowed."""


def check_select(sql: str) -> str:
    """``sql`` when it is exactly one SELECT statement; raises :class:`QueryRefused` naming
    what was found otherwise (parsed by DuckDB, so quoting and comments cannot hide a
    second statement)."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        raise QueryRefused(f"not valid SQL: {str(error).strip()}") from None
    if len(statements) != 1:
        raise QueryRefused(f"{len(statements)} statements given: allowed is {ALLOWED}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise QueryRefused(f"a {kind.name} statement: allowed is {ALLOWED}")
    return sql


def allowed_directories(store: Store) -> list[str]:
    """The folders a query's connection may read: the store's own folder when it is local,
    none when it is on S3 (those views scan registered Arrow datasets)."""
    if isinstance(store.place, LocalFiles):
        return [str(Path(store.place.root).resolve()) + "/"]
    return []


def lock_down(connection: duckdb.DuckDBPyConnection, directories: list[str]) -> None:
    """Close ``connection`` around ``directories``: no other file, no network, no extension
    installed or loaded, and no setting changed afterwards."""
    connection.execute("SET autoinstall_known_extensions = false")
    connection.execute("SET autoload_known_extensions = false")
    connection.execute("SET allow_community_extensions = false")
    connection.execute("SET allowed_directories = ?", [directories])
    connection.execute("SET enable_external_access = false")
    connection.execute("SET lock_configuration = true")


def run_query(store: Store, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
    """The rows of one read-only SELECT over ``store``'s views (:meth:`Store.query`, on a
    connection :func:`lock_down` closed). Raises :class:`QueryRefused` for anything else and
    :class:`StoreError` with DuckDB's message when it fails."""
    check_select(sql)
    directories = allowed_directories(store)
    try:
        return store.query(sql, params, prepare=lambda c: lock_down(c, directories))
    except duckdb.PermissionException as error:
        first = str(error).strip().splitlines()[0]
        raise QueryRefused(f"{first}: allowed is {ALLOWED}") from None
