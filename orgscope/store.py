"""The store: Parquet datasets, Hive-partitioned by date, written atomically, read with DuckDB.

Layout under the base path::

    <base>/<dataset>/date=YYYY-MM-DD/<run_id>.parquet

Writers (the collection runner) only ever add whole files: each is written under a temporary
name in the same folder and renamed into place, so a reader sees a file entirely or not at all.
Readers open an in-memory DuckDB connection with one read-only view per dataset; DuckDB never
holds the files open between queries, so collectors and any number of dashboards can share a
store. For snapshot datasets the view ``<name>`` holds the latest snapshot per key and
``<name>_history`` every snapshot.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Iterable, Mapping
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
        days = pd.to_datetime(frame[dataset.time_column], utc=True).dt.date
        written = []
        for day in sorted(set(days)):
            mask = (days == day).to_numpy()
            part = table.filter(mask)
            written.append(self._write_file(name, day, run_id, part))
        return written

    def _write_file(self, name: str, day: date, run_id: str, table: Any) -> Path:
        folder = self.root / name / f"date={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{run_id}.parquet"
        if final.exists():
            final = folder / f"{run_id}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = folder / f".{final.stem}-{uuid.uuid4().hex[:8]}{TMP_SUFFIX}"
        try:
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                tmp.unlink()
        log.debug("wrote %s rows to %s", table.num_rows, final)
        return final

    # --- reading -------------------------------------------------------------------------

    def files(self, name: str) -> list[Path]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        return sorted(folder.glob("date=*/*.parquet"))

    def _view_sql(self, dataset: Dataset) -> str:
        if not self.files(dataset.name):
            columns = ", ".join(
                f"CAST(NULL AS {_duckdb_type(f.type)}) AS {_quote_identifier(f.name)}"
                for f in dataset.schema
            )
            return f"SELECT {columns}, CAST(NULL AS DATE) AS date WHERE false"
        pattern = _sql_string(str(self.root / dataset.name / "date=*" / "*.parquet"))
        return (
            f"SELECT * FROM read_parquet({pattern}, hive_partitioning = true, "
            "union_by_name = true, hive_types = {'date': DATE})"
        )

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
        for dataset in self.datasets.values() if datasets is None else datasets:
            source = self._view_sql(dataset)
            if dataset.snapshot_of:
                history = _quote_identifier(f"{dataset.name}_history")
                keys = ", ".join(_quote_identifier(k) for k in dataset.snapshot_of)
                time = _quote_identifier(dataset.time_column)
                connection.execute(f"CREATE VIEW {history} AS {source}")
                connection.execute(
                    f"CREATE VIEW {_quote_identifier(dataset.name)} AS "
                    + _latest_sql(history, dataset, keys, time)
                )
            else:
                connection.execute(f"CREATE VIEW {_quote_identifier(dataset.name)} AS {source}")
        return connection

    def query(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        """Run DuckDB SQL over the datasets; raises :class:`StoreError` with DuckDB's message."""
        connection = self.connect(self.datasets_used(sql))
        try:
            return connection.execute(sql, params or []).fetchdf()
        except duckdb.Error as error:
            raise StoreError(str(error).strip()) from None
        finally:
            connection.close()

    def view_names(self) -> list[str]:
        names = []
        for dataset in self.datasets.values():
            names.append(dataset.name)
            if dataset.snapshot_of:
                names.append(f"{dataset.name}_history")
        return sorted(names)


def _latest_sql(history: str, dataset: Dataset, keys: str, time: str) -> str:
    """The latest snapshot per key of a snapshot dataset (see Dataset.snapshot_collector)."""
    if dataset.snapshot_collector is None:
        return f"SELECT * FROM {history} QUALIFY {time} = max({time}) OVER (PARTITION BY {keys})"
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
