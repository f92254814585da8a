"""orgscope.run_index: the newest run of each (collector, account, region), read once per file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePath

import duckdb
import pandas as pd
import pytest

from orgscope import run_index
from orgscope.datasets import RUNS, Dataset, all_datasets
from orgscope.store import Store

T0 = datetime(2028, 2, 28, 23, 50, tzinfo=UTC)  # the cycles below cross into 29 February

#: What runs_latest must equal, asked of every run (the query it replaces).
REFERENCE = """
SELECT collector, account_id, region, max(started_at) AS started_at,
       arg_max(status, started_at) AS status, arg_max(error, started_at) AS error,
       arg_max(api_calls, started_at) AS api_calls,
       max(started_at) FILTER (WHERE status = 'ok') AS ok_at
FROM runs GROUP BY ALL ORDER BY ALL
"""


def runs(cycle: int, *, failing: frozenset[str] = frozenset()) -> pd.DataFrame:
    at = T0 + timedelta(minutes=5 * cycle)
    rows = []
    for collector in ("inventory", "metrics"):
        for account in ("111111111111", "222222222222"):
            status = "error" if account in failing else "ok"
            rows.append({
                "run_id": f"{cycle}-{collector}-{account}", "collector": collector,
                "account_id": account, "region": "us-east-1", "started_at": at,
                "duration_s": 0.5, "status": status,
                "error": "AccessDenied" if status == "error" else None, "api_calls": cycle,
                "api_calls_by_operation": "{}", "metrics_requested": 0, "traces_retrieved": 0,
                "rows": 1})
    return pd.DataFrame(rows, columns=RUNS.columns)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    run_index.forget()
    return Store(str(tmp_path / "store"), all_datasets())


def latest(store: Store) -> pd.DataFrame:
    return store.query("SELECT * FROM runs_latest ORDER BY ALL")


def test_equals_the_aggregate_over_every_run(store: Store) -> None:
    for cycle in range(4):
        failing = frozenset({"222222222222"} if cycle >= 2 else ())
        store.write(RUNS.name, runs(cycle, failing=failing), f"c{cycle}")
    found = latest(store)
    pd.testing.assert_frame_equal(found, store.query(REFERENCE), check_dtype=False)
    failing = found[(found["account_id"] == "222222222222")].iloc[0]
    assert failing["status"] == "error" and failing["error"] == "AccessDenied"
    assert failing["ok_at"] == pd.Timestamp(T0 + timedelta(minutes=5))  # its last ok run
    assert failing["started_at"] == pd.Timestamp(T0 + timedelta(minutes=15))


def test_reads_each_file_once(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    read: list[list[str]] = []
    original = store.place.scan_sql

    def counting(connection: duckdb.DuckDBPyConnection, files: list[PurePath],
                 dataset: Dataset, with_filename: bool) -> str:
        if dataset.name == RUNS.name:
            read.append([PurePath(f).name for f in files])
        return original(connection, files, dataset, with_filename)

    monkeypatch.setattr(store.place, "scan_sql", counting)
    store.write(RUNS.name, runs(0), "c0")
    store.write(RUNS.name, runs(1), "c1")
    latest(store)
    latest(store)
    store.write(RUNS.name, runs(2), "c2")
    found = latest(store)
    assert read == [["c0.parquet", "c1.parquet"], ["c2.parquet"]]
    assert set(found["api_calls"]) == {2}


def test_a_compaction_changes_nothing_and_its_merged_file_is_read_once(store: Store) -> None:
    for cycle in range(3):
        store.write(RUNS.name, runs(cycle), f"c{cycle}")
    before = latest(store)
    for day, files in store.partitions(RUNS.name):
        if files > 1:
            store.compact(RUNS.name, day)
    pd.testing.assert_frame_equal(latest(store), before)
    pd.testing.assert_frame_equal(latest(store), store.query(REFERENCE), check_dtype=False)


def test_an_empty_store_has_an_empty_typed_index(store: Store) -> None:
    found = latest(store)
    assert found.empty and list(found.columns) == [f.name for f in run_index.RUN_INDEX_SCHEMA]


def test_latest_snapshots_follow_the_index(store: Store) -> None:
    """A failed inventory keeps the last snapshot its last ok run took (the view's meaning)."""
    from tests.test_store import rule_row

    store.write(RUNS.name, runs(0), "c0")
    store.write("rules", pd.DataFrame([rule_row("111111111111", "r0", "ENABLED", T0)]), "c0")
    store.write(RUNS.name, runs(1, failing=frozenset({"111111111111"})), "c1")
    rules = store.query("SELECT rule FROM rules")
    assert rules["rule"].tolist() == ["r0"]
