"""`orgscope serve`: the collectors on APScheduler at their configured intervals.

One job per enabled collector: at most one instance at a time, missed runs coalesced into one,
a random jitter per run, the first run at start-up. SIGINT and SIGTERM shut the scheduler down
cleanly, waiting for a running cycle to finish its writes.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from orgscope.change_feed import ChangeFeed, Reread, start_feed
from orgscope.collect import Collector
from orgscope.config import format_interval
from orgscope.runner import CycleResult, Runner, stages
from orgscope.steps import AfterRun

log = logging.getLogger(__name__)


def summarize(collector: str, cycle: CycleResult, seconds: float) -> str:
    """The one log line per collection run."""
    ok = sum(1 for run in cycle.runs if run.status == "ok")
    failed = len(cycle.runs) - ok
    calls = sum(run.calls.total for run in cycle.runs)
    unreachable = sorted(a for a, reason in cycle.reachability.items() if reason)
    text = (
        f"collector {collector}: {ok} ok, {failed} failed in {seconds:.1f}s, "
        f"{calls} API calls"
    )
    if unreachable:
        text += f"; unreachable: {', '.join(unreachable)}"
    return text


#: How much later each stage of collectors first runs at start-up than the one before.
STAGE_DELAY = timedelta(seconds=20)

def run_job(runner: Runner, collector: Collector, after_run: AfterRun) -> None:
    """One scheduled run, then the steps that follow it (``after_run``); never raises into
    APScheduler (which would only log it)."""
    started = datetime.now(UTC)
    try:
        cycle = runner.run_cycle([collector])
    except Exception:
        log.exception("collector %s: the cycle failed before it could record its runs",
                      collector.name)
        return
    seconds = (datetime.now(UTC) - started).total_seconds()
    log.info(summarize(collector.name, cycle, seconds))
    for name, summary in after_run(runner, [collector.name]).items():
        if summary:
            log.info("step %s: %s", name, summary)


def compact_job(runner: Runner) -> None:
    """Merge each day's files, today's included, into one per dataset.

    Every query builds its views over every file, so today's partition matters most: with the
    X-Ray collector every minute, ``runs`` alone gains 60 files an hour. Compacting a live
    partition is safe (a file written meanwhile stays beside the merged one; docs/datasets.md).
    """
    report = runner.store.compact_all(before=datetime.now(UTC).date() + timedelta(days=1))
    for where, error in sorted(report.failed.items()):
        log.error("compaction of %s failed: %s (the rest was compacted)", where, error)
    if report.merged:
        log.info("compacted partitions: %s", report.merged)


def build_scheduler(runner: Runner, collectors: Sequence[Collector],
                    after_run: AfterRun) -> BackgroundScheduler:
    """A scheduler with one job per enabled collector (each followed by the steps
    ``after_run`` runs), and an hourly compaction (not started)."""
    scheduler = BackgroundScheduler(timezone=UTC)
    now = datetime.now(UTC)
    # Compaction rewrites every shard's files: like the org-wide steps, it runs in one
    # process of a sharded deployment (docs/scaling.md).
    if runner.runs_org_steps:
        scheduler.add_job(compact_job, CronTrigger(minute=17, timezone=UTC),
                          args=(runner,), id="compact", name="compact the store",
                          max_instances=1, coalesce=True, next_run_time=now)
    if runner.shard.sharded:
        log.info("shard %s: collecting this shard's accounts; org-wide steps and compaction "
                 "%s", runner.shard.label, "here" if runner.runs_org_steps else "elsewhere")
    # A collector reading another's dataset (metrics reads the inventory) starts a little
    # after it, so its first run at start-up finds something to read.
    stage_of = {c.name: index for index, stage in enumerate(stages(collectors)) for c in stage}
    for collector in collectors:
        settings = runner.config.collector(collector.name)
        if not settings.enabled:
            log.info("collector %s is disabled in config", collector.name)
            continue
        interval = settings.run_interval(bool(runner.config.changes.queue_url))
        scheduler.add_job(
            run_job,
            IntervalTrigger(seconds=int(interval.total_seconds()),
                            jitter=settings.jitter_s or None),
            args=(runner, collector, after_run),
            id=collector.name,
            name=f"collect {collector.name}",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=int(interval.total_seconds()),
            next_run_time=now + STAGE_DELAY * stage_of[collector.name],
        )
        log.info("collector %s every %s (jitter %ss)", collector.name,
                 format_interval(interval), settings.jitter_s)
    return scheduler


def change_feed(runner: Runner, reread: Reread | None, after_run: AfterRun
                ) -> ChangeFeed | None:
    """The change feed to run beside the jobs (docs/changes.md): with ``[changes] queue_url``
    set, in the process that runs the org-wide steps; checked before anything starts
    (:class:`orgscope.change_feed.ChangeQueueError` says why it cannot be read)."""
    if not runner.config.changes.queue_url or reread is None:
        return None
    if not runner.runs_org_steps:
        log.info("change feed: runs in the shard that runs the org-wide steps, not here")
        return None
    feed = ChangeFeed(runner, reread, after_run)
    feed.check()
    return feed


def serve(runner: Runner, collectors: Sequence[Collector], after_run: AfterRun,
          stop: threading.Event | None = None, reread: Reread | None = None) -> int:
    """Run until SIGINT/SIGTERM (or ``stop`` is set); returns the exit status.
    ``after_run`` runs the steps after each collector run (:func:`orgscope.plugins.run_steps`);
    ``reread`` (:func:`orgscope.plugins.reread`) turns on the change feed when
    ``[changes] queue_url`` is set."""
    stop = stop or threading.Event()
    feed = change_feed(runner, reread, after_run)
    scheduler = build_scheduler(runner, collectors, after_run)

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
    scheduler.start()
    log.info("scheduler started with %d job(s)", len(scheduler.get_jobs()))
    if feed is not None:
        start_feed(feed, stop)
    try:
        stop.wait()
    finally:
        scheduler.shutdown(wait=True)
        log.info("scheduler stopped")
    return 0
