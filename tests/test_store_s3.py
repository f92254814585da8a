"""The store with its base path on S3, against the simulated organization's S3 (moto's server).

The store's behaviours (write, query, snapshots, deduplication, compaction, listing) run here
on S3 and, where the logic is shared, on a local folder too: one implementation, two places.
The last tests collect the simulated organization into a bucket and read it back through the
CLI and the dashboard.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePath
from typing import Any
from unittest import mock

import boto3
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import data
from orgscope import wiring
from orgscope.datasets import all_datasets
from orgscope.store import Store, StoreError
from orgscope.store_files import S3Files, S3Lock, parse_s3_url
from tests.simulated import Org, simulated_org
from tests.test_store import T0, account_row, metric_row, rule_row, run_row

pytestmark = pytest.mark.integration

BUCKET = "orgscope-store"
APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "streamlit_app.py")


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    url = f"s3://{BUCKET}/orgscope"
    with simulated_org(tmp_path_factory.mktemp("org"),
                       replace={'path = "./store"': f'path = "{url}"',
                                'backfill = "2d"': 'backfill = "1h"'}) as running:
        s3(running).create_bucket(Bucket=BUCKET)
        yield running


def s3(org: Org) -> Any:
    return boto3.client("s3", endpoint_url=org.endpoint, region_name="us-east-1")


def keys(org: Org, prefix: str) -> list[str]:
    listed = s3(org).list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def s3_store(org: Org, prefix: str) -> Store:
    return Store(f"s3://{BUCKET}/{prefix}", all_datasets())


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return Store(str(tmp_path / "store"), all_datasets())
    s3_store: Store = request.getfixturevalue("s3_store")
    return s3_store


def count(store: Store, view: str) -> int:
    return int(store.query(f"select count(*) as n from {view}")["n"][0])


# --- the store's behaviours on S3 -----------------------------------------------------------


def test_writes_land_as_hive_partitioned_objects(org: Org, s3_store: Store, prefix: str) -> None:
    later = T0 + timedelta(minutes=5)  # crosses midnight
    frame = pd.DataFrame([rule_row("111111111111", "a", "ENABLED", T0),
                          rule_row("111111111111", "b", "DISABLED", later)])
    written = s3_store.write("rules", frame, "run1")
    assert keys(org, prefix) == [f"{prefix}/rules/date=2026-11-25/run1.parquet",
                                 f"{prefix}/rules/date=2026-11-26/run1.parquet"]
    assert [str(p) for p in written] == [f"{BUCKET}/{k}" for k in keys(org, prefix)]
    assert s3_store.location == f"s3://{BUCKET}/{prefix}"
    history = s3_store.query("select rule, state, dlq_arns, date from rules_history order by rule")
    assert history["rule"].tolist() == ["a", "b"]
    assert [str(d)[:10] for d in history["date"]] == ["2026-11-25", "2026-11-26"]
    assert list(history["dlq_arns"][0]) == []


def test_empty_s3_store_has_typed_empty_views(s3_store: Store) -> None:
    assert count(s3_store, "rules") == 0
    assert s3_store.files("rules") == [] and s3_store.partitions("rules") == []


def test_latest_snapshot_follows_the_last_ok_run(store: Store) -> None:
    later = T0 + timedelta(minutes=5)
    store.write("rules", pd.DataFrame([rule_row("111111111111", "a", "ENABLED", T0),
                                        rule_row("111111111111", "b", "ENABLED", T0)]), "r1")
    store.write("rules", pd.DataFrame([rule_row("111111111111", "a", "DISABLED", later)]), "r2")
    store.write("runs", pd.DataFrame([run_row("111111111111", T0),
                                       run_row("111111111111", later, "error")]), "r2")
    # the failed run keeps the last known snapshot
    assert store.query("select rule from rules order by rule")["rule"].tolist() == ["a", "b"]
    store.write("runs", pd.DataFrame([run_row("111111111111", later)]), "r3")
    latest = store.query("select rule, state from rules order by rule")
    assert latest.to_dict("records") == [{"rule": "a", "state": "DISABLED"}]
    assert count(store, "rules_history") == 3


def test_same_second_snapshots_count_once_newest_file_wins(store: Store) -> None:
    store.write("accounts", pd.DataFrame([account_row("111111111111", T0, False)]),
                "20261125T235800Z-aaaa")
    store.write("accounts", pd.DataFrame([account_row("111111111111", T0, True)]),
                "20261125T235800Z-bbbb")
    latest = store.query("select account_id, reachable from accounts")
    assert latest.to_dict("records") == [{"account_id": "111111111111", "reachable": True}]
    assert count(store, "accounts_history") == 2


def test_same_run_id_twice_never_overwrites(store: Store) -> None:
    frame = pd.DataFrame([rule_row("111111111111", "a", "ENABLED", T0)])
    first = store.write("rules", frame, "r1")
    second = store.write("rules", frame, "r1")
    assert first != second and len(store.files("rules")) == 2
    assert second[0].name.startswith("r1-")


def test_dedup_and_compaction_keep_what_queries_see(store: Store) -> None:
    store.write("event_metrics", pd.DataFrame([metric_row("a", T0, 1.0),
                                                metric_row(None, T0, 7.0)]), "20261125T235800Z-a")
    later = T0 + timedelta(minutes=1)
    store.write("event_metrics", pd.DataFrame([metric_row("a", T0, 3.0),
                                                metric_row(None, T0, 8.0),
                                                metric_row("a", later, 5.0)]),
                "20261125T235900Z-b")
    sql = "select rule, ts, value from event_metrics order by rule nulls first, ts"
    before = store.query(sql)
    assert before["value"].tolist() == [8.0, 3.0, 5.0]
    assert store.partitions("event_metrics") == [(T0.date(), 2)]
    assert store.compact("event_metrics", T0.date()) == 2
    assert store.partitions("event_metrics") == [(T0.date(), 1)]
    (merged,) = store.files("event_metrics")
    assert merged.name == "20261125T235900Z-b-compacted.parquet"
    pd.testing.assert_frame_equal(before, store.query(sql))
    # a cycle after compaction still wins over the compacted file
    store.write("event_metrics", pd.DataFrame([metric_row("a", later, 6.0)]),
                "20261126T000000Z-c")
    assert store.query(sql)["value"].tolist() == [8.0, 3.0, 6.0]
    # compacting again merges the compacted file with the later one, newest still winning
    assert store.compact("event_metrics", T0.date()) == 2
    assert store.query(sql)["value"].tolist() == [8.0, 3.0, 6.0]
    assert [p.name for p in store.files("event_metrics")] == [
        "20261126T000000Z-c-compacted.parquet"]


def test_compact_all_merges_past_days_only(store: Store) -> None:
    for hours in (0, 0, 48, 48):
        store.write("runs", pd.DataFrame([run_row("111111111111", T0 + timedelta(hours=hours))]),
                    "r")
    assert store.compact_all(before=(T0 + timedelta(hours=48)).date()).merged == {"runs": 2}
    assert [n for _day, n in store.partitions("runs")] == [1, 2]
    assert count(store, "runs") == 4


def test_a_half_finished_compaction_counts_every_row_once(store: Store) -> None:
    """The merged file is added before the merged ones are deleted: a reader in between (or
    after a crash there) must not count their rows twice; the next compaction cleans up."""
    for minute in range(3):
        store.write("runs", pd.DataFrame([run_row("111111111111", T0 + timedelta(seconds=minute))]),
                    f"r{minute}")
    with mock.patch.object(store.place, "delete", side_effect=OSError("stopped here")), \
            pytest.raises(OSError, match="stopped here"):
        store.compact("runs", T0.date())
    assert store.partitions("runs") == [(T0.date(), 4)]  # three runs and the merged file
    assert count(store, "runs") == 3
    assert [p.name for p in store.files("runs")] == ["r2-compacted.parquet"]
    assert store.compact("runs", T0.date()) == 0  # nothing to merge, the leftovers go
    assert store.partitions("runs") == [(T0.date(), 1)] and count(store, "runs") == 3


def test_a_file_added_during_compaction_is_neither_hidden_nor_deleted(store: Store) -> None:
    for minute in range(2):
        store.write("runs", pd.DataFrame([run_row("111111111111", T0 + timedelta(seconds=minute))]),
                    f"r{minute}")
    read_table = store.place.read_table
    late: list[Any] = []

    def late_writer(path: PurePath) -> Any:
        # another process adds a file after this compaction listed the partition
        if not late:
            late.append(store.write("runs", pd.DataFrame([run_row("222222222222", T0)]),
                                    "r0-late"))
        return read_table(path)

    with mock.patch.object(store.place, "read_table", side_effect=late_writer):
        assert store.compact("runs", T0.date()) == 2
    names = [p.name for p in store.files("runs")]
    assert names == ["r0-late.parquet", "r1-compacted.parquet"]
    assert count(store, "runs") == 3


def test_a_file_deleted_after_listing_is_listed_again(store: Store) -> None:
    store.write("runs", pd.DataFrame([run_row("111111111111", T0)]), "r1")
    real = store.place.list_files
    calls: list[int] = []

    def stale_listing(folder: PurePath) -> list[PurePath]:
        calls.append(1)
        files = real(folder)
        # the first listing still names a file a compaction has deleted since
        return [*files, files[0].parent / "r0.parquet"] if len(calls) == 1 else files

    with mock.patch.object(store.place, "list_files", side_effect=stale_listing):
        assert count(store, "runs") == 1
    assert len(calls) == 2


def _put_raw(store: Store, path: PurePath, body: bytes) -> None:
    """Bytes at ``path`` behind the store's back (a disk or a tool that broke a file)."""
    if isinstance(store.place, S3Files):
        with store.place.filesystem().open_output_stream(str(path)) as stream:
            stream.write(body)
    else:
        Path(path).write_bytes(body)


def _quarantined(store: Store) -> list[str]:
    folder = store.root / "_quarantine" / "runs" / f"date={T0.date()}"
    if isinstance(store.place, S3Files):
        import pyarrow.fs as pafs

        selector = pafs.FileSelector(str(folder), allow_not_found=True)
        return [info.base_name for info in store.place.filesystem().get_file_info(selector)]
    return sorted(p.name for p in Path(folder).glob("*")) if Path(folder).is_dir() else []


def test_a_zero_byte_file_is_quarantined_and_the_views_read_on(store: Store) -> None:
    store.write("runs", pd.DataFrame([run_row("111111111111", T0)]), "r1")
    store.write("rules", pd.DataFrame([rule_row("111111111111", "a", "ENABLED", T0)]), "r1")
    _put_raw(store, store.root / "runs" / f"date={T0.date()}" / "r2.parquet", b"")
    assert store.query("select rule from rules")["rule"].tolist() == ["a"]  # joins runs
    assert count(store, "runs") == 1
    [moved] = _quarantined(store)
    assert moved.startswith("r2")
    assert [p.name for p in store.files("runs")] == ["r1.parquet"]


def test_a_file_compaction_cannot_read_is_quarantined_and_the_rest_merged(
        store: Store) -> None:
    for n in range(2):
        store.write("runs", pd.DataFrame([run_row("111111111111", T0)]), f"r{n}")
    _put_raw(store, store.root / "runs" / f"date={T0.date()}" / "r9.parquet",
             b"not parquet, and long enough to pass a size check")
    report = store.compact_all(before=(T0 + timedelta(days=1)).date())
    assert report.ok and report.merged == {"runs": 2}
    assert [name[:2] for name in _quarantined(store)] == ["r9"]
    assert store.partitions("runs") == [(T0.date(), 1)] and count(store, "runs") == 2


def test_a_query_bounded_by_date_or_time_reads_only_those_days(org: Org, s3_store: Store,
                                                     prefix: str) -> None:
    later = T0 + timedelta(days=1)
    s3_store.write("runs", pd.DataFrame([run_row("111111111111", T0)]), "r1")
    s3_store.write("runs", pd.DataFrame([run_row("111111111111", later)]), "r2")
    # spoil the first day's object behind the store's back: only a query reading it fails
    # (long enough that the listing's size does not give it away: see the quarantine tests)
    s3(org).put_object(Bucket=BUCKET, Key=f"{prefix}/runs/date={T0.date()}/r1.parquet",
                       Body=b"not parquet, and long enough")
    day = later.date().isoformat()
    assert count(s3_store, f"runs where date = DATE '{day}'") == 1
    # a bound on the time column the rows are partitioned by prunes the same way
    since = f"{day} 00:00:00+00"
    assert count(s3_store, f"runs where started_at >= TIMESTAMPTZ '{since}'") == 1
    assert int(s3_store.query("select count(*) as n from runs where started_at >= ?",
                              [later - timedelta(hours=1)])["n"][0]) == 1
    assert _quarantined(s3_store) == []  # none of those read the spoiled day
    # a query that does read it fails, the store finds the object, moves it aside, answers
    assert count(s3_store, "runs") == 1
    assert [name[:2] for name in _quarantined(s3_store)] == ["r1"]


def test_compaction_waits_for_the_lock_and_names_its_holder(org: Org, s3_store: Store,
                                                            prefix: str) -> None:
    place = s3_store.place
    assert isinstance(place, S3Files)
    lock_key = f"{prefix}/runs/.lock"
    holder = S3Lock(place.client(), BUCKET, lock_key)
    holder.acquire()
    rival = S3Lock(place.client(), BUCKET, lock_key, wait_s=0)
    with pytest.raises(StoreError, match=f"held by {holder.owner} until .* one compaction"):
        rival.acquire()
    holder.release()
    assert keys(org, f"{prefix}/runs/") == []
    rival.acquire()  # free again
    rival.release()


def test_an_expired_lock_is_taken_over_once_and_never_released_by_its_old_owner(
        org: Org, s3_store: Store, prefix: str) -> None:
    place = s3_store.place
    assert isinstance(place, S3Files)
    lock_key = f"{prefix}/runs/.lock"
    dead = S3Lock(place.client(), BUCKET, lock_key, ttl=timedelta(seconds=-1))
    dead.acquire()
    heir = S3Lock(place.client(), BUCKET, lock_key, wait_s=0)
    heir.acquire()  # the dead holder's lock has expired
    dead.release()  # must not remove the heir's lock
    body = json.loads(s3(org).get_object(Bucket=BUCKET, Key=lock_key)["Body"].read())
    assert body["owner"] == heir.owner
    heir.release()
    assert keys(org, f"{prefix}/runs/") == []


def test_bad_s3_urls_are_refused_clearly(org: Org) -> None:
    with pytest.raises(StoreError, match="'B_ad' is not an S3 bucket name"):
        Store("s3://B_ad/x", all_datasets())
    with pytest.raises(StoreError, match=r"unknown option 'endpoint' \(allowed: region, "
                                         r"endpoint_override\)"):
        Store(f"s3://{BUCKET}/x?endpoint=http://localhost", all_datasets())
    target = parse_s3_url(f"s3://{BUCKET}/a/b/?region=eu-west-1&endpoint_override=http://h:1")
    assert (target.prefix, target.region, target.endpoint) == ("a/b", "eu-west-1", "http://h:1")


def test_a_missing_bucket_is_a_store_error(org: Org) -> None:
    store = Store("s3://no-such-bucket-here/x", all_datasets())
    with pytest.raises(StoreError, match="no-such-bucket-here"):
        store.write("runs", pd.DataFrame([run_row("111111111111", T0)]), "r1")


def test_the_config_endpoint_travels_with_the_store_url(org: Org) -> None:
    config = wiring.load(org.config_path)
    with_endpoint = config.model_copy(update={"aws": config.aws.model_copy(
        update={"endpoint_url": "http://127.0.0.1:9"})})
    base = wiring.store_base(with_endpoint)
    assert base == f"s3://{BUCKET}/orgscope?endpoint_override=http%3A%2F%2F127.0.0.1%3A9"
    assert parse_s3_url(base).endpoint == "http://127.0.0.1:9"
    assert wiring.store_base(wiring.with_store(with_endpoint, base)) == base  # not twice
    assert wiring.store_base(config) == f"s3://{BUCKET}/orgscope"  # env AWS_ENDPOINT_URL


# --- end to end: collect into the bucket, read it back -----------------------------------------


def test_collect_into_s3_then_query_and_dashboard(org: Org, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    assert org.cli("collect", "--once", "--only", "inventory") == 0
    assert f"stored under s3://{BUCKET}/orgscope" in capsys.readouterr().out
    day = datetime.now(UTC).date()
    stored = keys(org, f"orgscope/rules/date={day}/")
    assert stored and all(k.endswith(".parquet") for k in stored)

    assert org.cli("query", "select count(*) as n from rules", "--format", "json") == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["n"] == len(org.sim.deployment.rules) > 0

    base = wiring.store_base(wiring.load(org.config_path))
    names = set(data.account_choices(data.open_store(base))["name"])
    assert {a.name for a in wiring.load(org.config_path).accounts} <= names

    monkeypatch.setenv(wiring.CONFIG_ENV, str(org.config_path))
    monkeypatch.delenv(wiring.STORE_ENV, raising=False)
    st.cache_data.clear()
    app = AppTest.from_file(APP, default_timeout=60).run()
    app.switch_page("app_pages/organization.py").run()
    st.cache_data.clear()
    assert not app.exception, [e.message for e in app.exception]
    shown = "\n".join(str(e.value) for e in [*app.markdown, *app.caption, *app.info,
                                              *app.warning, *app.error]).lower()
    assert "could not be read" not in shown and "no collection has run yet" not in shown
    assert f"{row['n']} rules, " in shown
