"""The newest run of every (collector, account, region), kept per ``runs`` file in this process.

Every page and every "latest snapshot" view asks the same question of ``runs``: which is the
newest run, and the newest successful one, of each collector in each account and region. Asked
of the whole history it is a scan of every run (millions of rows a month at 100 accounts:
docs/performance.md) on every query. A Parquet file of the store is never rewritten under its
name, so the answer of one file never changes: it is computed once per file and kept, and the
answer for the store is the newest over the files listed now. After a new cycle only its new
file is read; a compaction's merged file is read once and the files it replaced drop out.

:func:`latest_runs` returns the table DuckDB sees as ``runs_latest`` (:meth:`Store.connect`):

========================  ==========================================================
collector, account_id,    the key
region
started_at                the newest run's start
status, error, api_calls  that run's outcome
ok_at                     the newest run with status ``ok`` (null when none)
========================  ==========================================================

Duplicates of a run in two files (a compaction half-done) change nothing: the newest is the
newest. The cache is per process and holds only the files listed the last time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import PurePath

import duckdb
import pyarrow as pa

log = logging.getLogger(__name__)

KEY = ("collector", "account_id", "region")
RUNS_LATEST = "runs_latest"

_PER_FILE: dict[tuple[str, str], pa.Table] = {}
#: Per store: the files the last answer was over, and that answer.
_COMBINED: dict[str, tuple[frozenset[str], pa.Table]] = {}
_LOCK = threading.Lock()

#: The newest run and the newest ok run of each key, per file (``filename`` kept).
_PER_FILE_SQL = """
SELECT filename, collector, account_id, region,
       max(started_at) AS started_at,
       arg_max(status, started_at) AS status,
       arg_max(error, started_at) AS error,
       arg_max(api_calls, started_at) AS api_calls,
       max(started_at) FILTER (WHERE status = 'ok') AS ok_at
FROM ({scan}) GROUP BY ALL
"""

_COMBINE_SQL = """
SELECT collector, account_id, region,
       max(started_at) AS started_at,
       arg_max(status, started_at) AS status,
       arg_max(error, started_at) AS error,
       arg_max(api_calls, started_at) AS api_calls,
       max(ok_at) AS ok_at
FROM per_file GROUP BY ALL
"""

RUN_INDEX_SCHEMA = pa.schema([
    ("collector", pa.string()), ("account_id", pa.string()), ("region", pa.string()),
    ("started_at", pa.timestamp("us", tz="UTC")), ("status", pa.string()),
    ("error", pa.string()), ("api_calls", pa.int64()),
    ("ok_at", pa.timestamp("us", tz="UTC")),
])


def latest_runs(connection: duckdb.DuckDBPyConnection, base: str, files: Sequence[PurePath],
                scan: Callable[[list[PurePath]], str]) -> pa.Table:
    """The ``runs_latest`` table (module doc) over ``files``, the ``runs`` files listed now.

    ``scan(files)`` is SQL reading those files with their ``filename``; only the files not
    seen before are read, on ``connection`` (its time zone UTC). The answer over the files
    listed last time is kept too: when files were only added since, it is combined with
    theirs alone (the newest of newests is the newest). Raises what DuckDB raises.
    """
    names = frozenset(str(f) for f in files)
    with _LOCK:
        kept = _COMBINED.get(base)
    if kept is not None and kept[0] == names:
        return kept[1]
    grown = kept is not None and kept[0] <= names
    wanted = [f for f in files if not (grown and kept is not None and str(f) in kept[0])]
    parts = [kept[1]] if grown and kept is not None else []
    parts += _per_file(connection, base, wanted, scan, names)
    if not parts:
        return RUN_INDEX_SCHEMA.empty_table()
    connection.register("per_file", pa.concat_tables(parts))
    try:
        combined = _arrow(connection, _COMBINE_SQL).cast(RUN_INDEX_SCHEMA)
    finally:
        connection.unregister("per_file")
    with _LOCK:
        _COMBINED[base] = (names, combined)
    return combined


def _per_file(connection: duckdb.DuckDBPyConnection, base: str, files: Sequence[PurePath],
              scan: Callable[[list[PurePath]], str], listed: frozenset[str]) -> list[pa.Table]:
    """The answers of ``files``, kept or read now (those not seen before, in one scan);
    forgets files no longer ``listed``."""
    with _LOCK:
        known = {str(f): _PER_FILE[(base, str(f))] for f in files if (base, str(f)) in _PER_FILE}
    new_files = [f for f in files if str(f) not in known]
    parts = list(known.values())
    if new_files:
        fresh = _arrow(connection, _PER_FILE_SQL.format(scan=scan(new_files)))
        parts.append(fresh.drop_columns(["filename"]).cast(RUN_INDEX_SCHEMA))
        by_file = _split_by_file(fresh, [str(f) for f in new_files])
        log.debug("runs index: read %d new files", len(new_files))
        with _LOCK:
            for key in list(_PER_FILE):
                if key[0] == base and key[1] not in listed:
                    del _PER_FILE[key]  # compacted or quarantined: never listed again
            _PER_FILE.update({(base, name): table for name, table in by_file.items()})
    return parts


def _arrow(connection: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    table: pa.Table = connection.sql(sql).to_arrow_table()
    return table


def _split_by_file(table: pa.Table, names: Sequence[str]) -> dict[str, pa.Table]:
    """{file name: its rows without ``filename``} for each of ``names`` (a file without rows:
    an empty table). A name DuckDB reports differently (an s3:// URL for a listed
    ``bucket/key``) is matched without its scheme; when some row matches no name, nothing is
    kept (it is read again next time: slower, never wrong)."""
    wanted = {name.removeprefix("s3://"): name for name in names}
    rows: dict[str, list[int]] = {name: [] for name in names}
    for index, reported in enumerate(table.column("filename").to_pylist()):
        name = wanted.get(str(reported).removeprefix("s3://"))
        if name is None:
            log.warning("runs index: DuckDB named a file %r that was not listed; not kept",
                        reported)
            return {}
        rows[name].append(index)
    body = table.drop_columns(["filename"])
    return {name: body.take(pa.array(taken, pa.int64())).cast(RUN_INDEX_SCHEMA)
            for name, taken in rows.items()}


def forget(base: str | None = None) -> None:
    """Drop what is kept (of one store, or all): for tests that rewrite a store's files."""
    with _LOCK:
        for key in list(_PER_FILE):
            if base is None or key[0] == base:
                del _PER_FILE[key]
        for store in list(_COMBINED):
            if base is None or store == base:
                del _COMBINED[store]
