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

import logging
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from orgscope.store import Store, StoreError
from orgscope.store_files import LocalFiles

log = logging.getLogger(__name__)

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
    """The rows of one read-only SELECT over ``store``'s views. Raises :class:`QueryRefused`
    for anything else and :class:`StoreError` with DuckDB's message when it fails (a file
    compacted away while it ran: once more over a fresh listing, as ``Store.query`` does)."""
    check_select(sql)
    try:
        return _run_once(store, sql, params)
    except duckdb.Error as error:
        if not store.place.vanished(error):
            raise _refusal_or_error(error) from None
        log.debug("a file vanished during the query, listing again: %s", error)
    try:
        return _run_once(store, sql, params)
    except duckdb.Error as error:
        raise _refusal_or_error(error) from None


def _run_once(store: Store, sql: str, params: list[Any] | None) -> pd.DataFrame:
    connection = store.connect(store.datasets_used(sql))
    try:
        lock_down(connection, allowed_directories(store))
        return connection.execute(sql, params or []).fetchdf()
    finally:
        connection.close()


def _refusal_or_error(error: duckdb.Error) -> Exception:
    text = str(error).strip()
    if isinstance(error, duckdb.PermissionException):
        return QueryRefused(f"{text.splitlines()[0]}: allowed is {ALLOWED}")
    return StoreError(text)
