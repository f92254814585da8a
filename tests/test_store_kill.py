"""A writer or a compaction killed with SIGKILL at a chosen point: the store still reads, no
row is lost and none is counted twice (docs/datasets.md, "Faults").

The child process arms one function of orgscope.store_files (``os.link``, ``os.fsync`` or
``Path.unlink``) to let ``after`` calls through and SIGKILL the process on the next one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from orgscope.datasets import all_datasets
from orgscope.store import Store
from tests.test_store import T0, metric_row, run_row

ROOT = Path(__file__).resolve().parents[1]
FILES = 4

CHILD = r"""
import os, signal, sys
from datetime import date
import pandas as pd
from orgscope import store_files
from orgscope.datasets import all_datasets
from orgscope.store import Store

base, dataset, action, point, after, rows = sys.argv[1:7]  # rows: a pickled frame
owner, name = {"link": (store_files.os, "link"), "fsync": (store_files.os, "fsync"),
               "unlink": (store_files.Path, "unlink")}[point]
real, calls = getattr(owner, name), [0]

def armed(*args, **kwargs):
    calls[0] += 1
    if calls[0] > int(after):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)

setattr(owner, name, armed)
store = Store(base, [d for d in all_datasets() if d.name == dataset])
if action == "write":
    frame = pd.read_pickle(rows)
    store.write(dataset, frame, "20261126T000000Z-late")
else:
    store.compact_all(before=date(2026, 12, 1))
print("not killed")
"""


def _child(base: Path, dataset: str, action: str, point: str, after: int,
           rows: str = "-") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", CHILD, str(base), dataset, action, point,
                           str(after), rows], check=False, cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=120)


def _frame(dataset: str, n: int) -> pd.DataFrame:
    """Cycle ``n``'s file of ``dataset``: event_metrics rows of a key of their own and of a key
    every cycle re-reads (rule "shared", the newest value winning); runs rows unique by
    run_id."""
    at = T0 - timedelta(minutes=30) + timedelta(minutes=n)
    if dataset == "event_metrics":
        return pd.DataFrame([metric_row(f"r{n}", at, float(n)),
                             metric_row("shared", T0, float(n))])
    return pd.DataFrame([{**run_row("111111111111", at), "run_id": f"run-{n}"}])


def _fill(base: Path, dataset: str) -> Store:
    store = Store(str(base), all_datasets())
    for n in range(FILES):
        store.write(dataset, _frame(dataset, n), f"20261125T2330{n:02d}Z-{n}")
    return store


def _state(store: Store, dataset: str) -> tuple[dict[str, float], int]:
    """(the rows by identity, how many rows the view returned)."""
    if dataset == "event_metrics":
        frame = store.query("SELECT rule, value FROM event_metrics")
        return dict(zip(frame["rule"], frame["value"], strict=True)), len(frame)
    frame = store.query("SELECT run_id, duration_s FROM runs")
    return dict(zip(frame["run_id"], frame["duration_s"], strict=True)), len(frame)


def _expected(dataset: str, files: int) -> dict[str, float]:
    if dataset == "event_metrics":
        return {**{f"r{n}": float(n) for n in range(files)}, "shared": float(files - 1)}
    return {f"run-{n}": 0.1 for n in range(files)}


def _check(store: Store, dataset: str, files: int) -> None:
    found, count = _state(store, dataset)
    expected = _expected(dataset, files)
    lost = set(expected) - set(found)
    assert not lost, f"rows lost: {sorted(lost)}"
    assert count == len(found), f"{count - len(found)} duplicate rows"
    assert found == expected


def _finish_compaction(store: Store) -> None:
    """What the next hourly compaction does, 20 minutes after the kill."""
    report = store.compact_all(before=(T0 + timedelta(days=1)).date(),
                               now=datetime.now(UTC) + timedelta(minutes=20))
    assert report.ok


def _leftovers(base: Path) -> list[str]:
    return sorted(p.name for p in base.rglob(".*.parquet.tmp"))


# kill points in a compaction of one partition of FILES files: the merged file's fsync (its
# bytes written, not yet linked), its link, then each unlink (1: the temporary name after the
# link; 2: the first original deleted, so 3 kills between two deletes)
COMPACTION_POINTS = [("fsync", 0), ("link", 0), ("unlink", 1), ("unlink", 2), ("unlink", 3)]


@pytest.mark.parametrize("dataset", ["runs", "event_metrics"])
@pytest.mark.parametrize(("point", "after"), COMPACTION_POINTS)
def test_a_compaction_killed_at_any_point_loses_nothing_and_counts_nothing_twice(
        tmp_path: Path, dataset: str, point: str, after: int) -> None:
    base = tmp_path / "store"
    store = _fill(base, dataset)
    _check(store, dataset, FILES)
    done = _child(base, dataset, "compact", point, after)
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr
    _check(store, dataset, FILES)  # readers, right after the kill
    _finish_compaction(store)
    _check(store, dataset, FILES)
    assert store.partitions(dataset) == [(T0.date(), 1)]
    assert _leftovers(base) == []


@pytest.mark.parametrize("dataset", ["runs", "event_metrics"])
@pytest.mark.parametrize("point", ["fsync", "link"])
def test_a_writer_killed_mid_write_leaves_the_store_readable_and_the_rewrite_counts_once(
        tmp_path: Path, dataset: str, point: str) -> None:
    base = tmp_path / "store"
    store = _fill(base, dataset)
    late = _frame(dataset, FILES)
    late.to_pickle(tmp_path / "late.pkl")  # the frame the child writes
    done = _child(base, dataset, "write", point, 0, str(tmp_path / "late.pkl"))
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr
    _check(store, dataset, FILES)  # the write never returned: its rows are not there
    assert len(_leftovers(base)) == 1  # its temporary file
    # the run is done again after the restart (a failed run; metrics re-read their window)
    store.write(dataset, late, "20261126T000100Z-again")
    _check(store, dataset, FILES + 1)
    _finish_compaction(store)
    _check(store, dataset, FILES + 1)
    assert _leftovers(base) == []
