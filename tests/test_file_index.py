"""orgscope.file_index: the newest run of each (collector, account, region) and the latest
snapshot of each key, read once per file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePath

import duckdb
import pandas as pd
import pytest

from orgscope import file_index
from orgscope.datasets import ACCOUNTS, RUNS, Dataset, all_datasets
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
    file_index.forget()
    return Store(str(tmp_path / "store"), all_datasets())


def scans_of(name: str, store: Store, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The file names of every scan of dataset ``name`` the store builds from now on."""
    read: list[list[str]] = []
    original = store.place.scan_sql

    def counting(connection: duckdb.DuckDBPyConnection, files: list[PurePath],
                 dataset: Dataset, with_filename: bool) -> str:
        if dataset.name == name:
            read.append([PurePath(f).name for f in files])
        return original(connection, files, dataset, with_filename)

    monkeypatch.setattr(store.place, "scan_sql", counting)
    return read


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
    read = scans_of(RUNS.name, store, monkeypatch)
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
    columns = [f.name for f in file_index.RUNS_INDEX.schema if f.name != "filename"]
    assert found.empty and list(found.columns) == columns


def test_latest_snapshots_follow_the_index(store: Store) -> None:
    """A failed inventory keeps the last snapshot its last ok run took (the view's meaning)."""
    from tests.test_store import rule_row

    store.write(RUNS.name, runs(0), "c0")
    store.write("rules", pd.DataFrame([rule_row("111111111111", "r0", "ENABLED", T0)]), "c0")
    store.write(RUNS.name, runs(1, failing=frozenset({"111111111111"})), "c1")
    rules = store.query("SELECT rule FROM rules")
    assert rules["rule"].tolist() == ["r0"]


def account(account_id: str, at: datetime, *, reachable: bool = True,
            name: str = "acct") -> dict[str, object]:
    return {"account_id": account_id, "name": name, "team": "t", "environment": None,
            "cost_center": None, "reachable": reachable, "reason": None, "checked_at": at}


#: The latest snapshot by a window over every row (what the indexed view replaces).
WINDOW = """
SELECT * EXCLUDE (filename) FROM read_parquet({files}, filename = true,
    hive_partitioning = true, union_by_name = true, hive_types = {{'date': 'DATE'}})
QUALIFY checked_at = max(checked_at) OVER (PARTITION BY account_id)
    AND filename = first_value(filename) OVER (PARTITION BY account_id
                                               ORDER BY checked_at DESC, filename DESC)
ORDER BY account_id
"""


def window_latest(store: Store) -> pd.DataFrame:
    files = "[" + ", ".join(f"'{f}'" for f in store.files(ACCOUNTS.name)) + "]"
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    return connection.execute(WINDOW.format(files=files)).fetchdf().drop(columns="date")


def accounts_latest(store: Store) -> pd.DataFrame:
    return store.query("SELECT * EXCLUDE (date) FROM accounts ORDER BY account_id")


def test_the_latest_snapshot_equals_the_window_over_every_row(store: Store) -> None:
    for cycle in range(5):
        at = T0 + timedelta(minutes=5 * cycle)
        rows = [account("111111111111", at, reachable=cycle != 3)]
        if cycle < 2:  # an account that left the organization after two cycles
            rows.append(account("222222222222", at))
        store.write(ACCOUNTS.name, pd.DataFrame(rows), f"c{cycle}")
    # a second writer's snapshot at the very same time: the newest file wins
    at = T0 + timedelta(minutes=20)
    store.write(ACCOUNTS.name, pd.DataFrame([account("111111111111", at, name="newer")]), "c5")
    found = accounts_latest(store)
    pd.testing.assert_frame_equal(found, window_latest(store), check_dtype=False)
    assert found.set_index("account_id").loc["111111111111", "name"] == "newer"
    assert found.set_index("account_id").loc["222222222222", "checked_at"] == \
        pd.Timestamp(T0 + timedelta(minutes=5))
    for day, files in store.partitions(ACCOUNTS.name):
        if files > 1:
            store.compact(ACCOUNTS.name, day)
    # what the window over every row says after the compaction, too (the two same-time
    # snapshots now share a file, so both are latest there as here)
    pd.testing.assert_frame_equal(accounts_latest(store), window_latest(store),
                                  check_dtype=False)


def test_the_latest_view_reads_only_the_files_that_hold_a_latest_snapshot(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    for cycle in range(4):
        at = T0 + timedelta(minutes=5 * cycle)
        store.write(ACCOUNTS.name, pd.DataFrame([account("111111111111", at)]), f"c{cycle}")
    read = scans_of(ACCOUNTS.name, store, monkeypatch)
    store.query("SELECT * FROM accounts")
    store.query("SELECT * FROM accounts")
    everything = ["c0.parquet", "c1.parquet", "c2.parquet", "c3.parquet"]
    # each query: the history view lists every file (DuckDB reads only what a query needs of
    # it); the index reads each file once; the latest view reads the newest file alone
    assert read == [everything, everything, ["c3.parquet"], everything, ["c3.parquet"]]
