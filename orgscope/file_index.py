"""Answers about the newest rows, kept per store file in this process (docs/performance.md).

Two questions come with almost every query: which is the newest run (and newest successful
run) of each collector in each account and region, and which rows are a snapshot dataset's
latest snapshot of each key (the accounts, the verdicts). Asked of the whole history they are
a scan or a window function over every row (millions of runs a month at 100 accounts), on
every query. A Parquet file of the store is never rewritten under its name, so what one file
says never changes: it is computed once per file and kept, and the answer for the store is
combined over the files listed now; when files were only added since the last answer, that
answer is combined with theirs alone. After a new cycle only its new file is read; a
compaction's merged file is read once and the files it replaced drop out. Both answers are
"newest of" questions, so a row read twice (a compaction half-done) changes nothing.

:data:`RUNS_INDEX` is the table DuckDB sees as ``runs_latest`` (:meth:`Store.connect`):

========================  ==========================================================
collector, account_id,    the key
region
started_at                the newest run's start
status, error, api_calls  that run's outcome
ok_at                     the newest run with status ``ok`` (null when none)
========================  ==========================================================

:func:`snapshot_index` answers, per key of a snapshot dataset, its newest time and the file
holding that snapshot (the newest file on a tie): the latest view reads only those files.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePath

import duckdb
import pyarrow as pa

from orgscope.datasets.schema import Dataset
from orgscope.store_files import quote_identifier

log = logging.getLogger(__name__)

RUNS_LATEST = "runs_latest"
Scan = Callable[[list[PurePath]], str]


@dataclass(frozen=True)
class FileIndex:
    """One question asked of every file (``per_file``: SQL over ``{scan}``, the files not
    seen before, with a ``filename`` column out) and its combination over files (``combine``:
    SQL over the table ``per_file``); ``schema``: both answers' columns."""

    name: str
    per_file: str
    combine: str
    schema: pa.Schema


RUNS_INDEX = FileIndex(
    name=RUNS_LATEST,
    per_file="""
        SELECT filename, collector, account_id, region,
               max(started_at) AS started_at, arg_max(status, started_at) AS status,
               arg_max(error, started_at) AS error, arg_max(api_calls, started_at) AS api_calls,
               max(started_at) FILTER (WHERE status = 'ok') AS ok_at
        FROM ({scan}) GROUP BY ALL""",
    combine="""
        SELECT NULL::VARCHAR AS filename, collector, account_id, region,
               max(started_at) AS started_at, arg_max(status, started_at) AS status,
               arg_max(error, started_at) AS error, arg_max(api_calls, started_at) AS api_calls,
               max(ok_at) AS ok_at
        FROM per_file GROUP BY ALL""",
    schema=pa.schema([
        ("filename", pa.string()), ("collector", pa.string()), ("account_id", pa.string()),
        ("region", pa.string()), ("started_at", pa.timestamp("us", tz="UTC")),
        ("status", pa.string()), ("error", pa.string()), ("api_calls", pa.int64()),
        ("ok_at", pa.timestamp("us", tz="UTC")),
    ]),
)


def snapshot_index(dataset: Dataset) -> FileIndex:
    """Per key of ``dataset`` (a snapshot dataset): its newest time and the newest file that
    holds a snapshot at that time (columns: filename, the keys, the time column)."""
    keys = ", ".join(quote_identifier(k) for k in dataset.snapshot_of)
    time = quote_identifier(dataset.time_column)
    fields = [pa.field("filename", pa.string())]
    fields += [dataset.schema.field(k) for k in dataset.snapshot_of]
    fields.append(dataset.schema.field(dataset.time_column))
    return FileIndex(
        name=f"{dataset.name}__latest_keys",
        per_file=f"SELECT filename, {keys}, max({time}) AS {time} FROM ({{scan}}) GROUP BY ALL",
        combine=f"SELECT max(filename) AS filename, {keys}, {time} FROM (SELECT * FROM "
                f"per_file QUALIFY {time} = max({time}) OVER (PARTITION BY {keys})) "
                "GROUP BY ALL",
        schema=pa.schema([f.with_nullable(True) for f in fields]),
    )


_PER_FILE: dict[tuple[str, str, str], pa.Table] = {}
#: Per (store, index): the files the last answer was over, and that answer.
_COMBINED: dict[tuple[str, str], tuple[frozenset[str], pa.Table]] = {}
_LOCK = threading.Lock()


def answer(index: FileIndex, connection: duckdb.DuckDBPyConnection, base: str,
           files: Sequence[PurePath], scan: Scan) -> pa.Table:
    """``index``'s answer over ``files`` (listed now) of the store at ``base``.

    ``scan(files)`` is SQL reading those files with their ``filename``; only files not seen
    before are read, on ``connection`` (its time zone UTC). Raises what DuckDB raises.
    """
    names = frozenset(str(f) for f in files)
    with _LOCK:
        kept = _COMBINED.get((base, index.name))
    if kept is not None and kept[0] == names:
        return kept[1]
    grown = kept is not None and kept[0] <= names
    parts = [kept[1]] if grown and kept is not None else []
    wanted = [f for f in files if not (grown and kept is not None and str(f) in kept[0])]
    parts += _per_file(index, connection, base, wanted, scan, listed=names)
    if not parts:
        return index.schema.empty_table()
    connection.register("per_file", pa.concat_tables(parts))
    try:
        combined = _arrow(connection, index.combine).cast(index.schema)
    finally:
        connection.unregister("per_file")
    with _LOCK:
        _COMBINED[(base, index.name)] = (names, combined)
    return combined


def _per_file(index: FileIndex, connection: duckdb.DuckDBPyConnection, base: str,
              files: Sequence[PurePath], scan: Scan, *, listed: frozenset[str]
              ) -> list[pa.Table]:
    """What each of ``files`` says, kept or read now (the unseen ones in one scan);
    forgets the files of this index no longer ``listed``."""
    with _LOCK:
        known = {str(f): _PER_FILE[(base, index.name, str(f))] for f in files
                 if (base, index.name, str(f)) in _PER_FILE}
    new_files = [f for f in files if str(f) not in known]
    parts = list(known.values())
    if new_files:
        fresh = _arrow(connection, index.per_file.format(scan=scan(new_files)))
        fresh = fresh.cast(index.schema)
        parts.append(fresh)
        by_file = _split_by_file(fresh, [str(f) for f in new_files])
        log.debug("%s: read %d new files", index.name, len(new_files))
        with _LOCK:
            for key in list(_PER_FILE):
                if key[:2] == (base, index.name) and key[2] not in listed:
                    del _PER_FILE[key]  # compacted or quarantined: never listed again
            _PER_FILE.update({(base, index.name, name): table
                              for name, table in by_file.items()})
    return parts


def _arrow(connection: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    table: pa.Table = connection.sql(sql).to_arrow_table()
    return table


def reported(path: PurePath | str) -> str:
    """A file's name as DuckDB reports it in ``filename``, scheme left off (an S3 object
    is listed as ``bucket/key`` and reported as ``s3://bucket/key``)."""
    return str(path).removeprefix("s3://")


def _split_by_file(table: pa.Table, names: Sequence[str]) -> dict[str, pa.Table]:
    """{listed file name: its rows} for each of ``names`` (a file without rows: an empty
    table). When some row matches no name, nothing is kept (read again next time: slower,
    never wrong)."""
    wanted = {reported(name): name for name in names}
    rows: dict[str, list[int]] = {name: [] for name in names}
    for position, name in enumerate(table.column("filename").to_pylist()):
        listed = wanted.get(reported(name))
        if listed is None:
            log.warning("file index: DuckDB named a file %r that was not listed; not kept",
                        name)
            return {}
        rows[listed].append(position)
    return {name: table.take(pa.array(taken, pa.int64())) for name, taken in rows.items()}


def forget(base: str | None = None) -> None:
    """Drop what is kept (of one store, or all): for tests that rewrite a store's files."""
    with _LOCK:
        for key in list(_PER_FILE):
            if base is None or key[0] == base:
                del _PER_FILE[key]
        for combined in list(_COMBINED):
            if base is None or combined[0] == base:
                del _COMBINED[combined]
