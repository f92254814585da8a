"""How long every dashboard page takes to render, with 30 days of stored data.

For the reference organization (13 accounts, 29 rules) and for a generated one of 100 accounts
(198 rules), it fills a store with 30 days of what orgscope keeps, written through
:meth:`Store.write` the way the runner writes it (one file per past day, as ``orgscope
compact`` leaves them, and one file per collection cycle today), starts the dashboard as
``orgscope dashboard`` does, and opens every page of ``st.navigation`` (discovered from the
app's sidebar, not listed here) in headless Chromium:

* **the floor**: bench/floor_app.py, a trivial Streamlit page (a title, six metrics, a Plotly
  line of 288 points, a 30 x 8 dataframe) served beside the dashboard and opened in every
  round like a page: every time is also reported as a ratio to the floor's in the same run,
  the only comparison that holds across runs on a shared machine;
* **first load**: the first navigation to the page after the dashboard started (cold data
  cache, page module imported for the first time);
* **after a new cycle**: the median of ``--repeat`` later rounds; before each round a new
  collection cycle lands in the store (:func:`land_cycle`) and rounds start at least
  ``--spacing`` (31 s, longer than the data cache's TTL) apart, as a user's visits are, so
  nothing cached can be reused; each visit is a new browser tab (a new session);
* **rendered** means: the page's title is drawn, no "Running..." status widget, no spinner or
  skeleton, every Plotly chart has drawn its SVG, and the page's DOM has stopped changing for
  :data:`STABLE_MS` (the time reported is when it last changed, measured from the start of the
  navigation by the browser's own clock), polled every :data:`POLL_MS`;
* **points**: the data points every Plotly chart received (x values per trace, z cells of a
  heatmap), against the chart's width in pixels;
* **peak RSS**: the dashboard process's VmHWM from /proc after every page was loaded.

What is stored (30 days unless said otherwise): ``accounts``, ``rules`` and ``event_buses``
snapshots and a ``rule_health`` evaluation every 5 minutes; ``runs`` of every collector at its
reference interval (xray every minute); 5-minute ``event_metrics`` of every rule and producer
(testkit/synthetic.py for 100 accounts, testkit/dashboard_sample.py for the reference);
``dlq_depth`` every 5 minutes; 13 months of ``cost_daily``; ``spans`` and ``traces`` of the
simulator's order flow for the last ``--span-hours`` (one simulated hour repeated with fresh
ids); the alerts sample.

    nice -n 10 .venv/bin/python bench/dashboard_render.py [--orgs reference,100] [--days 30]

Results: bench/results/dashboard_render.json; summary in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from playwright.sync_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orgscope import wiring  # noqa: E402
from orgscope.config import Config  # noqa: E402
from orgscope.datasets import (  # noqa: E402
    ACCOUNTS,
    DLQ_DEPTH,
    EVENT_BUSES,
    EVENT_METRICS,
    RULE_HEALTH,
    RULES,
    RUNS,
    all_datasets,
)
from orgscope.store import Store  # noqa: E402
from testkit import dashboard_sample as ds  # noqa: E402
from testkit import synthetic as sy  # noqa: E402
from testkit.browser import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    dashboard_process,
    free_port,
    wait_for_http,
)
from testkit.collectors_sample import runs_frame  # noqa: E402

log = logging.getLogger("bench.dashboard_render")

RESULTS = ROOT / "bench" / "results" / "dashboard_render.json"
PERIOD = timedelta(minutes=5)
STABLE_MS = 400
#: Polled at a fixed interval: requestAnimationFrame polling burns the browser's CPU during
#: the very thing it measures.
POLL_MS = 50
#: A user's visits to a page are further apart than the data cache's 30 s TTL.
SPACING_S = 31.0
FLOOR = "Floor"
FLOOR_APP = ROOT / "bench" / "floor_app.py"
TIMEOUT_MS = 180_000
REGION = "us-east-1"

#: Runs in the browser every POLL_MS until the page is rendered (see module doc).
RENDERED_JS = """
(stable) => {
  const now = performance.now();
  const busy = document.querySelector('[data-testid="stStatusWidget"]')
    || document.querySelector('[data-testid="stSpinner"]')
    || document.querySelector('[data-testid="stSkeleton"]');
  const title = document.querySelector('[data-testid="stMain"] h1');
  let drawn = true;
  document.querySelectorAll('[data-testid="stPlotlyChart"]').forEach((chart) => {
    if (!chart.querySelector('.main-svg')) { drawn = false; }
  });
  const size = document.getElementsByTagName('*').length;
  if (busy || !title || !drawn) { window.__since = null; window.__size = -1; return false; }
  if (window.__size !== size || window.__since === null) {
    window.__size = size; window.__since = now; return false;
  }
  if (now - window.__since >= stable) { window.__rendered = window.__since; return true; }
  return false;
}
"""

POINTS_JS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).map((gd) => {
  const traces = (gd.data || []).map((t) => {
    if (t.z && t.z.length) { return t.z.length * (t.z[0] && t.z[0].length ? t.z[0].length : 1); }
    const n = (t.x && t.x.length) || (t.y && t.y.length) || (t.values && t.values.length)
      || (t.node && t.node.label && t.node.label.length) || 0;
    return n;
  });
  return {width: Math.round(gd.getBoundingClientRect().width), traces: traces.length,
          points: traces.reduce((a, b) => a + b, 0),
          max_per_trace: traces.length ? Math.max(...traces) : 0};
})
"""


# --- the organizations ---------------------------------------------------------------------


@dataclass(frozen=True)
class Org:
    """One benchmarked organization: its config and how to fill its store."""

    label: str
    config_path: Path
    store: Store
    accounts: int


def _scaled_config(folder: Path, accounts: int) -> Path:
    """config.toml with ``accounts`` generated accounts instead of QuickGrocer's."""
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    first = text.index("\n[[accounts]]\n") + 1
    after = text.index("# Collector schedules")
    ids = [f"{200000000000 + i}" for i in range(accounts)]
    blocks = []
    for index, account_id in enumerate(ids):
        blocks.append(f'[[accounts]]\nid = "{account_id}"\nname = "acct-{index:03d}"\n'
                      f'team = "team-{index % 20:02d}"\nshared = {str(index < 2).lower()}\n')
    text = text[:first] + "\n".join(blocks) + "\n" + text[after:]
    text = re.sub(r'(?m)^management_account_id = ".*"$', f'management_account_id = "{ids[0]}"',
                  text)
    text = re.sub(r'(?m)^central_bus_account_id = ".*"$', f'central_bus_account_id = "{ids[1]}"',
                  text)
    text = re.sub(r'(?m)^monitoring_account_id = ".*"$', f'monitoring_account_id = "{ids[0]}"',
                  text)
    text = re.sub(r"(?ms)^\[cost\.budgets\].*?(?=^\[)", "[cost.budgets]\n\n", text)
    text = re.sub(r'(?m)^path = "\./data"$', f'path = "{(folder / "data").as_posix()}"', text)
    path = folder / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _cycles(start: datetime, end: datetime) -> pd.DatetimeIndex:
    return sy.periods(start, end, PERIOD)


def _repeat(frame: pd.DataFrame, times: pd.DatetimeIndex, column: str) -> pd.DataFrame:
    """``frame`` once per time, with ``column`` set to that time."""
    copies = frame.loc[frame.index.repeat(len(times))].reset_index(drop=True)
    copies[column] = np.tile(times.to_numpy(), len(frame))
    return copies


def _write_days(store: Store, name: str, frame: pd.DataFrame, column: str, *,
                today: pd.Timestamp, tag: str) -> None:
    """Past days as one file each (compacted); today one file per 5-minute cycle."""
    stamps = pd.to_datetime(frame[column], utc=True)
    past = frame[stamps < today]
    if len(past):
        store.write(name, past, f"{tag}-past")
    recent = frame[stamps >= today]
    for stamp, part in recent.groupby(stamps[stamps >= today].dt.floor("5min")):
        store.write(name, part, f"{pd.Timestamp(str(stamp)):%Y%m%dT%H%M%SZ}-{tag}")


def _snapshots(store: Store, now: datetime, days: int, *, accounts: pd.DataFrame,
               rules: pd.DataFrame, buses: pd.DataFrame, health: pd.DataFrame) -> None:
    """accounts, rules, event_buses and rule_health every 5 minutes, a day at a time."""
    today = pd.Timestamp(now).floor("D")
    start = now - timedelta(days=days)
    for day in pd.date_range(pd.Timestamp(start).floor("D"), today, freq="D"):
        times = _cycles(max(day.to_pydatetime(), start),
                        min((day + pd.Timedelta(days=1)).to_pydatetime(), now))
        if not len(times):
            continue
        for name, frame, column in ((ACCOUNTS.name, accounts, "checked_at"),
                                    (RULES.name, rules, "collected_at"),
                                    (EVENT_BUSES.name, buses, "collected_at"),
                                    (RULE_HEALTH.name, health, "evaluated_at")):
            _write_days(store, name, _repeat(frame, times, column), column, today=today,
                        tag="snap")


def _runs(store: Store, now: datetime, days: int, shapes: dict[str, tuple[int, int, int]], *,
          management: str, unreachable: dict[str, datetime]) -> int:
    today = pd.Timestamp(now).floor("D")
    start = now - timedelta(days=days)
    total = 0
    for day in pd.date_range(pd.Timestamp(start).floor("D"), today, freq="D"):
        first = max(day.to_pydatetime(), start)
        last = min((day + pd.Timedelta(days=1)).to_pydatetime(), now)
        if first >= last:
            continue
        frame = runs_frame(shapes, first, last, unreachable=unreachable, management=management)
        if day < today:
            store.write(RUNS.name, frame, f"runs-{day:%Y%m%d}")
        else:  # today: one runs file per cycle of each collector, as the runner writes them
            for (collector, stamp), part in frame.groupby(["collector", "started_at"]):
                name = f"{pd.Timestamp(str(stamp)):%Y%m%dT%H%M%SZ}-{collector}"
                store.write(RUNS.name, part, name)
        total += len(frame)
    return total


def _fresh_ids(frame: pd.DataFrame, columns: tuple[str, ...], salt: int) -> pd.DataFrame:
    """The same ids with their last four hex digits XORed with ``salt`` (unique per copy)."""
    def change(value: Any) -> Any:
        if not isinstance(value, str) or len(value) < 4:
            return value
        if value.startswith("00-") and value.count("-") == 3:  # a traceparent
            version, trace, span, flags = value.split("-")
            return "-".join((version, change(trace), change(span), flags))
        try:
            tail = int(value[-4:], 16) ^ salt
        except ValueError:
            return value
        return f"{value[:-4]}{tail:04x}"
    out = frame.copy()
    for column in columns:
        if column in out:
            if out[column].map(lambda v: isinstance(v, (list, np.ndarray))).any():
                out[column] = out[column].map(lambda items: [change(i) for i in items])
            else:
                out[column] = out[column].map(change)
    return out


def _spans_and_traces(store: Store, now: datetime, hours: int) -> int:
    """The simulator's order flow: one hour of spans and stitched traces, repeated."""
    from orgscope.datasets import SPANS, TRACES
    from orgscope.traces.stitch import stitch
    from orgscope.traces.views import trace_summaries
    from testkit.traces_sample import TEAMS, sample_spans

    hour = sample_spans(now, 60, spike=True)
    summaries = trace_summaries(stitch(hour), TEAMS).assign(merged_into=None, stitched_at=now)
    written = 0
    for offset in range(hours):
        shift = pd.Timedelta(hours=offset)
        spans = _fresh_ids(hour, ("trace_id", "span_id", "parent_id", "traceparent",
                                  "linked_from"), offset)
        spans["start"] = spans["start"] - shift
        spans["end"] = spans["end"] - shift
        traces = _fresh_ids(summaries, ("trace_id", "member_trace_ids"), offset)
        traces["start"] = traces["start"] - shift
        traces["end"] = traces["end"] - shift
        traces["stitched_at"] = pd.Timestamp(now) - shift
        store.write(SPANS.name, spans[SPANS.columns], f"spans-{offset:04d}")
        store.write(TRACES.name, traces[TRACES.columns], f"traces-{offset:04d}")
        written += len(spans)
    return written


def _others(store: Store, config: Config, now: datetime, span_hours: int) -> dict[str, int]:
    """Cost, spans and traces, alerts: the samples other pages are tested with."""
    from testkit.alerts_sample import fill_alerts
    from testkit.cost_sample import fill_cost

    fill_cost(store, config, now.date(), months=13)
    spans = _spans_and_traces(store, now, span_hours)
    fill_alerts(store, now)
    return {"spans": spans}


def build_reference(folder: Path, now: datetime, days: int, span_hours: int) -> Org:
    config_path = ds.write_config(folder, folder / "data")
    config = wiring.load(config_path)
    store = Store(str(folder / "data"), all_datasets())
    ds.fill_org_store(store, now)  # the latest cycles: payment-service unreachable
    ds.fill_event_flow(store, now, days=days)
    past = ds.Cycle(now - timedelta(days=days), frozenset())
    accounts = ds._accounts_frame(past)
    rules = ds._rules_frame(past, REGION, ds.RULE_SPECS)
    buses = ds._buses_frame(past, REGION)
    health = ds._health_frame(now, (REGION,), faults=False)
    _snapshots(store, now - timedelta(minutes=12), days, accounts=accounts, rules=rules,
               buses=buses, health=health)
    shapes = {account_id: (sum(1 for s in ds.RULE_SPECS if s[0] == account_id), 2,
                           25 if account_id in {"111111111111", "121212121212", "777777777777",
                                                "999999999999", "666666666666"} else 0)
              for account_id, *_rest in ds.ORG}
    _runs(store, now, days, shapes, management=config.organization.management_account_id,
          unreachable={ds.UNREACHABLE_ID: now - timedelta(minutes=12)})
    _others(store, config, now, span_hours)
    return Org("reference", config_path, store, len(ds.ORG))


def build_scaled(folder: Path, now: datetime, days: int, accounts: int,
                 span_hours: int) -> Org:
    config_path = _scaled_config(folder, accounts)
    config = wiring.load(config_path)
    store = Store(str(folder / "data"), all_datasets())
    ids = [a.id for a in config.accounts]
    central = config.organization.central_bus_account_id
    consumers = [a for a in ids if a != central]
    names = {a.id: a.name for a in config.accounts}
    rules = [sy.SynthRule(central, f"route-to-{names[c]}", bus="central-bus",
                          sources=(f"acme.{names[c]}",),
                          dlq_arns=(f"arn:aws:sqs:{REGION}:{central}:route-{names[c]}-dlq",),
                          peak_per_period=20.0) for c in consumers]
    rules += [sy.SynthRule(c, f"deliver-{names[c]}", sources=(f"acme.{names[c]}",),
                           peak_per_period=20.0) for c in consumers]
    today = pd.Timestamp(now).floor("D")
    start = now - timedelta(days=days)
    producers = {a: REGION for a in ids}
    for day in pd.date_range(pd.Timestamp(start).floor("D"), today, freq="D"):
        first = max(day.to_pydatetime(), start)
        last = min((day + pd.Timedelta(days=1)).to_pydatetime(),
                   pd.Timestamp(now).floor("5min").to_pydatetime())
        if first >= last:
            continue
        scenario = sy.Scenario(rules, first, last, PERIOD, producers=producers,
                               seed=int(day.strftime("%j")))
        metrics = scenario.metrics()
        store.write(EVENT_METRICS.name, metrics[EVENT_METRICS.columns], f"metrics-{day:%Y%m%d}")
        times = _cycles(first, last)
        queues = [arn for r in rules for arn in r.dlq_arns]
        dlq = pd.DataFrame({
            "account_id": central, "region": REGION,
            "queue": np.tile([q.rsplit(":", 1)[-1] for q in queues], len(times)),
            "queue_arn": np.tile(queues, len(times)),
            "ts": np.repeat(times.to_numpy(), len(queues)), "visible": 0, "in_flight": 0,
            "oldest_age_s": 0.0})
        dlq["ts"] = pd.to_datetime(dlq["ts"], utc=True)
        store.write(DLQ_DEPTH.name, dlq[DLQ_DEPTH.columns], f"dlq-{day:%Y%m%d}")
    snapshot_at = now - timedelta(days=days)
    accounts_frame = pd.DataFrame([{
        "account_id": a.id, "name": a.name, "team": a.team, "environment": "production",
        "cost_center": "", "reachable": True, "reason": None, "checked_at": snapshot_at}
        for a in config.accounts])
    rules_frame = sy.inventory(rules, snapshot_at)
    buses_frame = sy.buses([(snapshot_at, a, REGION, "default", []) for a in ids]
                           + [(snapshot_at, central, REGION, "central-bus", consumers)])
    health = pd.DataFrame([{
        "account_id": r.account_id, "region": r.region, "bus": r.bus, "rule": r.rule,
        "verdict": "OK", "reasons": [], "details": "{}", "evaluated_at": snapshot_at}
        for r in rules])[RULE_HEALTH.columns]
    _snapshots(store, now, days, accounts=accounts_frame, rules=rules_frame, buses=buses_frame,
               health=health)
    per_account = {a: (sum(1 for r in rules if r.account_id == a), 1 if a == central else 0,
                       25 if i < 10 else 0) for i, a in enumerate(ids)}
    _runs(store, now, days, per_account, management=config.organization.management_account_id,
          unreachable={})
    _others(store, config, now, span_hours)
    return Org(f"{accounts} accounts", config_path, store, accounts)


# --- the dashboard and the browser -----------------------------------------------------------


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


_TICK = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds used so far) of every process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK)
    return found


def cpu_by_side(dashboard_pid: int) -> dict[str, float]:
    """CPU seconds so far of the dashboard process and of this process's other descendants
    (Playwright's driver and Chromium)."""
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, (parent, _cpu) in table.items():
        children.setdefault(parent, []).append(pid)

    def below(root: int) -> set[int]:
        seen, stack = set(), [root]
        while stack:
            for child in children.get(stack.pop(), []):
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        return seen

    server = {dashboard_pid} | below(dashboard_pid)
    browser = below(os.getpid()) - server
    return {"server": sum(table[p][1] for p in server if p in table),
            "browser": sum(table[p][1] for p in browser if p in table)}


def discover_pages(browser: Any, url: str) -> list[tuple[str, str]]:
    """(title, url path) of every page in the app's navigation, in its order."""
    page = browser.new_page(viewport={"width": 1500, "height": 1200})
    page.goto(url)
    links = page.locator('[data-testid="stSidebarNav"] a')
    links.first.wait_for(timeout=120_000)
    found = []
    for index in range(links.count()):
        link = links.nth(index)
        href = str(link.get_attribute("href") or "")
        path = "/" + href.split("://", 1)[-1].split("/", 1)[-1] if "://" in href else href
        found.append((link.inner_text().strip(), path))
    page.close()
    return found


def render_once(browser: Any, url: str, dashboard_pid: int) -> dict[str, Any]:
    """Open ``url`` in a new session: the ms until rendered, the CPU seconds the dashboard
    and the browser spent on it, and the points each chart got."""
    page = browser.new_page(viewport={"width": 1500, "height": 1400})
    try:
        before = cpu_by_side(dashboard_pid)
        load = os.getloadavg()[0]
        page.goto(url, wait_until="commit")
        try:
            page.wait_for_function(RENDERED_JS, arg=STABLE_MS, polling=POLL_MS,
                                   timeout=TIMEOUT_MS)
        except PlaywrightTimeout:
            shot = RESULTS.parent / f"render-timeout-{url.rsplit('/', 1)[-1] or 'root'}.png"
            page.screenshot(path=str(shot), full_page=True)
            log.error("%s: not rendered within %d s (screenshot %s)", url, TIMEOUT_MS // 1000,
                      shot)
            return {"ms": None, "charts": [], "exceptions": -1, "server_cpu_ms": None,
                    "browser_cpu_ms": None, "load_avg_1m": round(load, 1)}
        after = cpu_by_side(dashboard_pid)
        rendered = float(page.evaluate("window.__rendered"))
        charts = page.evaluate(POINTS_JS)
        errors = page.locator('[data-testid="stException"]').count()
        return {"ms": round(rendered), "charts": charts, "exceptions": errors,
                "server_cpu_ms": round((after["server"] - before["server"]) * 1000),
                "browser_cpu_ms": round((after["browser"] - before["browser"]) * 1000),
                "load_avg_1m": round(load, 1)}
    finally:
        page.close()


def _median(values: Iterable[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known)) if known else None


@contextmanager
def floor_process() -> Iterator[str]:
    """bench/floor_app.py served by Streamlit as the dashboard is (headless, loopback); its
    URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(FLOOR_APP), "--server.address",
         "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/_stcore/health", timeout=120)
        yield url + "/"
    finally:
        process.terminate()
        process.wait(timeout=30)


def land_cycle(store: Store, cycle: int) -> None:
    """Write what one collection cycle adds, stamped now: the newest ``rule_health``
    evaluation, 5-minute ``event_metrics`` and ``dlq_depth`` readings and ``runs`` rows again
    (copies of the newest ones, moved to the current period), so that a visit after it finds
    a store newer than anything the dashboard has read."""
    now = pd.Timestamp.now(tz="UTC")
    period = now.floor("5min")
    for dataset, at in ((RULE_HEALTH, now), (EVENT_METRICS, period), (DLQ_DEPTH, period),
                        (RUNS, now)):
        column = dataset.time_column
        newest = store.query(f'SELECT * EXCLUDE (date) FROM "{dataset.name}" WHERE "{column}" = '
                             f'(SELECT max("{column}") FROM "{dataset.name}")')
        if newest.empty:
            continue
        newest[column] = at
        if dataset is RUNS:
            newest["run_id"] = [f"bench-cycle-{cycle}-{i}" for i in range(len(newest))]
        store.write(dataset.name, newest[dataset.columns], f"bench-cycle-{cycle}")


def _ratio(value: int | None, floor: int | None) -> float | None:
    return round(value / floor, 2) if value is not None and floor else None


def measure(org: Org, repeat: int, spacing_s: float) -> dict[str, Any]:
    """Open the floor and every page: once after start (first load), then ``repeat`` rounds,
    each after a new collection cycle has landed and at least ``spacing_s`` after the round
    before (a user's visits, more than the data cache's TTL apart: nothing cached to reuse)."""
    from playwright.sync_api import sync_playwright

    result: dict[str, Any] = {"organization": org.label, "accounts": org.accounts, "pages": []}
    with (dashboard_process(org.config_path, timeout=120, stop_timeout=30) as dashboard,
          floor_process() as floor_url, sync_playwright() as playwright):
        url, pid = dashboard.url, dashboard.pid
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        result["rss_after_start_mb"] = round(rss_mb(pid), 1)
        pages = [(FLOOR, floor_url), *((title, url + path)
                                       for title, path in discover_pages(browser, url))]
        log.info("%s: pages %s", org.label, [title for title, _ in pages])
        visits: dict[str, list[dict[str, Any]]] = {title: [] for title, _ in pages}
        for round_ in range(repeat + 1):
            began = time.monotonic()
            if round_:
                land_cycle(org.store, round_)
            for title, address in pages:
                visit = render_once(browser, address, pid)
                visits[title].append(visit)
                log.info("%s %s, round %d: %s ms, server CPU %s ms", org.label, title, round_,
                         visit["ms"], visit["server_cpu_ms"])
            rest = spacing_s - (time.monotonic() - began)
            if round_ < repeat and rest > 0:
                time.sleep(rest)
        floor_first = visits[FLOOR][0]["ms"]
        floor_fresh = _median(v["ms"] for v in visits[FLOOR][1:])
        result["floor"] = {"first_load_ms": floor_first, "fresh_median_ms": floor_fresh}
        for title, address in pages[1:]:
            first, fresh = visits[title][0], visits[title][1:]
            charts = first["charts"]
            entry = {
                "page": title, "path": address.removeprefix(url),
                "first_load_ms": first["ms"],
                "fresh_ms": [v["ms"] for v in fresh],
                "fresh_median_ms": _median(v["ms"] for v in fresh),
                "first_x_floor": _ratio(first["ms"], floor_first),
                "fresh_x_floor": _ratio(_median(v["ms"] for v in fresh), floor_fresh),
                "charts": len(charts),
                "points": sum(c["points"] for c in charts),
                "max_points_per_trace": max((c["max_per_trace"] for c in charts), default=0),
                "chart_widths_px": [c["width"] for c in charts],
                "chart_points": [c["points"] for c in charts],
                "exceptions": first["exceptions"],
                "first_server_cpu_ms": first["server_cpu_ms"],
                "first_browser_cpu_ms": first["browser_cpu_ms"],
                "fresh_server_cpu_ms": _median(v["server_cpu_ms"] for v in fresh),
                "fresh_browser_cpu_ms": _median(v["browser_cpu_ms"] for v in fresh),
                "load_avg_1m": [v["load_avg_1m"] for v in visits[title]],
            }
            result["pages"].append(entry)
        result["rss_mb"] = round(rss_mb(pid), 1)
        result["peak_rss_mb"] = round(peak_rss_mb(pid), 1)
        browser.close()
    return result


def store_summary(store: Store) -> dict[str, Any]:
    summary = {}
    for name in sorted(store.datasets):
        files = store.files(name)
        if files:
            rows = int(store.query(f'SELECT count(*) AS n FROM "{name}_history"' if
                                   store.dataset(name).snapshot_of else
                                   f'SELECT count(*) AS n FROM "{name}"')["n"].iloc[0])
            summary[name] = {"files": len(files), "rows": rows,
                             "mb": round(sum(os.path.getsize(str(f)) for f in files) / 2**20, 1)}
    return summary


@contextmanager
def _folder(workdir: Path | None, label: str, *, existing: bool = False) -> Iterator[str]:
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="orgscope-render-") as folder:
            yield folder
        return
    kept = workdir / label.replace(" ", "-")
    if not existing:
        kept.mkdir(parents=True, exist_ok=False)
    elif not (kept / "config.toml").is_file():
        raise SystemExit(f"--reuse: {kept} holds no config.toml of an earlier --workdir run")
    yield str(kept)


def reuse(folder: Path, label: str) -> Org:
    """The organization an earlier ``--workdir`` run built in ``folder``."""
    config_path = folder / "config.toml"
    config = wiring.load(config_path)
    store = Store(str(folder / "data"), all_datasets())
    label_text = "reference" if label == "reference" else f"{label} accounts"
    return Org(label_text, config_path, store, len(config.accounts))


def markdown(results: dict[str, Any]) -> str:
    """The summary tables docs/performance.md shows, from a results JSON."""
    lines = []
    for org in results["organizations"]:
        floor = org["floor"]
        lines += [f"**{org['organization']}** ({org['accounts']} accounts; store built in "
                  f"{org['build_s']} s; dashboard peak RSS {org['peak_rss_mb']:,.0f} MiB; "
                  f"floor page {floor['first_load_ms']} ms first, {floor['fresh_median_ms']} "
                  "ms later):", "",
                  "| page | first load x floor | after a new cycle x floor | first ms | "
                  "after a new cycle ms (median) | server CPU ms first / later | charts | "
                  "points sent |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for page in org["pages"]:
            lines.append(
                f"| {page['page']} | {page['first_x_floor'] or 'timeout'} | "
                f"{page['fresh_x_floor'] or 'timeout'} | {page['first_load_ms'] or 'timeout'} | "
                f"{page['fresh_median_ms'] or 'timeout'} | "
                f"{page['first_server_cpu_ms']} / {page['fresh_server_cpu_ms']} | "
                f"{page['charts']} | {page['points']:,} |")
        loads = [v for page in org["pages"] for v in page["load_avg_1m"]]
        lines += ["", f"Machine load (1-minute average) during these loads: "
                      f"{min(loads):.1f} to {max(loads):.1f} on {results['machine']['cpus']} "
                      "cores.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orgs", default="reference,100",
                        help="comma-separated: 'reference' and/or a number of accounts")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--span-hours", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=3,
                        help="visits per page after a new cycle has landed")
    parser.add_argument("--spacing", type=float, default=SPACING_S,
                        help="seconds at least between two visits of a page")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--markdown", action="store_true",
                        help="only print the summary tables of an existing --out file")
    parser.add_argument("--workdir", type=Path,
                        help="build the stores here and keep them (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true",
                        help="measure the stores an earlier --workdir run kept (their data "
                             "ages: use it to compare changes, not for published numbers)")
    args = parser.parse_args()
    if args.reuse and args.workdir is None:
        parser.error("--reuse needs --workdir")
    if args.markdown:
        print(markdown(json.loads(args.out.read_text(encoding="utf-8"))))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("orgscope", "collectors", "dashboard", "sim"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    results: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": len(os.sched_getaffinity(0)),
                    "python": platform.python_version()},
        "days": args.days, "span_hours": args.span_hours, "repeat": args.repeat,
        "stable_ms": STABLE_MS, "poll_ms": POLL_MS, "spacing_s": args.spacing,
        "organizations": [],
    }
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    for label in args.orgs.split(","):
        with _folder(args.workdir, label, existing=args.reuse) as folder:
            clock = time.monotonic()
            if args.reuse:
                org = reuse(Path(folder), label)
            else:
                org = build_reference(Path(folder), now, args.days, args.span_hours) \
                    if label == "reference" else \
                    build_scaled(Path(folder), now, args.days, int(label), args.span_hours)
                org.store.compact_all(before=now.date())
            built = time.monotonic() - clock
            log.info("%s: store built in %.0f s", org.label, built)
            measured = measure(org, args.repeat, args.spacing)
            measured["store"] = store_summary(org.store)
            measured["build_s"] = round(built)
            results["organizations"].append(measured)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    args.out.with_suffix(".md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))


if __name__ == "__main__":
    main()
