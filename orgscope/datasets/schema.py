"""What a dataset is: its columns and Arrow types, partition column and snapshot key.

A :class:`Dataset` names its columns and their Arrow types, the timestamp column that decides
its ``date=`` partition, and, for snapshot datasets (inventory, reachability), the key that
identifies one snapshot, so the store can offer a view of the latest one. Every frame is checked
against its dataset before it is written: a collector that drifts from the contract fails
loudly instead of writing a file that readers trip over later.

The datasets themselves are declared beside this module, one module per domain; the package
(:mod:`orgscope.datasets`) is their one catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

UTC_TS = pa.timestamp("us", tz="UTC")


class SchemaError(ValueError):
    """A frame that does not match its dataset's columns."""


@dataclass(frozen=True)
class Dataset:
    """One stored dataset.

    ``snapshot_of``: for snapshot datasets, the columns that identify whose snapshot a row
    belongs to (for example ``("account_id", "region")``); the store then exposes ``name`` as
    the latest snapshot per key and ``name_history`` as every snapshot.

    ``snapshot_collector``: the collector whose successful runs define "latest". With it, the
    latest snapshot is the one taken at the newest ok run of that collector for the key, so an
    account whose rules were all deleted shows none, not the last ones it had.
    """

    name: str
    schema: pa.Schema
    time_column: str
    description: str
    snapshot_of: tuple[str, ...] = field(default=())
    snapshot_collector: str | None = None
    #: Columns that identify a row: a row written again (a re-read of late data) replaces the
    #: earlier one in queries and compaction instead of counting twice.
    unique_key: tuple[str, ...] = ()
    #: The column whose UTC date names the ``date=`` partition; the time column by default.
    #: A dataset with a ``date`` column of its own partitions by it, so the two agree.
    partition_by: str | None = None
    #: Nullable columns added after writers of this dataset existed: a frame may omit them
    #: (they are stored as null), so an older writer or test sample keeps working.
    optional_columns: tuple[str, ...] = ()

    @property
    def partition_column(self) -> str:
        return self.partition_by or self.time_column

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    def __post_init__(self) -> None:
        if "date" in self.schema.names and self.partition_column != "date":
            raise ValueError(f"dataset {self.name}: a column named 'date' must be the "
                             "partition column (partition_by='date')")

    def to_table(self, frame: pd.DataFrame) -> pa.Table:
        """Check ``frame`` against the schema and convert it; raise :class:`SchemaError`."""
        absent = [c for c in self.optional_columns if c not in frame.columns]
        if absent:
            frame = frame.assign(**{c: None for c in absent})
        present = set(frame.columns)
        missing = [c for c in self.columns if c not in present]
        extra = sorted(present - set(self.columns))
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing columns {missing}")
            if extra:
                parts.append(f"unexpected columns {extra}")
            raise SchemaError(f"dataset {self.name}: " + "; ".join(parts))
        try:
            table = pa.Table.from_pandas(
                frame[self.columns], schema=self.schema, preserve_index=False
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as error:
            raise SchemaError(f"dataset {self.name}: {error}") from None
        return table

    def empty_frame(self) -> pd.DataFrame:
        frame: pd.DataFrame = self.schema.empty_table().to_pandas()
        return frame

