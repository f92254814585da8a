"""Store faults on a local disk: fsync before a merge deletes, unreadable files quarantined,
compaction isolated per dataset and partition, stale temporary files removed
(docs/datasets.md, "Faults")."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from orgscope import store_files
from orgscope.cli import main
from orgscope.datasets import all_datasets
from orgscope.store import Store, StoreError
from orgscope.store_files import LocalFiles
from tests.test_store import T0, metric_row, rule_row, run_row


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "store"), all_datasets())


def _fd_path(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


def test_a_merged_file_and_its_folder_are_fsynced_before_the_originals_are_deleted(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(2):
        store.write("runs", pd.DataFrame([run_row("111111111111", T0)]), f"r{n}")
    events: list[tuple[str, str]] = []
    real_fsync, real_delete = os.fsync, LocalFiles.delete

    def fsync(fd: int) -> None:
        events.append(("fsync", _fd_path(fd)))
        real_fsync(fd)

    def delete(self: LocalFiles, paths: Any) -> None:
        paths = list(paths)
        events.extend(("delete", str(p)) for p in paths)
        real_delete(self, paths)

    monkeypatch.setattr(store_files.os, "fsync", fsync)
    monkeypatch.setattr(LocalFiles, "delete", delete)
    assert store.compact("runs", T0.date()) == 2
    partition = str(Path(store.root) / "runs" / f"date={T0.date()}")
    first_delete = next(i for i, (kind, _) in enumerate(events) if kind == "delete")
    before = events[:first_delete]
    # the merged bytes (written as a temporary file, then linked), then the folder's entry
    assert any(kind == "fsync" and path.endswith(".parquet.tmp") for kind, path in before)
    assert ("fsync", partition) in before
    assert [kind for kind, _ in events[first_delete:]] == ["delete", "delete"]


def test_a_new_partition_folder_is_fsynced_into_its_dataset_folder(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(store_files.os, "fsync",
                        lambda fd: (synced.append(_fd_path(fd)), real_fsync(fd))[1])
    store.write("runs", pd.DataFrame([run_row("111111111111", T0)]), "r1")
    folder = Path(store.root) / "runs"
    assert str(folder) in synced and str(folder / f"date={T0.date()}") in synced
    assert str(Path(store.root)) in synced  # the dataset folder's own entry, made just now


def _valid_bytes(tmp_path: Path) -> bytes:
    scratch = Store(str(tmp_path / "scratch"), all_datasets())
    [path] = scratch.write("runs", pd.DataFrame([run_row("111111111111", T0)]), "x")
    return Path(path).read_bytes()


BROKEN = {
    "zero-byte": lambda good: b"",
    "truncated": lambda good: good[: len(good) // 2],
    "not-parquet": lambda good: b"account_id,region\n111111111111,us-east-1\n",
    "footer-too-long": lambda good: good[:-8] + (10_000_000).to_bytes(4, "little") + b"PAR1",
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_an_unreadable_file_is_quarantined_and_every_view_still_reads(
        store: Store, tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    store.write("rules", pd.DataFrame([rule_row("111111111111", "a", "ENABLED", T0)]), "r1")
    store.write("runs", pd.DataFrame([run_row("111111111111", T0)]), "r1")
    partition = Path(store.root) / "runs" / f"date={T0.date()}"
    bad = partition / "20261125T235900Z-broken.parquet"
    bad.write_bytes(BROKEN[kind](_valid_bytes(tmp_path)))
    with caplog.at_level(logging.WARNING, logger="orgscope.store"):
        # `rules` (latest) joins `runs`: one bad runs file used to fail both
        assert store.query("select rule from rules")["rule"].tolist() == ["a"]
    assert store.query("select count(*) as n from runs")["n"][0] == 1
    moved = Path(store.root) / "_quarantine" / "runs" / f"date={T0.date()}" / bad.name
    assert moved.exists() and not bad.exists()
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert str(bad) in warning.getMessage() and str(moved) in warning.getMessage()
    assert "unreadable" in warning.getMessage()


def test_the_shape_check_says_what_is_wrong() -> None:
    from orgscope.store_files import parquet_shape_error

    good_tail = (100).to_bytes(4, "little") + b"PAR1"
    assert parquet_shape_error(1000, b"PAR1", good_tail) is None
    assert "0 bytes: too short" in str(parquet_shape_error(0, b"", b""))
    assert "does not start with PAR1" in str(parquet_shape_error(1000, b"acco", good_tail))
    assert "does not end with PAR1" in str(parquet_shape_error(1000, b"PAR1", b"\0\0\0\0PAR"))
    assert "longer than the file" in str(parquet_shape_error(50, b"PAR1", good_tail))


def test_one_unreadable_file_stops_neither_its_dataset_nor_the_next_ones(store: Store) -> None:
    for dataset, row in (("runs", run_row("111111111111", T0)),
                         ("event_metrics", metric_row("a", T0, 1.0))):
        for n in range(2):
            store.write(dataset, pd.DataFrame([row]), f"2026112{n}T000000Z-{n}")
    partition = Path(store.root) / "runs" / f"date={T0.date()}"
    (partition / "20261125T235959Z-zero.parquet").write_bytes(b"")
    report = store.compact_all(before=(T0 + timedelta(days=1)).date())
    assert report.ok and report.merged == {"event_metrics": 2, "runs": 2}
    assert [p.name for p in report.quarantined] == ["20261125T235959Z-zero.parquet"]
    assert store.partitions("runs") == [(T0.date(), 1)]
    assert store.partitions("event_metrics") == [(T0.date(), 1)]


def test_a_failing_partition_is_reported_and_the_rest_compacted(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    days = (T0, T0 + timedelta(days=1))
    for dataset in ("runs", "event_metrics"):
        for day in days:
            for n in range(2):
                row = run_row("111111111111", day) if dataset == "runs" else \
                    metric_row("a", day, float(n))
                store.write(dataset, pd.DataFrame([row]), f"{day:%Y%m%dT%H%M%SZ}-{n}")
    real_compact = Store.compact

    def compact(self: Store, name: str, day: Any) -> int:
        if name == "runs" and day == T0.date():
            raise OSError("disk on fire")
        return real_compact(self, name, day)

    monkeypatch.setattr(Store, "compact", compact)
    report = store.compact_all(before=(T0 + timedelta(days=2)).date())
    assert report.failed == {f"runs date={T0.date()}": "OSError: disk on fire"}
    assert report.merged == {"runs": 2, "event_metrics": 4}
    assert [n for _, n in store.partitions("runs")] == [2, 1]
    assert "FAILED runs date=2026-11-25: OSError: disk on fire" in report.lines()


def test_the_compact_command_exits_1_naming_what_failed(
        config_file: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(str(config_file.parent / "store"), all_datasets())
    for n in range(2):
        store.write("runs", pd.DataFrame([run_row("111111111111", T0)]), f"r{n}")

    def broken(self: Store, name: str, day: Any) -> int:
        raise OSError("disk on fire")

    monkeypatch.setattr(Store, "compact", broken)
    assert main(["--config", str(config_file), "compact"]) == 1
    out = capsys.readouterr().out
    assert f"FAILED runs date={T0.date()}: OSError: disk on fire" in out


def test_stale_temporary_files_are_removed_and_fresh_ones_kept(store: Store) -> None:
    store.write("runs", pd.DataFrame([run_row("111111111111", T0)]), "r1")
    partition = Path(store.root) / "runs" / f"date={T0.date()}"
    stale = partition / ".r2-dead0000.parquet.tmp"
    fresh = partition / ".r3-live0000.parquet.tmp"
    for path in (stale, fresh):
        path.write_bytes(b"PAR1 half")
    now = datetime.now(UTC)
    old = (now - timedelta(minutes=20)).timestamp()
    os.utime(stale, (old, old))
    report = store.compact_all(before=T0.date(), now=now)
    assert report.temporaries == [stale]
    assert not stale.exists() and fresh.exists()
    assert "removed 1 stale temporary files" in report.lines()


def test_a_file_damaged_in_the_middle_is_found_after_a_failed_query_and_quarantined(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """Its ends look like Parquet, so the shape check passes it; DuckDB fails reading it
    without naming it ("Corrupted file?"). The store then reads each file of the datasets the
    query used, moves the damaged one aside and answers from the rest."""
    rows = [metric_row("rule-a", T0 + timedelta(seconds=i), float(i)) for i in range(3000)]
    store.write("event_metrics", pd.DataFrame(rows[:1500]), "r1")
    [damaged] = store.write("event_metrics", pd.DataFrame(rows[1500:]), "r2")
    data = bytearray(Path(damaged).read_bytes())
    middle = len(data) // 3
    data[middle: middle + 2000] = b"\x55" * 2000
    Path(damaged).write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="orgscope.store"):
        answer = store.query("select count(*) as n from event_metrics")
    assert int(answer["n"][0]) == 1500
    assert not Path(damaged).exists()
    assert any("_quarantine" in record.getMessage() for record in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="orgscope.store"), pytest.raises(StoreError):
        store.query("selec count(*) from event_metrics")
    assert caplog.records == []  # a mistake in the SQL sets off no check of the files
