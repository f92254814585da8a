"""The store: atomic writes, schema checks, partitions and the DuckDB views."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import duckdb
import pandas as pd
import pytest

from orgscope.datasets import ACCOUNTS, RULES, RUNS, SchemaError, all_datasets
from orgscope.store import VANISHED_RETRIES, Store, StoreError

T0 = datetime(2026, 11, 25, 23, 58, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "store"), all_datasets())


def rule_row(account: str, rule: str, state: str, at: datetime) -> dict[str, object]:
    return {
        "account_id": account, "region": "us-east-1", "bus": "central-bus", "rule": rule,
        "arn": f"arn:aws:events:us-east-1:{account}:rule/central-bus/{rule}", "state": state,
        "description": None, "event_pattern": json.dumps({"source": ["x"]}),
        "schedule_expression": None, "managed_by": None, "targets": "[]", "target_count": 0,
        "dlq_arns": [], "tags": "{}", "collected_at": at,
    }


def run_row(account: str, at: datetime, status: str = "ok") -> dict[str, object]:
    return {
        "run_id": "r", "collector": "inventory", "account_id": account, "region": "us-east-1",
        "started_at": at, "duration_s": 0.1, "status": status, "error": None, "api_calls": 3,
        "api_calls_by_operation": "{}", "metrics_requested": 0, "traces_retrieved": 0, "rows": 1,
    }


def test_empty_store_has_typed_empty_views(store: Store) -> None:
    assert store.query("select count(*) as n from rules")["n"][0] == 0
    frame = store.query("select * from accounts")
    assert list(frame.columns) == [*ACCOUNTS.columns, "date"]


def test_write_then_query(store: Store) -> None:
    frame = pd.DataFrame([rule_row("111111111111", "a", "ENABLED", T0)])
    store.write("rules", frame, "run1")
    store.write("runs", pd.DataFrame([run_row("111111111111", T0)]), "run1")
    result = store.query("select rule, state, dlq_arns from rules")
    assert result.to_dict("records")[0]["rule"] == "a"


def test_partitions_by_date_of_the_time_column(store: Store, tmp_path: Path) -> None:
    later = T0 + timedelta(minutes=5)  # crosses midnight
    frame = pd.DataFrame([rule_row("111111111111", "a", "ENABLED", T0),
                          rule_row("111111111111", "a", "ENABLED", later)])
    written = store.write("rules", frame, "run1")
    assert sorted(p.parent.name for p in written) == ["date=2026-11-25", "date=2026-11-26"]
    dates = store.query("select distinct date from rules_history order by date")["date"]
    assert [str(d)[:10] for d in dates] == ["2026-11-25", "2026-11-26"]


def test_latest_snapshot_follows_the_last_ok_run(store: Store) -> None:
    later = T0 + timedelta(minutes=5)
    store.write("rules", pd.DataFrame([rule_row("111111111111", "a", "ENABLED", T0),
                                        rule_row("111111111111", "b", "ENABLED", T0)]), "r1")
    store.write("rules", pd.DataFrame([rule_row("111111111111", "a", "DISABLED", later)]), "r2")
    store.write("runs", pd.DataFrame([run_row("111111111111", T0),
                                       run_row("111111111111", later)]), "r2")
    latest = store.query("select rule, state from rules order by rule")
    assert latest.to_dict("records") == [{"rule": "a", "state": "DISABLED"}]
    assert store.query("select count(*) as n from rules_history")["n"][0] == 3


def test_an_ok_run_with_no_rules_empties_the_latest_view(store: Store) -> None:
    later = T0 + timedelta(minutes=5)
    store.write("rules", pd.DataFrame([rule_row("111111111111", "a", "ENABLED", T0)]), "r1")
    store.write("runs", pd.DataFrame([run_row("111111111111", T0),
                                       run_row("111111111111", later)]), "r2")
    assert store.query("select count(*) as n from rules")["n"][0] == 0


def test_a_failed_run_keeps_the_last_known_snapshot(store: Store) -> None:
    later = T0 + timedelta(minutes=5)
    store.write("rules", pd.DataFrame([rule_row("111111111111", "a", "ENABLED", T0)]), "r1")
    store.write("runs", pd.DataFrame([run_row("111111111111", T0),
                                       run_row("111111111111", later, "error")]), "r2")
    assert store.query("select count(*) as n from rules")["n"][0] == 1


def test_schema_check_names_missing_and_extra_columns(store: Store) -> None:
    frame = pd.DataFrame([rule_row("111111111111", "a", "ENABLED", T0)])
    frame = frame.drop(columns=["state"]).assign(colour="red")
    with pytest.raises(SchemaError, match=r"missing columns \['state'\]; unexpected columns "
                                          r"\['colour'\]"):
        store.write("rules", frame, "r1")
    assert store.files("rules") == []


def test_schema_check_refuses_wrong_types(store: Store) -> None:
    frame = pd.DataFrame([rule_row("111111111111", "a", "ENABLED", T0)])
    frame["target_count"] = "three"
    with pytest.raises(SchemaError, match="dataset rules"):
        store.write("rules", frame, "r1")


def test_schema_check_refuses_nulls_in_required_columns(store: Store) -> None:
    frame = pd.DataFrame([rule_row("111111111111", "a", "ENABLED", T0)])
    frame["state"] = None
    with pytest.raises(SchemaError, match="state: string not null> was non-nullable"):
        store.write("rules", frame, "r1")


def test_write_is_atomic_when_writing_fails(store: Store) -> None:
    frame = pd.DataFrame([rule_row("111111111111", "a", "ENABLED", T0)])
    with mock.patch("orgscope.store_files.pq.write_table", side_effect=OSError("disk full")), \
            pytest.raises(OSError, match="disk full"):
        store.write("rules", frame, "r1")
    folder = Path(store.root) / "rules"
    leftovers = [p for p in folder.rglob("*") if p.name != ".lock"]
    assert leftovers == [folder / "date=2026-11-25"]  # no partial or temp file


def test_temp_files_are_invisible_to_readers(store: Store) -> None:
    store.write("rules", pd.DataFrame([rule_row("111111111111", "a", "ENABLED", T0)]), "r1")
    partition = Path(store.root) / "rules" / "date=2026-11-25"
    (partition / ".half-written.parquet.tmp").write_bytes(b"PAR1 not finished")
    assert store.query("select count(*) as n from rules_history")["n"][0] == 1


def test_same_run_id_twice_does_not_overwrite(store: Store) -> None:
    frame = pd.DataFrame([rule_row("111111111111", "a", "ENABLED", T0)])
    store.write("rules", frame, "r1")
    store.write("rules", frame, "r1")
    assert len(store.files("rules")) == 2


def test_unknown_dataset(store: Store) -> None:
    with pytest.raises(StoreError, match="unknown dataset 'rulez'"):
        store.write("rulez", pd.DataFrame(), "r1")


def test_bad_sql_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="rulez"):
        store.query("select * from rulez")


def test_other_remote_schemes_are_refused_clearly(tmp_path: Path) -> None:
    # s3:// works (tests/test_store_s3.py); anything else is named with what is allowed
    with pytest.raises(StoreError, match=r"gs:// scheme is not supported; use a local folder, "
                                         r"a file:// URL or s3://bucket/prefix"):
        Store("gs://bucket/prefix", [RUNS])


def test_file_url(tmp_path: Path) -> None:
    store = Store(f"file://{tmp_path}/s", [RULES, RUNS])
    assert store.root == (tmp_path / "s").resolve()


def test_query_builds_only_the_views_it_names(store: Store) -> None:
    names = [d.name for d in store.datasets_used("SELECT * FROM rules r JOIN accounts a USING "
                                                  "(account_id)")]
    # "latest" rules join runs_latest (orgscope.file_index), not a view over every run
    assert sorted(names) == ["accounts", "rules"]
    assert [d.name for d in store.datasets_used("select 1 from RUNS")] == ["runs"]
    history = store.datasets_used("select * from rules_history")
    assert sorted(d.name for d in history) == ["rules"]


def test_compaction_merges_a_partition_without_changing_what_queries_see(store: Store) -> None:
    for minute in range(5):
        at = T0 + timedelta(seconds=minute)
        store.write("rules", pd.DataFrame([rule_row("111111111111", f"r{minute}", "ENABLED",
                                                     at)]), f"run{minute}")
    before = store.query("select rule, state, collected_at from rules_history order by rule")
    assert store.partitions("rules") == [(T0.date(), 5)]
    assert store.compact("rules", T0.date()) == 5
    assert store.partitions("rules") == [(T0.date(), 1)]
    after = store.query("select rule, state, collected_at from rules_history order by rule")
    pd.testing.assert_frame_equal(before, after)
    assert store.compact("rules", T0.date()) == 0  # nothing left to merge


def test_compact_all_leaves_recent_days_alone(store: Store) -> None:
    for hours in (0, 0, 48, 48):
        at = T0 + timedelta(hours=hours)
        store.write("runs", pd.DataFrame([run_row("111111111111", at)]), "r")
    report = store.compact_all(before=(T0 + timedelta(hours=48)).date())
    assert report.merged == {"runs": 2} and report.ok
    assert [count for _day, count in store.partitions("runs")] == [1, 2]


def test_compaction_keeps_rows_written_before_a_column_was_added(store: Store,
                                                                  tmp_path: Path) -> None:
    old = pd.DataFrame([run_row("111111111111", T0)]).drop(columns=["rows"])
    folder = Path(store.root) / "runs" / f"date={T0.date()}"
    folder.mkdir(parents=True)
    old.to_parquet(folder / "old.parquet")
    store.write("runs", pd.DataFrame([run_row("222222222222", T0)]), "new")
    store.compact("runs", T0.date())
    frame = store.query("select account_id, rows from runs order by account_id")
    assert frame["account_id"].tolist() == ["111111111111", "222222222222"]
    assert pd.isna(frame["rows"][0]) and frame["rows"][1] == 1


def test_an_optional_column_no_file_has_yet_reads_as_null(store: Store,
                                                          tmp_path: Path) -> None:
    """cost_daily files written before usage_quantity existed: the column is there, null,
    in both views, and once a newer file has it the old rows stay null."""
    day = T0.date()
    old = pd.DataFrame([{"date": day, "account_id": "111111111111", "team_tag": "",
                         "service": "AWS Lambda", "usage_type": "Request", "amount": 1.5,
                         "currency": "USD", "estimated": False, "collected_at": T0}])
    folder = Path(store.root) / "cost_daily" / f"date={day}"
    folder.mkdir(parents=True)
    old.drop(columns=["date"]).to_parquet(folder / "old.parquet")
    for view in ("cost_daily", "cost_daily_history"):
        frame = store.query(f"select amount, usage_quantity from {view}")
        assert frame["amount"].tolist() == [1.5] and pd.isna(frame["usage_quantity"][0])
    later = day + timedelta(days=1)
    store.write("cost_daily", old.assign(date=later, usage_quantity=7.5,
                                         collected_at=T0 + timedelta(days=1)), "new")
    frame = store.query("select date, usage_quantity from cost_daily order by date")
    assert pd.isna(frame["usage_quantity"][0]) and frame["usage_quantity"][1] == 7.5


def test_a_dataset_with_its_own_date_column_keeps_it(store: Store) -> None:
    """cost_daily's ``date`` is the day the cost is for; the partition is the collection day.
    The latest version per date wins in the view, every version stays in the history."""
    from orgscope.datasets import COST_DAILY

    assert store.query("select count(*) as n, count(date) as d from cost_daily").to_dict(
        "records") == [{"n": 0, "d": 0}]

    def row(day: str, amount: float, at: datetime) -> dict[str, object]:
        return {"date": datetime.fromisoformat(day).date(), "account_id": "111111111111",
                "team_tag": "", "service": "AWS Lambda", "usage_type": "Lambda-GB-Second",
                "amount": amount, "currency": "USD", "estimated": False, "collected_at": at}

    store.write(COST_DAILY.name, pd.DataFrame([row("2026-01-05", 1.0, T0),
                                               row("2026-01-06", 2.0, T0)]), "c1")
    later = T0 + timedelta(days=2)
    store.write(COST_DAILY.name, pd.DataFrame([row("2026-01-06", 2.5, later)]), "c2")
    latest = store.query("select strftime(date, '%Y-%m-%d') as day, amount from cost_daily "
                         "order by day").to_dict("records")
    assert latest == [{"day": "2026-01-05", "amount": 1.0}, {"day": "2026-01-06", "amount": 2.5}]
    assert store.query("select count(*) as n from cost_daily_history").iloc[0]["n"] == 3


def metric_row(rule: str | None, at: datetime, value: float) -> dict[str, object]:
    return {"account_id": "121212121212", "region": "us-east-1",
            "bus": None if rule is None else "central-bus", "rule": rule,
            "metric": "MatchedEvents", "ts": at, "value": value}


def test_rows_read_again_replace_the_earlier_ones(store: Store) -> None:
    store.write("event_metrics", pd.DataFrame([metric_row("a", T0, 1.0),
                                                metric_row(None, T0, 7.0)]), "20261125T235800Z-a")
    # the next cycle re-reads T0 (late datapoints arrived) and reads the next period
    later = T0 + timedelta(minutes=1)
    store.write("event_metrics", pd.DataFrame([metric_row("a", T0, 3.0),
                                                metric_row(None, T0, 8.0),
                                                metric_row("a", later, 5.0)]),
                "20261125T235900Z-b")
    sql = "select rule, ts, value from event_metrics order by rule nulls first, ts"
    before = store.query(sql)
    assert before["value"].tolist() == [8.0, 3.0, 5.0]
    store.compact("event_metrics", T0.date())
    pd.testing.assert_frame_equal(before, store.query(sql))
    # a cycle after compaction still wins over the compacted file
    store.write("event_metrics", pd.DataFrame([metric_row("a", later, 6.0)]),
                "20261126T000000Z-c")
    assert store.query(sql)["value"].tolist() == [8.0, 3.0, 6.0]


def account_row(account: str, at: datetime, reachable: bool) -> dict[str, object]:
    return {"account_id": account, "name": "a", "team": "t", "environment": "production",
            "cost_center": "", "reachable": reachable, "reason": None if reachable else "no",
            "checked_at": at}


def test_snapshots_written_in_the_same_second_do_not_both_count(store: Store) -> None:
    # two collectors' cycles started in the same second both wrote the accounts snapshot
    store.write("accounts", pd.DataFrame([account_row("111111111111", T0, False)]),
                "20261125T235800Z-aaaa")
    store.write("accounts", pd.DataFrame([account_row("111111111111", T0, True)]),
                "20261125T235800Z-bbbb")
    latest = store.query("select account_id, reachable from accounts")
    assert latest.to_dict("records") == [{"account_id": "111111111111", "reachable": True}]
    assert len(store.query("select * from accounts_history")) == 2
    assert "filename" not in store.query("select * from accounts_history").columns


def test_a_compacted_files_footer_is_read_once_not_on_every_query(tmp_path: Path) -> None:
    """A partition holding a compacted file and a later one needs the compacted file's list
    of replaced names; the dashboard opens a Store per query, and reading every such footer
    on every query costs one read (two GETs on S3) per partition."""
    base = str(tmp_path / "store")
    store = Store(base, all_datasets())
    for stem in ("20261125T235800Z-a", "20261125T235900Z-b"):
        store.write("runs", pd.DataFrame([run_row("111111111111", T0)]), stem)
    store.compact("runs", T0.date())
    store.write("runs", pd.DataFrame([run_row("111111111111", T0)]), "20261126T000000Z-c")
    reads = 0
    for _ in range(3):
        again = Store(base, all_datasets())
        original = again.place.read_metadata

        def counted(path: Any, original: Any = original) -> Any:
            nonlocal reads
            reads += 1
            return original(path)

        again.place.read_metadata = counted  # type: ignore[method-assign]
        assert again.query("select count(*) as n from runs")["n"][0] == 3
    assert reads == 1


def test_two_compactions_of_the_same_files_count_each_row_once(store: Store) -> None:
    """On S3 a compaction that outlives its lock's expiry runs beside the one that took the
    lock over: both list the same files and both add a merged file. Each row once, and the
    next compaction leaves one copy, not two merged together."""
    for minute in range(2):
        store.write("runs", pd.DataFrame([run_row("111111111111",
                                                  T0 + timedelta(seconds=minute))]),
                    f"r{minute}")
    listing = store.place.list_files(store.root / "runs")
    with mock.patch.object(store.place, "delete"):  # the first has not deleted yet
        assert store.compact("runs", T0.date()) == 2
    # the second listed before the first's merged file appeared
    with mock.patch.object(store.place, "list_files", return_value=listing):
        assert store.compact("runs", T0.date()) == 2
    names = sorted(p.name for p in store.place.list_files(store.root / "runs"))
    assert len([n for n in names if "-compacted" in n]) == 2
    assert store.query("select count(*) as n from runs")["n"][0] == 2
    store.compact("runs", T0.date())
    assert store.partitions("runs") == [(T0.date(), 1)]
    assert store.query("select count(*) as n from runs")["n"][0] == 2


def test_the_latest_view_reads_only_the_days_that_hold_a_latest_snapshot(store: Store) -> None:
    day1, day3 = T0 - timedelta(days=3), T0
    for account, at in (("a", day1), ("b", day1), ("a", day3)):
        store.write("rules", pd.DataFrame([rule_row(account, "r", "ENABLED", at)]),
                    f"{at:%Y%m%dT%H%M%SZ}-{account}")
        store.write("runs", pd.DataFrame([run_row(account, at)]), f"{at:%Y%m%dT%H%M%SZ}-{account}")
    latest = store.query("SELECT account_id, collected_at FROM rules ORDER BY account_id")
    # b was last read on day 1: its snapshot from then is still its latest
    assert latest.values.tolist() == [["a", day3], ["b", day1]]
    assert len(store.query("SELECT * FROM rules_history")) == 3
    day1_partition = f"date={day1.date().isoformat()}"

    def latest_view_sql() -> str:
        views = store.query("SELECT view_name, sql FROM duckdb_views() "
                            "WHERE view_name IN ('rules', 'rules__recent')")
        return " ".join(views["sql"])

    assert day1_partition in latest_view_sql()
    # once b is read again on day 3, the latest view no longer scans the day-1 partition
    store.write("rules", pd.DataFrame([rule_row("b", "r", "DISABLED", day3)]), "later-b")
    store.write("runs", pd.DataFrame([run_row("b", day3)]), "later-b")
    assert store.query("SELECT state FROM rules ORDER BY account_id")["state"].tolist() == \
        ["ENABLED", "DISABLED"]
    assert day1_partition not in latest_view_sql()
    assert len(store.query("SELECT * FROM rules_history")) == 4  # the history keeps every day


def _vanishing(store: Store, monkeypatch: pytest.MonkeyPatch, times: int) -> list[int]:
    """Make the store's next ``times`` query runs fail as DuckDB does when a listed file was
    deleted before it was read (a compaction working through the partitions); count runs."""
    runs = [0]
    real = store._query_once

    def flaky(*args: object, **kwargs: object) -> pd.DataFrame:
        runs[0] += 1
        if runs[0] <= times:
            raise duckdb.IOException(
                f'IO Error: Cannot open file "{store.base}/rules/part-{runs[0]}.parquet": '
                "No such file or directory")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "_query_once", flaky)
    return runs


def test_a_query_lists_again_while_a_compaction_deletes_partition_after_partition(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    at = datetime(2026, 12, 7, 12, tzinfo=UTC)
    store.write("rules", pd.DataFrame([rule_row("111111111111", "orders", "ENABLED", at)]),
                "r1")
    runs = _vanishing(store, monkeypatch, VANISHED_RETRIES)
    assert store.query("SELECT rule FROM rules_history")["rule"].tolist() == ["orders"]
    assert runs[0] == VANISHED_RETRIES + 1
    runs = _vanishing(store, monkeypatch, VANISHED_RETRIES + 1)  # and then it gives up
    with pytest.raises(StoreError, match="No such file"):
        store.query("SELECT rule FROM rules_history")
    assert runs[0] == VANISHED_RETRIES + 1
