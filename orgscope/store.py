"""The store: Parquet datasets, Hive-partitioned by date, written atomically, read with DuckDB.

Layout under the base path (a local folder, a ``file://`` URL or ``s3://bucket/prefix``)::

    <base>/<dataset>/date=YYYY-MM-DD/<run_id>.parquet

Writers (the collection runner) only ever add whole files under names never used before: a
local file is written under a temporary name and linked into place, an S3 object is one PUT of
the finished bytes, so a reader sees a file entirely or not at all (see
:mod:`orgscope.store_files`, the only code that differs by place). Past days are compacted into
one file per partition (:meth:`Store.compact_all`, hourly in ``orgscope serve``), because DuckDB's
cost grows with the number of files more than with rows. Readers open an in-memory DuckDB
connection with one read-only view per dataset; DuckDB never holds the files open between
queries, so collectors and any number of dashboards can share a store. For snapshot datasets
the view ``<name>`` holds the latest snapshot per key and ``<name>_history`` every snapshot.

A file that cannot be Parquet (zero bytes, truncated, something else) is moved to
``<base>/_quarantine/<dataset>/`` with a WARNING naming it, by whichever reader or compaction
finds it first; the views and compaction go on without it (docs/datasets.md, "Faults").
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import PurePath
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from orgscope.datasets.schema import Dataset
from orgscope.file_index import (
    RUNS_INDEX,
    RUNS_LATEST,
    FileIndex,
    answer,
    reported,
    snapshot_index,
)
from orgscope.store_files import (
    READ_OPTIONS,
    TMP_SUFFIX,
    StoreError,
    StoreFiles,
    duckdb_type,
    open_files,
    quote_identifier,
    sql_string,
)

__all__ = ["READ_OPTIONS", "TMP_SUFFIX", "CompactionReport", "Store", "StoreError"]

log = logging.getLogger(__name__)

#: Called on a query's connection after its views are built, before the query runs.
Prepare = Callable[[duckdb.DuckDBPyConnection], None]

_sequence = itertools.count()
_sequence_lock = threading.Lock()


def ordered_id(prefix: str, now: datetime | None = None) -> str:
    """A file id that sorts after every earlier one this process wrote with ``prefix``:
    ``<prefix>-YYYYmmddTHHMMSS.ffffffZ-<sequence>`` (the sequence breaks ties within one
    microsecond; it is zero-padded so it sorts as text). Rows rewritten under a dataset's
    ``unique_key`` need such ids: the store keeps the row of the file whose name sorts last."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    with _sequence_lock:
        number = next(_sequence)
    return f"{prefix}-{moment:%Y%m%dT%H%M%S.%f}Z-{number:08d}"

#: A compacted file's name is ``<newest file merged>-compacted.parquet``; its Parquet metadata
#: lists every file it replaces under this key.
COMPACTED_MARK = "-compacted"
COMPACTED_FROM = b"orgscope.compacted_from"
#: Compacted files whose replaced names this process keeps (see Store._replaced_by).
REPLACED_CACHE_SIZE = 20_000
#: How many times a query is listed and run again when a file it listed was deleted before
#: DuckDB read it (a compaction replacing it meanwhile).
VANISHED_RETRIES = 5
_REPLACED: dict[tuple[str, str], tuple[str, ...]] = {}
_REPLACED_LOCK = threading.Lock()


@dataclass
class CompactionReport:
    """What :meth:`Store.compact_all` did: files merged per dataset, the partitions (or
    datasets) that failed and why, the unreadable files it quarantined and the stale
    temporary files it removed."""

    merged: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    quarantined: list[PurePath] = field(default_factory=list)
    temporaries: list[PurePath] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def lines(self) -> list[str]:
        """The report for people, one line per fact, failures first."""
        out = [f"FAILED {where}: {error}" for where, error in sorted(self.failed.items())]
        out += [f"quarantined {path} (unreadable)" for path in self.quarantined]
        if self.temporaries:
            out.append(f"removed {len(self.temporaries)} stale temporary files")
        return out


class Store:
    """Parquet datasets under ``base`` (a folder, a file:// URL or an s3:// URL)."""

    def __init__(self, base: str, datasets: Iterable[Dataset]) -> None:
        self.base = base
        self.place: StoreFiles = open_files(base)
        self.root = self.place.root
        self.datasets: Mapping[str, Dataset] = {d.name: d for d in datasets}

    @property
    def location(self) -> str:
        """Where the store is, for people (a folder or an s3:// URL without its options)."""
        return self.place.location

    def dataset(self, name: str) -> Dataset:
        try:
            return self.datasets[name]
        except KeyError:
            known = ", ".join(sorted(self.datasets))
            raise StoreError(f"unknown dataset {name!r} (known: {known})") from None

    # --- writing -------------------------------------------------------------------------

    def write(self, name: str, frame: pd.DataFrame, run_id: str) -> list[PurePath]:
        """Check ``frame`` against dataset ``name`` and add it, one file per date partition.

        Returns the files written (none for an empty frame). Raises
        :class:`~orgscope.datasets.SchemaError` when the frame breaks the contract.
        """
        dataset = self.dataset(name)
        table = dataset.to_table(frame)
        if table.num_rows == 0:
            return []
        days = pd.to_datetime(frame[dataset.partition_column], utc=True).dt.date
        written = []
        for day in sorted(set(days)):
            mask = (days == day).to_numpy()
            part = table.filter(mask)
            written.append(self._write_file(self._partition(name, day), run_id, part))
        return written

    def _partition(self, name: str, day: date) -> PurePath:
        return self.root / name / f"date={day.isoformat()}"

    def _write_file(self, partition: PurePath, stem: str, table: pa.Table) -> PurePath:
        """Add ``table`` as ``<stem>.parquet``, or ``<stem>-<random>.parquet`` when a file of
        that name exists (another writer's, or this run's earlier one): never replace one."""
        final = partition / f"{stem}.parquet"
        while not self.place.create(table, final):
            final = partition / f"{stem}-{uuid.uuid4().hex[:8]}.parquet"
        log.debug("wrote %s rows to %s", table.num_rows, final)
        return final

    # --- compaction ----------------------------------------------------------------------

    def partitions(self, name: str) -> list[tuple[date, int]]:
        """(day, number of files) for every date partition of ``name``."""
        counts: dict[str, int] = {}
        for path in self.place.list_files(self.root / name):
            counts[path.parent.name] = counts.get(path.parent.name, 0) + 1
        return [(date.fromisoformat(key.removeprefix("date=")), n)
                for key, n in sorted(counts.items())]

    def compact(self, name: str, day: date) -> int:
        """Merge the files of one date partition into one; returns how many were merged.

        The merged file is added first (locally: fsynced, file and folder), under a new name,
        with the names of the files it replaces in its Parquet metadata; then those files are
        deleted. Readers skip a file that a compacted file present beside it replaces, so at
        every instant a query sees each row once, on a local disk and on S3 alike, and a file
        added meanwhile is neither hidden nor deleted. A file that cannot be read is
        quarantined and the rest merged. One compaction per dataset at a time (a lock file
        locally, a lock object with an expiry on S3).
        """
        dataset = self.dataset(name)
        partition = self._partition(name, day)
        with self.place.lock(self.root / name):
            files = self.place.list_files(self.root / name, partition.name)
            visible, replaced = self._split(self._readable(name, files)[0])
            if len(visible) < 2:
                self.place.delete(replaced)  # left by a compaction that stopped half-way
                return 0
            tables, merged_files = [], []
            for path in visible:
                table = self._read_or_quarantine(name, path)
                if table is not None:
                    tables.append(_conform(table, dataset))
                    merged_files.append(path)
            if len(merged_files) < 2:
                return 0
            merged = pa.concat_tables(tables, promote_options="default")
            if dataset.unique_key:
                merged = _keep_last(merged, dataset.unique_key)
            merged = merged.sort_by(dataset.time_column)
            gone = sorted(f.name for f in merged_files + replaced)
            merged = merged.replace_schema_metadata({COMPACTED_FROM: json.dumps(gone)})
            # Named after the newest file it merges, so it sorts before any later cycle's file
            # (the newest row of a unique key wins, by file name).
            target = self._write_file(partition, f"{merged_files[-1].stem}{COMPACTED_MARK}",
                                      merged)
            self.place.delete(merged_files + replaced)
        log.info("compacted %s %s: %d files into %s (%d rows)", name, day, len(merged_files),
                 target.name, merged.num_rows)
        return len(merged_files)

    def _read_or_quarantine(self, name: str, path: PurePath) -> pa.Table | None:
        """The rows of ``path``; None when it is gone, or unreadable (then quarantined)."""
        try:
            return self.place.read_table(path)
        except FileNotFoundError:
            return None  # quarantined by a reader since it was listed
        except (OSError, pa.ArrowException) as error:
            self._quarantine(name, path, f"cannot be read: {error}")
            return None

    def compact_all(self, before: date, now: datetime | None = None) -> CompactionReport:
        """Compact every partition of every dataset dated before ``before``, and remove the
        temporary files writers that died left (older than STALE_TMP at ``now``).

        A failing partition (or a dataset that cannot be listed) is logged and named in the
        report; the other partitions and datasets are compacted all the same.
        """
        report = CompactionReport()
        moment = now or datetime.now(UTC)
        for name in self.datasets:
            try:
                report.temporaries += self.place.remove_stale_temporaries(self.root / name,
                                                                          moment)
                files, moved = self._readable(name, self.place.list_files(self.root / name))
            except Exception as error:  # one dataset must not stop the rest
                log.exception("compaction of %s failed: cannot list its files", name)
                report.failed[name] = f"{type(error).__name__}: {error}"
                continue
            report.quarantined += moved
            counts: dict[str, int] = {}
            for path in files:
                counts[path.parent.name] = counts.get(path.parent.name, 0) + 1
            for key, count in sorted(counts.items()):
                day = date.fromisoformat(key.removeprefix("date="))
                if day >= before or count < 2:
                    continue
                try:
                    merged = self.compact(name, day)
                except Exception as error:  # nor one partition the others
                    log.exception("compaction of %s %s failed", name, key)
                    report.failed[f"{name} {key}"] = f"{type(error).__name__}: {error}"
                    continue
                if merged:
                    report.merged[name] = report.merged.get(name, 0) + merged
        if report.temporaries:
            log.info("removed %d stale temporary files: %s", len(report.temporaries),
                     ", ".join(str(p) for p in report.temporaries))
        return report

    def _readable(self, name: str, files: list[PurePath]
                  ) -> tuple[list[PurePath], list[PurePath]]:
        """(the files that can be Parquet, where the others were moved). An unreadable file is
        quarantined with a WARNING; one that cannot be moved is only skipped."""
        bad = self.place.unreadable(files)
        moved = [where for path, reason in bad.items()
                 if (where := self._quarantine(name, path, reason)) is not None]
        return [f for f in files if f not in bad], moved

    def _quarantine(self, name: str, path: PurePath, reason: str) -> PurePath | None:
        try:
            where = self.place.quarantine(path)
        except FileNotFoundError:
            return None  # another reader moved it first
        except (OSError, StoreError) as error:
            log.warning("store: %s of dataset %s is unreadable (%s) and cannot be moved aside "
                        "(%s): skipped, its rows are not read", path, name, reason, error)
            return None
        log.warning("store: %s of dataset %s is unreadable (%s): moved to %s; its rows are "
                    "not read", path, name, reason, where)
        return where

    # --- reading -------------------------------------------------------------------------

    def files(self, name: str) -> list[PurePath]:
        """The files a reader of dataset ``name`` reads now, sorted by path (unreadable ones
        quarantined, replaced ones skipped)."""
        return self._split(self._readable(name, self.place.list_files(self.root / name))[0])[0]

    def _split(self, files: list[PurePath]) -> tuple[list[PurePath], list[PurePath]]:
        """(files to read, files a compacted file beside them already holds).

        Only a partition holding a compacted file and something else costs a footer read.
        """
        by_partition: dict[PurePath, list[PurePath]] = {}
        for path in files:
            by_partition.setdefault(path.parent, []).append(path)
        visible: list[PurePath] = []
        replaced: list[PurePath] = []
        for paths in by_partition.values():
            compacted = [p for p in paths if COMPACTED_MARK in p.stem]
            if len(paths) < 2 or not compacted:
                visible.extend(paths)
                continue
            lists = {path.name: set(self._replaced_by(path)) for path in compacted}
            gone = set().union(*lists.values())
            # Two compactions of the same files (one whose S3 lock expired while it ran)
            # both list them: the one whose list another's holds is redundant (every file it
            # merged is in the other's rows), so the rows are not counted twice.
            for name, listed in sorted(lists.items()):
                if listed and name not in gone and any(
                        other != name and other not in gone and listed <= more
                        for other, more in lists.items()):
                    gone.add(name)
            for path in paths:
                (replaced if path.name in gone else visible).append(path)
        return sorted(visible), sorted(replaced)

    def _replaced_by(self, compacted: PurePath) -> list[str]:
        """The names a compacted file lists as replaced. A file is never rewritten under its
        name, so the answer is kept (per process) and each footer is read once, not on every
        query (the dashboard opens a Store per query)."""
        key = (self.base, str(compacted))
        known = _REPLACED.get(key)
        if known is not None:
            return list(known)
        try:
            listed = self.place.read_metadata(compacted).get(COMPACTED_FROM)
        except FileNotFoundError:
            return []  # deleted by a later compaction since it was listed: replaces nothing now
        except (OSError, pa.ArrowException) as error:
            # guessing "replaces nothing" could count rows twice: say it cannot be read
            raise StoreError(f"cannot read the compacted file {compacted}: {error}") from None
        names = tuple(str(n) for n in json.loads(listed)) if listed else ()
        with _REPLACED_LOCK:
            if len(_REPLACED) >= REPLACED_CACHE_SIZE:
                _REPLACED.pop(next(iter(_REPLACED)))  # the oldest entry
            _REPLACED[key] = names
        return list(names)

    def _view_sql(self, connection: duckdb.DuckDBPyConnection, dataset: Dataset,
                  with_filename: bool = False, since: date | None = None) -> str:
        """Every row of ``dataset`` (plus the ``filename`` each came from, when asked); only
        the date partitions from ``since`` on, when given."""
        own_date = "date" in dataset.columns  # then it is also the partition column
        files = self.files(dataset.name)
        if since is not None:
            floor = f"date={since.isoformat()}"
            files = [f for f in files if f.parent.name >= floor]
        if not files:
            columns = ", ".join(
                f"CAST(NULL AS {duckdb_type(f.type)}) AS {quote_identifier(f.name)}"
                for f in dataset.schema
            )
            partition = "" if own_date else ", CAST(NULL AS DATE) AS date"
            filename = ", CAST(NULL AS VARCHAR) AS filename" if with_filename else ""
            return f"SELECT {columns}{partition}{filename} WHERE false"
        if not dataset.unique_key:
            return self.place.scan_sql(connection, files, dataset, with_filename)
        return self._deduplicated_sql(connection, dataset, files)

    def _deduplicated_sql(self, connection: duckdb.DuckDBPyConnection, dataset: Dataset,
                          files: list[PurePath]) -> str:
        """Rows unique by ``dataset.unique_key``, the newest file's row winning.

        File names sort by the cycle that wrote them, so "newest" is the last name. A compacted
        partition (one file) is already unique and is read as it is; only partitions with more
        than one file pay for the window function.
        """
        by_partition: dict[PurePath, list[PurePath]] = {}
        for path in files:
            by_partition.setdefault(path.parent, []).append(path)
        single = [files[0] for files in by_partition.values() if len(files) == 1]
        several = [f for files in by_partition.values() if len(files) > 1 for f in files]
        parts = []
        if single:
            parts.append(self.place.scan_sql(connection, single, dataset, False))
        if several:
            keys = ", ".join(quote_identifier(k) for k in dataset.unique_key)
            scan = self.place.scan_sql(connection, several, dataset, True)
            parts.append(
                f"SELECT * EXCLUDE (filename) FROM ({scan}) "
                f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY filename DESC) = 1"
            )
        return " UNION ALL BY NAME ".join(f"({part})" for part in parts)

    def datasets_used(self, sql: str) -> list[Dataset]:
        """The datasets whose views ``sql`` names."""
        words = set(re.findall(r"[a-z_][a-z0-9_]*", sql.lower()))
        return [d for d in self.datasets.values()
                if d.name in words or f"{d.name}_history" in words]

    def _needs_run_index(self, sql: str, datasets: Iterable[Dataset]) -> bool:
        """Whether ``sql`` reads ``runs_latest``, itself or through a "latest" view."""
        return RUNS_LATEST in sql.lower() or any(d.snapshot_collector for d in datasets)

    def connect(self, datasets: Iterable[Dataset] | None = None, *,
                run_index: bool | None = None) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with a view per dataset over the current files,
        and the table ``runs_latest`` (:mod:`orgscope.file_index`) when ``run_index`` (by
        default: when every view is made, or a chosen one is a collector's snapshot).

        Creating a view reads the Parquet footers of its files, so :meth:`query` asks only for
        the datasets its SQL names.
        """
        connection = duckdb.connect(":memory:")
        # timestamps compare and cast to dates in UTC, whatever the host's time zone
        connection.execute("SET TimeZone = 'UTC'")
        chosen = list(self.datasets.values() if datasets is None else datasets)
        if run_index is None:
            run_index = datasets is None or any(d.snapshot_collector for d in chosen)
        if run_index:
            connection.register(RUNS_LATEST, self._run_index(connection))
        for dataset in chosen:
            if dataset.snapshot_of:
                self._create_snapshot_views(connection, dataset)
            else:
                source = self._view_sql(connection, dataset)
                connection.execute(f"CREATE VIEW {quote_identifier(dataset.name)} AS {source}")
        return connection

    def _create_snapshot_views(self, connection: duckdb.DuckDBPyConnection,
                               dataset: Dataset) -> None:
        """``<name>_history`` (every snapshot) and ``<name>`` (the latest of each key)."""
        source = self._view_sql(connection, dataset, with_filename=True)
        history = quote_identifier(f"{dataset.name}_history")
        keys = ", ".join(quote_identifier(k) for k in dataset.snapshot_of)
        time = quote_identifier(dataset.time_column)
        connection.execute(
            f"CREATE VIEW {history} AS SELECT * EXCLUDE (filename) FROM ({source})")
        if dataset.snapshot_collector is None:
            latest = self._indexed_latest_sql(connection, dataset, source)
        else:
            recent = history
            since = _latest_run_day(connection, dataset)
            if since is not None:
                # the latest snapshot of every key is in these partitions; the rest of the
                # history (30 days of rules at 100 accounts: 1.7 million rows) is not read
                recent = quote_identifier(f"{dataset.name}__recent")
                pruned = self._view_sql(connection, dataset, with_filename=True, since=since)
                connection.execute(
                    f"CREATE VIEW {recent} AS SELECT * EXCLUDE (filename) FROM ({pruned})")
            latest = _collector_latest_sql(recent, dataset, keys, time)
        connection.execute(f"CREATE VIEW {quote_identifier(dataset.name)} AS {latest}")

    def _indexed_latest_sql(self, connection: duckdb.DuckDBPyConnection, dataset: Dataset,
                            source: str) -> str:
        """The latest snapshot of every key: the rows of the (key, time, file) the file index
        names (:func:`orgscope.file_index.snapshot_index`), read from those files alone.

        Two snapshots of one key can share a timestamp (cycles of different collectors
        starting in the same second both write ``accounts``): the one in the newest file wins,
        never both.
        """
        files = self.files(dataset.name)
        if not files or dataset.unique_key:
            return f"SELECT * EXCLUDE (filename) FROM ({source}) WHERE false" if not files \
                else _window_latest_sql(source, dataset)
        index = snapshot_index(dataset)
        table = answer(index, connection, self.base, files,
                       functools.partial(self._scan_with_filename, connection, dataset))
        connection.register(index.name, table)
        holders = {reported(str(name)) for name in table.column("filename").to_pylist()}
        scan = self.place.scan_sql(connection, [f for f in files if reported(f) in holders],
                                   dataset, True)
        same = " AND ".join(f"s.{k} IS NOT DISTINCT FROM l.{k}" for k in
                            [quote_identifier(c) for c in
                             (*dataset.snapshot_of, dataset.time_column)])
        return (f"SELECT s.* EXCLUDE (filename) FROM ({scan}) s "
                f"JOIN {quote_identifier(index.name)} l ON {same} "
                "AND s.filename = l.filename")

    def query(self, sql: str, params: list[Any] | None = None, *,
              prepare: Prepare | None = None) -> pd.DataFrame:
        """Run DuckDB SQL over the datasets; raises :class:`StoreError` with DuckDB's message.

        A file listed for a view can be deleted by a compaction before DuckDB reads it (the
        compacted file holding its rows is there by then): the query is then run again over a
        fresh listing, up to :data:`VANISHED_RETRIES` times, since a compaction works through
        a dataset's partitions one after another and can delete the next one's files during
        the retry; it is run once more after a file damaged in the middle was found and
        quarantined. ``prepare`` runs on each connection once its views are built, before the
        query (``orgscope query`` locks the connection down there); what a locked connection
        refuses is raised as DuckDB's ``PermissionException``.
        """
        vanished = 0
        quarantined = False
        while True:
            try:
                return self._query_once(sql, params, prepare)
            except duckdb.PermissionException:
                raise
            except duckdb.Error as error:
                if self.place.vanished(error) and vanished < VANISHED_RETRIES:
                    vanished += 1
                    log.debug("a file vanished during the query, listing again (%d): %s",
                              vanished, error)
                elif not quarantined and _may_be_a_corrupt_file(error) and \
                        self._quarantine_corrupt(sql, error):
                    quarantined = True
                else:
                    raise StoreError(str(error).strip()) from None

    def _quarantine_corrupt(self, sql: str, error: duckdb.Error) -> bool:
        """After a query failed reading data (DuckDB does not say which file: "Corrupted
        file?"), read every file of the datasets it used and quarantine those that cannot be
        read. True when one was, so the query is worth running again. Costs a read of those
        datasets, once: only a query that failed this way pays it."""
        log.warning("store: a query failed reading its files (%s); checking every file of %s",
                    str(error).strip(), ", ".join(d.name for d in self.datasets_used(sql)))
        found = False
        for dataset in self.datasets_used(sql):
            for path in self.files(dataset.name):
                try:
                    self.place.read_table(path)
                except FileNotFoundError:
                    continue  # compacted or quarantined since it was listed
                except (OSError, pa.ArrowException) as unreadable:
                    found = self._quarantine(dataset.name, path,
                                             f"cannot be read: {unreadable}") is not None or found
        return found

    def indexed(self, index: FileIndex, name: str) -> pd.DataFrame:
        """``index``'s answer over the files of dataset ``name`` listed now (its columns but
        ``filename``); each file is read for it once per process (:mod:`orgscope.file_index`).
        A file compacted away while it was read is listed again, as in :meth:`query`."""
        dataset = self.dataset(name)
        for attempt in (1, 2):
            connection = duckdb.connect(":memory:")
            try:
                connection.execute("SET TimeZone = 'UTC'")
                table = answer(index, connection, self.base, self.files(name),
                               functools.partial(self._scan_with_filename, connection, dataset))
                frame: pd.DataFrame = table.drop_columns(["filename"]).to_pandas()
                return frame
            except duckdb.Error as error:
                if attempt == 2 or not self.place.vanished(error):
                    raise StoreError(str(error).strip()) from None
            finally:
                connection.close()
        raise AssertionError("unreachable")

    def _scan_with_filename(self, connection: duckdb.DuckDBPyConnection, dataset: Dataset,
                            files: list[PurePath]) -> str:
        return self.place.scan_sql(connection, files, dataset, True)

    def _run_index(self, connection: duckdb.DuckDBPyConnection) -> pa.Table:
        """``runs_latest`` over the ``runs`` files listed now (empty without ``runs``)."""
        if "runs" not in self.datasets:
            return RUNS_INDEX.schema.empty_table().drop_columns(["filename"])
        runs = self.datasets["runs"]
        table = answer(RUNS_INDEX, connection, self.base, self.files("runs"),
                       functools.partial(self._scan_with_filename, connection, runs))
        return table.drop_columns(["filename"])

    def _query_once(self, sql: str, params: list[Any] | None,
                    prepare: Prepare | None = None) -> pd.DataFrame:
        used = self.datasets_used(sql)
        connection = self.connect(used, run_index=self._needs_run_index(sql, used))
        try:
            if prepare is not None:
                prepare(connection)
            return connection.execute(sql, params or []).fetchdf()
        finally:
            connection.close()

    def view_names(self) -> list[str]:
        names = []
        for dataset in self.datasets.values():
            names.append(dataset.name)
            if dataset.snapshot_of:
                names.append(f"{dataset.name}_history")
        return sorted(names)


def _may_be_a_corrupt_file(error: duckdb.Error) -> bool:
    """True for DuckDB errors a damaged Parquet file raises (I/O, invalid input, an internal
    error, or the bare ``Error`` of "Corrupted file?"), False for mistakes in the SQL."""
    return type(error) is duckdb.Error or isinstance(
        error, duckdb.IOException | duckdb.InvalidInputException | duckdb.InternalException)


def _keep_last(table: pa.Table, keys: tuple[str, ...]) -> pa.Table:
    """Of rows sharing ``keys``, the one that comes last (the tables were concatenated oldest
    file first)."""
    position = pa.array(range(table.num_rows), pa.int64())
    indexed = table.append_column("__position", position)
    last = indexed.group_by(list(keys), use_threads=False).aggregate([("__position", "max")])
    return table.take(last.column("__position_max").sort())


def _conform(table: pa.Table, dataset: Dataset) -> pa.Table:
    """The dataset's columns that ``table`` has, in schema order and with the schema's types
    (older files may lack newer columns, or carry large_string where the schema says string)."""
    fields = [field.with_nullable(True) for field in dataset.schema
              if field.name in table.column_names]
    return table.select([f.name for f in fields]).cast(pa.schema(fields))


def _latest_run_day(connection: duckdb.DuckDBPyConnection, dataset: Dataset) -> date | None:
    """The first day that can hold a key's latest snapshot of a collector's snapshot dataset:
    the UTC day of the oldest "newest ok run" among its keys (a snapshot is taken after its run
    starts, so never on an earlier day). None when there is no such run or no ``runs`` view."""
    if dataset.snapshot_collector is None:
        return None
    keys = ", ".join(quote_identifier(k) for k in dataset.snapshot_of)
    row = connection.execute(
        f"SELECT CAST(min(latest) AS DATE) FROM (SELECT max(ok_at) AS latest "
        f"FROM {RUNS_LATEST} WHERE collector = ? AND ok_at IS NOT NULL GROUP BY {keys})",
        [dataset.snapshot_collector]).fetchall()  # all: the connection is used again
    value = row[0][0] if row else None
    return value if isinstance(value, date) else None


def _window_latest_sql(source: str, dataset: Dataset) -> str:
    """The latest snapshot per key by a window over the whole history (only for a snapshot
    dataset with a unique key, which the file index does not serve; none is declared today)."""
    keys = ", ".join(quote_identifier(k) for k in dataset.snapshot_of)
    time = quote_identifier(dataset.time_column)
    return (f"SELECT * EXCLUDE (filename) FROM ({source}) QUALIFY {time} = max({time}) OVER "
            f"(PARTITION BY {keys}) AND filename = first_value(filename) OVER (PARTITION BY "
            f"{keys} ORDER BY {time} DESC, filename DESC)")


def _collector_latest_sql(history: str, dataset: Dataset, keys: str, time: str) -> str:
    """The latest snapshot per key of a collector's snapshot dataset: the snapshot its newest
    ok run took (see Dataset.snapshot_collector)."""
    on = " AND ".join(f"h.{k} = l.{k}" for k in keys.split(", "))
    collector = sql_string(str(dataset.snapshot_collector))
    return (
        f"SELECT h.* FROM {history} h JOIN ("
        f"SELECT {keys}, max(ok_at) AS latest FROM {RUNS_LATEST} "
        f"WHERE collector = {collector} AND ok_at IS NOT NULL GROUP BY ALL) l "
        f"ON {on} AND h.{time} = l.latest"
    )
