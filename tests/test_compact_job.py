"""The scheduler's compaction job: hourly, and today's partition included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
from apscheduler.triggers.cron import CronTrigger

from orgscope import plugins
from orgscope.datasets import all_datasets
from orgscope.scheduler import build_scheduler, compact_job
from orgscope.store import Store
from tests.test_sharding import _runner
from tests.test_store import metric_row


def test_compaction_merges_todays_files_and_keeps_every_row(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "store"), all_datasets())
    now = datetime.now(UTC).replace(microsecond=0)
    earlier = now - timedelta(hours=30)  # yesterday (or the day before)
    for n, at in enumerate((earlier, earlier + timedelta(minutes=1), now, now)):
        store.write("event_metrics", pd.DataFrame([metric_row(f"r{n}", at, float(n))]),
                    f"{at:%Y%m%dT%H%M%SZ}-{n}")
    before = store.query("SELECT rule, value FROM event_metrics ORDER BY rule")
    compact_job(SimpleNamespace(store=store))  # type: ignore[arg-type]
    assert [count for _day, count in store.partitions("event_metrics")] == [1, 1]
    pd.testing.assert_frame_equal(before, store.query(
        "SELECT rule, value FROM event_metrics ORDER BY rule"))


def test_compaction_is_scheduled_every_hour() -> None:
    jobs = {job.id: job for job in build_scheduler(_runner("1/1"),
                                                   list(plugins.COLLECTORS.values()),
                                                   plugins.run_steps).get_jobs()}
    trigger = jobs["compact"].trigger
    assert isinstance(trigger, CronTrigger)
    fields = {field.name: str(field) for field in trigger.fields}
    assert fields["minute"] == "17" and fields["hour"] == "*"
