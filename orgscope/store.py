"""The store: Parquet datasets, Hive-partitioned by date, written atomically, read with DuckDB.

Layout under the base path::

    <base>/<dataset>/date=YYYY-MM-DD/<run_id>.parquet

Writers (the collection runner) only ever add whole files: each is written under a temporary
name in the same folder and renamed into place, so a reader sees a file entirely or not at all.
Past days are compacted into one file per partition (:meth:`Store.compact_all`, daily in
``orgscope serve``), because DuckDB's cost grows with the number of files more than with rows.
Readers open an in-memory DuckDB connection with one read-only view per dataset; DuckDB never
holds the files open between queries, so collectors and any number of dashboards can share a
store. For snapshot datasets the view ``<name>`` holds the latest snapshot per key and
``<name>_history`` every snapshot.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from orgscope.datasets import Dataset

log = logging.getLogger(__name__)

TMP_SUFFIX = ".parquet.tmp"
READ_OPTIONS = "hive_partitioning = true, union_by_name = true, hive_types = {'date': DATE}"
LOCK_FILE = ".lock"


class StoreError(Exception):
    """The store cannot be used (bad path, unknown dataset, bad query)."""


def _local_path(base: str) -> Path:
    if base.startswith("file://"):
        return Path(base.removeprefix("file://"))
    if "://" in base:
        scheme = base.split("://", 1)[0]
        raise StoreError(
            f"store.path {base!r}: the {scheme}:// scheme is not supported yet; "
            "use a local folder or a file:// URL"
        )
    return Path(base)


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sql_list(paths: Iterable[Path]) -> str:
    return "[" + ", ".join(_sql_string(str(p)) for p in paths) + "]"


class Store:
    """Parquet datasets under ``base`` (a folder or a file:// URL)."""

    def __init__(self, base: str, datasets: Iterable[Dataset]) -> None:
        self.base = base
        self.root = _local_path(base).expanduser().resolve()
        self.datasets: Mapping[str, Dataset] = {d.name: d for d in datasets}

    def dataset(self, name: str) -> Dataset:
        try:
            return self.datasets[name]
        except KeyError:
            known = ", ".join(sorted(self.datasets))
            raise StoreError(f"unknown dataset {name!r} (known: {known})") from None

    # --- writing -------------------------------------------------------------------------

    def write(self, name: str, frame: pd.DataFrame, run_id: str) -> list[Path]:
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
            written.append(self._write_file(name, day, run_id, part))
        return written

    @contextmanager
    def _lock(self, name: str, exclusive: bool) -> Iterator[None]:
        """Writers share a dataset's lock; compaction takes it alone (no file is lost)."""
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / LOCK_FILE, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _write_file(self, name: str, day: date, run_id: str, table: Any) -> Path:
        folder = self.root / name / f"date={day.isoformat()}"
        with self._lock(name, exclusive=False):
            folder.mkdir(parents=True, exist_ok=True)
            final = folder / f"{run_id}.parquet"
            if final.exists():
                final = folder / f"{run_id}-{uuid.uuid4().hex[:8]}.parquet"
            self._write_atomically(table, final)
        log.debug("wrote %s rows to %s", table.num_rows, final)
        return final

    @staticmethod
    def _write_atomically(table: Any, final: Path) -> None:
        tmp = final.parent / f".{final.stem}-{uuid.uuid4().hex[:8]}{TMP_SUFFIX}"
        try:
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                tmp.unlink()

    # --- compaction ----------------------------------------------------------------------

    def partitions(self, name: str) -> list[tuple[date, int]]:
        """(day, number of files) for every date partition of ``name``."""
        folder = self.root / name
        found = []
        for partition in sorted(folder.glob("date=*")) if folder.is_dir() else []:
            day = date.fromisoformat(partition.name.removeprefix("date="))
            found.append((day, len(list(partition.glob("*.parquet")))))
        return found

    def compact(self, name: str, day: date) -> int:
        """Merge the files of one date partition into one; returns how many were merged.

        The merged partition is built beside the old one under a hidden name and swapped in
        with two renames, so a reader sees either the old files or the merged one, never both
        (for an instant, neither: a query then misses that day rather than counting it twice).
        """
        dataset = self.dataset(name)
        partition = self.root / name / f"date={day.isoformat()}"
        with self._lock(name, exclusive=True):
            files = sorted(partition.glob("*.parquet"))
            if len(files) < 2:
                return 0
            tables = [_conform(pq.read_table(f), dataset) for f in files]
            merged = pa.concat_tables(tables, promote_options="default")
            if dataset.unique_key:
                merged = _keep_last(merged, dataset.unique_key)
            merged = merged.sort_by(dataset.time_column)
            staging = partition.parent / f".compacting-{partition.name}"
            retired = partition.parent / f".retired-{partition.name}"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            # Named after the newest file it merges, so it sorts before any later cycle's file
            # (the newest row of a unique key wins, by file name).
            self._write_atomically(merged, staging / f"{files[-1].stem}-compacted.parquet")
            os.replace(partition, retired)
            os.replace(staging, partition)
            shutil.rmtree(retired)
        log.info("compacted %s %s: %d files into 1 (%d rows)", name, day, len(files),
                 merged.num_rows)
        return len(files)

    def compact_all(self, before: date) -> dict[str, int]:
        """Compact every partition of every dataset dated before ``before``.

        Returns files merged per dataset.
        """
        merged: dict[str, int] = {}
        for name in self.datasets:
            for day, count in self.partitions(name):
                if day < before and count > 1:
                    merged[name] = merged.get(name, 0) + self.compact(name, day)
        return merged

    # --- reading -------------------------------------------------------------------------

    def files(self, name: str) -> list[Path]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        return sorted(folder.glob("date=*/*.parquet"))

    def _view_sql(self, dataset: Dataset, with_filename: bool = False) -> str:
        """Every row of ``dataset`` (plus the ``filename`` each came from, when asked)."""
        own_date = "date" in dataset.columns  # then it is also the partition column
        if not self.files(dataset.name):
            columns = ", ".join(
                f"CAST(NULL AS {_duckdb_type(f.type)}) AS {_quote_identifier(f.name)}"
                for f in dataset.schema
            )
            partition = "" if own_date else ", CAST(NULL AS DATE) AS date"
            filename = ", CAST(NULL AS VARCHAR) AS filename" if with_filename else ""
            return f"SELECT {columns}{partition}{filename} WHERE false"
        pattern = _sql_string(str(self.root / dataset.name / "date=*" / "*.parquet"))
        if not dataset.unique_key:
            filename = ", filename = true" if with_filename else ""
            return f"SELECT * FROM read_parquet({pattern}, {READ_OPTIONS}{filename})"
        return self._deduplicated_sql(dataset)

    def _deduplicated_sql(self, dataset: Dataset) -> str:
        """Rows unique by ``dataset.unique_key``, the newest file's row winning.

        File names sort by the cycle that wrote them, so "newest" is the last name. A compacted
        partition (one file) is already unique and is read as it is; only partitions with more
        than one file pay for the window function.
        """
        by_partition: dict[Path, list[Path]] = {}
        for path in self.files(dataset.name):
            by_partition.setdefault(path.parent, []).append(path)
        single = [files[0] for files in by_partition.values() if len(files) == 1]
        several = [f for files in by_partition.values() if len(files) > 1 for f in files]
        parts = []
        if single:
            parts.append(f"SELECT * FROM read_parquet({_sql_list(single)}, {READ_OPTIONS})")
        if several:
            keys = ", ".join(_quote_identifier(k) for k in dataset.unique_key)
            parts.append(
                f"SELECT * EXCLUDE (filename) FROM read_parquet({_sql_list(several)}, "
                f"{READ_OPTIONS}, filename = true) "
                f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY filename DESC) = 1"
            )
        return " UNION ALL BY NAME ".join(parts)

    def datasets_used(self, sql: str) -> list[Dataset]:
        """The datasets whose views ``sql`` names (and ``runs``, which "latest" views join)."""
        words = set(re.findall(r"[a-z_][a-z0-9_]*", sql.lower()))
        used = {d.name for d in self.datasets.values()
                if d.name in words or f"{d.name}_history" in words}
        if any(self.datasets[name].snapshot_collector for name in used) and "runs" in \
                self.datasets:
            used.add("runs")
        return [d for d in self.datasets.values() if d.name in used]

    def connect(self, datasets: Iterable[Dataset] | None = None) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with a view per dataset over the current files.

        Creating a view reads the Parquet footers of its files, so :meth:`query` asks only for
        the datasets its SQL names.
        """
        connection = duckdb.connect(":memory:")
        # timestamps compare and cast to dates in UTC, whatever the host's time zone
        connection.execute("SET TimeZone = 'UTC'")
        for dataset in self.datasets.values() if datasets is None else datasets:
            if dataset.snapshot_of:
                source = self._view_sql(dataset, with_filename=True)
                history = _quote_identifier(f"{dataset.name}_history")
                keys = ", ".join(_quote_identifier(k) for k in dataset.snapshot_of)
                time = _quote_identifier(dataset.time_column)
                connection.execute(
                    f"CREATE VIEW {history} AS SELECT * EXCLUDE (filename) FROM ({source})")
                connection.execute(
                    f"CREATE VIEW {_quote_identifier(dataset.name)} AS "
                    + _latest_sql(source, history, dataset, keys, time)
                )
            else:
                source = self._view_sql(dataset)
                connection.execute(f"CREATE VIEW {_quote_identifier(dataset.name)} AS {source}")
        return connection

    def query(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        """Run DuckDB SQL over the datasets; raises :class:`StoreError` with DuckDB's message."""
        try:
            connection = self.connect(self.datasets_used(sql))
        except duckdb.IOException:
            # a file listed for a view was moved by compaction in the meantime: list again
            connection = self._connect_or_raise(sql)
        except duckdb.Error as error:
            raise StoreError(str(error).strip()) from None
        try:
            return connection.execute(sql, params or []).fetchdf()
        except duckdb.Error as error:
            raise StoreError(str(error).strip()) from None
        finally:
            connection.close()

    def _connect_or_raise(self, sql: str) -> duckdb.DuckDBPyConnection:
        try:
            return self.connect(self.datasets_used(sql))
        except duckdb.Error as error:
            raise StoreError(str(error).strip()) from None

    def view_names(self) -> list[str]:
        names = []
        for dataset in self.datasets.values():
            names.append(dataset.name)
            if dataset.snapshot_of:
                names.append(f"{dataset.name}_history")
        return sorted(names)


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


def _latest_sql(source: str, history: str, dataset: Dataset, keys: str, time: str) -> str:
    """The latest snapshot per key of a snapshot dataset (see Dataset.snapshot_collector).

    Two snapshots of one key can share a timestamp (cycles of different collectors starting in
    the same second both write ``accounts``): the one in the newest file wins, never both.
    """
    if dataset.snapshot_collector is None:
        return (
            f"SELECT * EXCLUDE (filename) FROM ({source}) "
            f"QUALIFY {time} = max({time}) OVER (PARTITION BY {keys}) AND filename = "
            f"first_value(filename) OVER (PARTITION BY {keys} ORDER BY {time} DESC, "
            "filename DESC)"
        )
    on = " AND ".join(f"h.{k} = l.{k}" for k in keys.split(", "))
    collector = _sql_string(dataset.snapshot_collector)
    return (
        f"SELECT h.* FROM {history} h JOIN ("
        f"SELECT {keys}, max(started_at) AS latest FROM runs "
        f"WHERE collector = {collector} AND status = 'ok' GROUP BY ALL) l "
        f"ON {on} AND h.{time} = l.latest"
    )


_SIMPLE_TYPES = (
    (pa.types.is_string, "VARCHAR"),
    (pa.types.is_large_string, "VARCHAR"),
    (pa.types.is_boolean, "BOOLEAN"),
    (pa.types.is_integer, "BIGINT"),
    (pa.types.is_floating, "DOUBLE"),
    (pa.types.is_date, "DATE"),
)


def _duckdb_type(arrow_type: Any) -> str:
    """The DuckDB type of an Arrow type, for typed empty views."""
    for check, name in _SIMPLE_TYPES:
        if check(arrow_type):
            return name
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMPTZ" if arrow_type.tz else "TIMESTAMP"
    if pa.types.is_list(arrow_type):
        return _duckdb_type(arrow_type.value_type) + "[]"
    raise StoreError(f"no DuckDB type for {arrow_type}")
