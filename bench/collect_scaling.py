"""One collection cycle by orgscope versus the naive monitor, at 12, 100 and 300 accounts.

For each size, a generated organization (testkit/generated_org.py: N accounts, R rules each on
the default bus, AWS/Events history for the last few minutes) is started on moto's server in
this process. Then, each in its own subprocess (so that its peak memory is its own):

* **orgscope**: one full cycle through the real Runner and SessionFactory: the inventory
  (ListEventBuses, ListRules, ListTargetsByRule, ListTagsForResource in every account, 8
  threads), then the metrics collector (GetMetricData, up to 500 series a call) over the
  window, both written to a Parquet store in a temporary folder.
* **naive**: what the source article's monitor does, extended to every metric of every rule:
  account after account, serially, AssumeRole, list the rules, then one GetMetricStatistics
  call per metric per rule (and per account-level PutEvents metric) over the same window.

Both read the same window (``--window-minutes`` ending at the last whole period, at
``--period``), and the totals each found are checked against what the simulator wrote.
Measured per approach: wall time of the cycle (process start and imports excluded, reported
apart), API calls by operation, metrics requested, peak RSS (``resource.getrusage`` ru_maxrss
of the subprocess, which includes the interpreter and imports; the RSS after imports is
reported too), and the API dollars of one cycle. For orgscope also the ratio of its
GetMetricData calls to the minimum, ceil(series / 500) per account and region.

    nice -n 10 .venv/bin/python bench/collect_scaling.py                  # 12, 100, 300
    .venv/bin/python bench/collect_scaling.py --sizes 12 --rules 20        # a quick look
    .venv/bin/python bench/collect_scaling.py --sizes 12,100,300 --rules-for 300=10

Results: bench/results/collect_scaling.json (``--out``); a Markdown table is printed, and
docs/performance.md carries it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_OUT = ROOT / "bench" / "results" / "collect_scaling.json"
#: CloudWatch list prices (us-east-1): GetMetricData per metric requested, the rest per request.
GMD_USD_PER_1000_METRICS = 0.01
GMS_USD_PER_1000_REQUESTS = 0.01
MAX_QUERIES_PER_CALL = 500
BASE_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1"}


def rss_mib() -> float:
    """Peak resident set size of this process image so far, in MiB: VmHWM of
    /proc/self/status where there is one, else ru_maxrss.

    Linux carries ru_maxrss across execve (the forked copy of the parent, here the process
    holding moto's whole state, counts), so a child's ru_maxrss would report the parent's size;
    VmHWM is the same high-water mark kept for the new image only.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return ru_maxrss_mib()


def ru_maxrss_mib() -> float:
    """resource.getrusage ru_maxrss in MiB (KiB on Linux): kept in the results beside
    :func:`rss_mib` to show the inherited value."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def dollars(calls: Mapping[str, int], metrics_requested_gmd: int) -> float:
    """CloudWatch API dollars of one cycle: GetMetricData per metric requested,
    GetMetricStatistics (and ListMetrics) per request; STS, EventBridge and SQS reads are free."""
    per_request = calls.get("cloudwatch:GetMetricStatistics", 0) + \
        calls.get("cloudwatch:ListMetrics", 0)
    return round(metrics_requested_gmd / 1000 * GMD_USD_PER_1000_METRICS
                 + per_request / 1000 * GMS_USD_PER_1000_REQUESTS, 6)


class Calls:
    """API calls by "service:Operation" and the metrics they requested (thread-safe)."""

    def __init__(self) -> None:
        self.by_operation: Counter[str] = Counter()
        self.metrics_requested = 0
        self._lock = threading.Lock()

    def __call__(self, service: str, operation: str, params: dict[str, Any]) -> None:
        with self._lock:
            self.by_operation[f"{service}:{operation}"] += 1
            if operation == "GetMetricData":
                self.metrics_requested += len(params.get("MetricDataQueries", []))
            elif operation == "GetMetricStatistics":
                self.metrics_requested += 1

    def register(self, client: Any, service: str) -> Any:
        def _count(model: Any, params: dict[str, Any], **_: Any) -> None:
            self(service, model.name, params)

        client.meta.events.register("before-parameter-build", _count)
        return client


# --- child: orgscope ---------------------------------------------------------------------------


def child_orgscope(job: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    from collectors.inventory import INVENTORY
    from collectors.metrics import METRICS, build_series
    from orgscope.aws import SessionFactory
    from orgscope.datasets import AVERAGE_METRICS, RULE_SIGNALS, RULES, all_datasets
    from orgscope.plugins import parse_config
    from orgscope.runner import Runner, count_call
    from orgscope.store import Store

    import_s = time.monotonic() - started
    rss_after_imports = rss_mib()
    config = parse_config(job["config"], job["config_source"])
    calls = Calls()

    def hook(service: str, operation: str, params: dict[str, Any]) -> None:
        count_call(service, operation, params)
        calls(service, operation, params)

    factory = SessionFactory(config.aws, call_hook=hook)
    store = Store(config.store.path, all_datasets())
    runner = Runner(config, factory, store)
    now = datetime.fromisoformat(job["now"])
    clock = time.monotonic()
    inventory = runner.run_cycle([INVENTORY], now=now)
    inventory_s = time.monotonic() - clock
    metrics = runner.run_cycle([METRICS], now=now)
    wall_s = time.monotonic() - clock
    first_calls = Counter(calls.by_operation)
    first_metrics = calls.metrics_requested
    steady = steady_state(runner, METRICS, now, len(config.accounts), inventory)
    rules = [run.frames.get(RULES.name) for run in inventory.runs]
    frames = [f for f in rules if f is not None and len(f)]
    import pandas as pd

    rules_frame = pd.concat(frames, ignore_index=True) if frames else RULES.empty_frame()
    per_account: list[dict[str, Any]] = []
    for run in metrics.runs:
        series = len(build_series(rules_frame, run.account.id, run.region))
        per_account.append({
            "account_id": run.account.id, "region": run.region, "status": run.status,
            "series": series,
            "gmd_calls": run.calls.by_operation.get("cloudwatch:GetMetricData", 0),
            "min_gmd_calls": math.ceil(series / MAX_QUERIES_PER_CALL),
        })
    totals: dict[str, float] = defaultdict(float)
    for run in metrics.runs:
        frame = run.frames.get("event_metrics")
        if frame is not None and len(frame):
            frame = frame[~frame["metric"].isin(AVERAGE_METRICS)]
            # the failure signals across all rules sum what the rules' own series hold
            frame = frame[~(frame["rule"].isna() & frame["metric"].isin(RULE_SIGNALS))]
            for metric, value in frame.groupby("metric")["value"].sum().items():
                totals[str(metric)] += float(value)
    gmd = sum(a["gmd_calls"] for a in per_account)
    minimum = sum(a["min_gmd_calls"] for a in per_account)
    ratios = [a["gmd_calls"] / a["min_gmd_calls"] for a in per_account if a["min_gmd_calls"]]
    failed = [f"{r.collector} {r.account.id}: {r.error}" for r in inventory.runs + metrics.runs
              if r.status != "ok"]
    return {
        "wall_s": round(wall_s, 2),
        "inventory_s": round(inventory_s, 2),
        "metrics_s": round(wall_s - inventory_s, 2),
        "import_s": round(import_s, 2),
        "api_calls": sum(first_calls.values()),
        "api_calls_by_operation": dict(sorted(first_calls.items())),
        "metrics_requested": first_metrics,
        "usd_per_cycle": dollars(first_calls, first_metrics),
        "rss_after_imports_mib": rss_after_imports,
        "peak_rss_mib": rss_mib(),
        "ru_maxrss_mib": ru_maxrss_mib(),
        "runs": len(inventory.runs) + len(metrics.runs),
        "failed_runs": failed[:10],
        "failed_count": len(failed),
        "series": sum(a["series"] for a in per_account),
        "gmd_calls": gmd,
        "min_gmd_calls": minimum,
        "gmd_ratio_to_min": round(gmd / minimum, 3) if minimum else None,
        "gmd_ratio_max_per_account": round(max(ratios), 3) if ratios else None,
        "rows_stored": sum(run.rows for run in metrics.runs),
        "totals": dict(totals),
        "steady": steady,
    }


def _cycle_calls(cycle: Any) -> dict[str, Any]:
    """API calls and metrics requested of one cycle's runs, with the tiers they read."""
    by_operation: Counter[str] = Counter()
    for run in cycle.runs:
        by_operation.update(run.calls.by_operation)
    return {"api_calls": sum(by_operation.values()),
            "api_calls_by_operation": dict(sorted(by_operation.items())),
            "metrics_requested": sum(run.calls.metrics_requested for run in cycle.runs),
            "tiers": sorted({str(run.tier) for run in cycle.runs}),
            "failed": sum(run.status != "ok" for run in cycle.runs)}


def steady_state(runner: Any, metrics: Any, now: datetime, accounts: int,
                 inventory: Any) -> dict[str, Any]:
    """What a 5-minute cycle costs once the first one has read: the metrics collector's runs
    5 and 10 minutes on (one of the two is a fast run: at most one crosses an hour), and its
    run just past the next hour (the full tier); with a change feed the inventory runs once an
    hour (``[collectors.inventory] reconcile_interval``) and its calls are spread over the
    hour's 12 cycles. Per account: API calls of each kind of cycle, and the hour's average."""
    fast: dict[str, Any] | None = None
    last = now
    for minutes in (5, 10):
        last = now + timedelta(minutes=minutes)
        cycle = _cycle_calls(runner.run_cycle([metrics], now=last))
        if cycle["tiers"] == ["fast"]:
            fast = cycle
            break
    hour = last.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1, minutes=1)
    full = _cycle_calls(runner.run_cycle([metrics], now=hour))
    assert full["tiers"] == ["full"], f"the run past the hour read {full['tiers']}"
    inventory_calls = _cycle_calls(inventory)
    assert fast is not None, "neither metrics run 5 or 10 minutes on read the fast tier"
    per_hour = (inventory_calls["api_calls"] + full["api_calls"] + 11 * fast["api_calls"])
    metrics_hour = full["metrics_requested"] + 11 * fast["metrics_requested"]
    return {
        "fast_cycle": fast, "full_cycle": full,
        "fast_calls_per_account": round(fast["api_calls"] / accounts, 2),
        "full_calls_per_account": round(full["api_calls"] / accounts, 2),
        "inventory_calls_per_account": round(inventory_calls["api_calls"] / accounts, 2),
        "calls_per_account_per_cycle_hour_average": round(per_hour / 12 / accounts, 2),
        "metrics_requested_per_hour": metrics_hour,
    }


# --- child: naive --------------------------------------------------------------------------


def child_naive(job: dict[str, Any]) -> dict[str, Any]:
    """The article's monitor, extended to every metric of every rule: serial, one
    GetMetricStatistics call per metric. Only boto3 is imported (no pandas), as a Lambda
    function would."""
    started = time.monotonic()
    import boto3
    from botocore.config import Config as BotoConfig

    import_s = time.monotonic() - started
    rss_after_imports = rss_mib()
    endpoint, region = job["endpoint"], job["region"]
    start = datetime.fromisoformat(job["window_start"])
    end = datetime.fromisoformat(job["window_end"])
    period = int(job["period_s"])
    calls = Calls()
    boto_config = BotoConfig(retries={"mode": "standard", "max_attempts": 5})
    base = boto3.Session(region_name=region)
    sts = calls.register(base.client("sts", endpoint_url=endpoint, config=boto_config), "sts")
    values: dict[tuple[str, str, str, str], list[tuple[datetime, float]]] = {}
    clock = time.monotonic()
    for account_id in job["account_ids"]:
        issued = sts.assume_role(RoleArn=f"arn:aws:iam::{account_id}:role/{job['role']}",
                                 RoleSessionName="naive-monitor")["Credentials"]
        keys = {"aws_access_key_id": issued["AccessKeyId"],
                "aws_secret_access_key": issued["SecretAccessKey"],
                "aws_session_token": issued["SessionToken"]}
        events = calls.register(base.client("events", endpoint_url=endpoint,
                                            config=boto_config, **keys), "events")
        cloudwatch = calls.register(base.client("cloudwatch", endpoint_url=endpoint,
                                                config=boto_config, **keys), "cloudwatch")
        owners: list[tuple[str, str]] = []
        for bus in events.list_event_buses().get("EventBuses", []):
            params: dict[str, Any] = {"EventBusName": bus["Name"]}
            while True:
                page = events.list_rules(**params)
                owners.extend((bus["Name"], r["Name"]) for r in page.get("Rules", []))
                if not page.get("NextToken"):
                    break
                params["NextToken"] = page["NextToken"]
        series: list[tuple[str, str, str, list[dict[str, str]]]] = []
        for bus, rule in owners:
            dims = [{"Name": "RuleName", "Value": rule}] if bus == "default" else \
                [{"Name": "EventBusName", "Value": bus}, {"Name": "RuleName", "Value": rule}]
            series.extend((bus, rule, metric, dims) for metric in job["rule_metrics"])
        series.extend(("", "", metric, []) for metric in job["account_metrics"])
        for bus, rule, metric, dims in series:
            stat = "Average" if metric in job["average_metrics"] else "Sum"
            answer = cloudwatch.get_metric_statistics(
                Namespace="AWS/Events", MetricName=metric, Dimensions=dims,
                StartTime=start, EndTime=end, Period=period, Statistics=[stat])
            values[(account_id, bus, rule, metric)] = [
                (p["Timestamp"], float(p[stat])) for p in answer.get("Datapoints", [])]
    wall_s = time.monotonic() - clock
    totals: dict[str, float] = defaultdict(float)
    for (_, _, _, metric), points in values.items():
        if metric not in job["average_metrics"]:
            totals[metric] += sum(v for _, v in points)
    return {
        "wall_s": round(wall_s, 2),
        "import_s": round(import_s, 2),
        "api_calls": sum(calls.by_operation.values()),
        "api_calls_by_operation": dict(sorted(calls.by_operation.items())),
        "metrics_requested": calls.metrics_requested,
        "usd_per_cycle": dollars(calls.by_operation, 0),
        "rss_after_imports_mib": rss_after_imports,
        "peak_rss_mib": rss_mib(),
        "ru_maxrss_mib": ru_maxrss_mib(),
        "series": len(values),
        "totals": dict(totals),
    }


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "orgscope": child_orgscope, "naive": child_naive}


def run_child(kind: str, job: dict[str, Any], folder: Path) -> dict[str, Any]:
    path = folder / f"{kind}-job.json"
    path.write_text(json.dumps(job))
    env = {**os.environ, **BASE_ENV}
    env.pop("AWS_ENDPOINT_URL", None)
    clock = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--job", str(path)],
        capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} child failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = round(time.monotonic() - clock, 2)
    return result


# --- parent --------------------------------------------------------------------------------


def compare_totals(truth: Mapping[str, float], found: Mapping[str, float]) -> dict[str, Any]:
    """Whether a reader found every count the simulator wrote in the window."""
    names = sorted(set(truth) | set(found))
    off = {n: {"written": truth.get(n, 0.0), "read": found.get(n, 0.0)} for n in names
           if abs(truth.get(n, 0.0) - found.get(n, 0.0)) > 1e-6}
    return {"match": not off, "mismatches": off}


def run_size(accounts: int, rules: int, args: argparse.Namespace, folder: Path
             ) -> dict[str, Any]:
    from collectors.metrics import MetricsCollectorConfig, read_window
    from orgscope.datasets import ACCOUNT_METRICS, AVERAGE_METRICS, RULE_METRICS
    from orgscope.plugins import parse_config
    from sim.admin import ADMIN_ROLE
    from testkit.generated_org import GeneratedOrg, GeneratedSpec, generated_config_data

    load = list(os.getloadavg())
    # the window starts at most one period before `window-minutes` ago
    spec = GeneratedSpec(accounts, rules, seed=args.seed,
                         history_minutes=args.window_minutes + args.period // 60)
    store = folder / f"store-{accounts}"
    base = tomllib.loads((ROOT / "config.toml").read_text())
    data = generated_config_data(spec, base, str(store), backfill_minutes=args.window_minutes)
    data["collectors"]["metrics"]["period_s"] = args.period
    data["aws"]["max_workers"] = args.workers
    config = parse_config(data, str(folder / "config.toml"))
    org = GeneratedOrg(config, spec)
    print(f"[{accounts} accounts x {rules} rules] building ...", file=sys.stderr, flush=True)
    endpoint = org.start()
    try:
        assert org.history_end is not None
        now = org.history_end
        data["aws"]["endpoint_url"] = endpoint
        settings = MetricsCollectorConfig(period_s=args.period,
                                          backfill=timedelta(minutes=args.window_minutes))
        window = read_window(now, None, settings)
        assert window is not None
        truth = org.totals(window.start, window.end)
        common = {"now": now.isoformat(), "window_start": window.start.isoformat(),
                  "window_end": window.end.isoformat(), "period_s": args.period,
                  "endpoint": endpoint, "region": config.aws.regions[0]}
        print(f"[{accounts}] built in {org.timings['build_s']:.0f}s + history "
              f"{org.timings['history_s']:.0f}s; orgscope cycle ...", file=sys.stderr,
              flush=True)
        ours = run_child("orgscope", {**common, "config": data,
                                      "config_source": str(folder / "config.toml")}, folder)
        print(f"[{accounts}] orgscope {ours['wall_s']}s; naive cycle ...", file=sys.stderr,
              flush=True)
        naive = run_child("naive", {
            **common, "account_ids": [a.id for a in config.accounts], "role": ADMIN_ROLE,
            "rule_metrics": list(RULE_METRICS), "account_metrics": list(ACCOUNT_METRICS),
            "average_metrics": sorted(AVERAGE_METRICS)}, folder)
        print(f"[{accounts}] naive {naive['wall_s']}s", file=sys.stderr, flush=True)
    finally:
        org.stop()
    return {
        "accounts": accounts,
        "load_average_at_start": load,
        "rules_per_account": rules,
        "rules": accounts * rules,
        "window": {"start": window.start.isoformat(), "end": window.end.isoformat(),
                   "minutes": args.window_minutes, "period_s": args.period},
        "simulator": {"build_s": round(org.timings["build_s"], 1),
                      "history_s": round(org.timings["history_s"], 1),
                      "history_minutes": spec.history_minutes,
                      "datapoints_written": sum(len(d) for d in org.written.values())},
        "orgscope": ours,
        "naive": naive,
        "check": {"orgscope": compare_totals(truth, ours["totals"]),
                  "naive": compare_totals(truth, naive["totals"])},
        "speedup": round(naive["wall_s"] / ours["wall_s"], 2) if ours["wall_s"] else None,
    }


#: Cycles in 30 days at the default 5-minute interval.
CYCLES_PER_MONTH = 30 * 24 * 12


def markdown(results: Mapping[str, Any]) -> str:
    """The docs/performance.md tables of one run: the comparison, the steady state, then
    calls by kind."""
    from orgscope.datasets import ACCOUNT_METRICS, RULE_METRICS

    lines = [
        "| accounts | rules | series | approach | wall time | API calls | GetMetricData / "
        "GetMetricStatistics calls | metrics requested | $ per cycle | $ per 30 days at 5 min "
        "| peak RSS (after imports) | GetMetricData calls / minimum |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size in results["sizes"]:
        ours, naive = size["orgscope"], size["naive"]
        head = f"| {size['accounts']} | {size['accounts']} x {size['rules_per_account']} " \
               f"| {ours['series']:,} "
        gmd = ours["api_calls_by_operation"].get("cloudwatch:GetMetricData", 0)
        gms = naive["api_calls_by_operation"].get("cloudwatch:GetMetricStatistics", 0)
        lines.append(
            f"{head}| orgscope | **{ours['wall_s']:.1f} s** (inventory {ours['inventory_s']:.1f}"
            f" + metrics {ours['metrics_s']:.1f}) | {ours['api_calls']:,} | {gmd:,} "
            f"| {ours['metrics_requested']:,} | ${ours['usd_per_cycle']:.4f} "
            f"| ${ours['usd_per_cycle'] * CYCLES_PER_MONTH:,.2f} "
            f"| {ours['peak_rss_mib']:.0f} MiB ({ours['rss_after_imports_mib']:.0f}) "
            f"| {ours['gmd_calls']:,} / {ours['min_gmd_calls']:,} = "
            f"{ours['gmd_ratio_to_min']} |")
        lines.append(
            f"{head}| naive | **{naive['wall_s']:.1f} s** | {naive['api_calls']:,} | {gms:,} "
            f"| {naive['metrics_requested']:,} | ${naive['usd_per_cycle']:.4f} "
            f"| ${naive['usd_per_cycle'] * CYCLES_PER_MONTH:,.2f} "
            f"| {naive['peak_rss_mib']:.0f} MiB ({naive['rss_after_imports_mib']:.0f}) | - |")
    lines += ["", "Steady state (orgscope; inventory hourly with a change feed, metrics in tiers):",
              "", "| accounts | calls / account, fast cycle | full cycle (hourly) | inventory "
              "(hourly) | **hour's average per 5-min cycle** | metrics requested / month, tiers "
              "| every series every 5 min | ratio |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for size in results["sizes"]:
        steady = size["orgscope"].get("steady")
        if not steady:
            continue
        tiered = steady["metrics_requested_per_hour"] * 24 * 30
        # what orgscope read before tiers: every rule's 12 metrics and the account's 5
        flat = (size["rules"] * len(RULE_METRICS) + size["accounts"] * len(ACCOUNT_METRICS)) \
            * CYCLES_PER_MONTH
        lines.append(
            f"| {size['accounts']} | {steady['fast_calls_per_account']} "
            f"| {steady['full_calls_per_account']} | {steady['inventory_calls_per_account']} "
            f"| **{steady['calls_per_account_per_cycle_hour_average']}** | {tiered:,} "
            f"(${tiered / 1000 * GMD_USD_PER_1000_METRICS:,.2f}) | {flat:,} "
            f"(${flat / 1000 * GMD_USD_PER_1000_METRICS:,.2f}) | {tiered / flat:.3f} |")
    operations = sorted({op for size in results["sizes"] for kind in ("orgscope", "naive")
                         for op in size[kind]["api_calls_by_operation"]})
    lines += ["", "| accounts | approach | " + " | ".join(f"`{op}`" for op in operations) + " |",
              "|---|---|" + "---|" * len(operations)]
    for size in results["sizes"]:
        for kind in ("orgscope", "naive"):
            calls = size[kind]["api_calls_by_operation"]
            lines.append(f"| {size['accounts']} | {kind} | "
                         + " | ".join(f"{calls.get(op, 0):,}" for op in operations) + " |")
    return "\n".join(lines)


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"--sizes {text!r}: a comma-separated list of account counts, "
                         "such as 12,100,300") from None
    if not sizes or any(s < 2 for s in sizes):
        raise SystemExit(f"--sizes {text!r}: every size must be 2 accounts or more")
    return sizes


def parse_rules_for(items: list[str]) -> dict[int, int]:
    found = {}
    for item in items:
        size, _, rules = item.partition("=")
        if not (size.isdigit() and rules.isdigit() and int(rules) >= 1):
            raise SystemExit(f"--rules-for {item!r}: must be ACCOUNTS=RULES such as 300=10")
        found[int(size)] = int(rules)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="12,100,300", help="account counts (default "
                        "12,100,300)")
    parser.add_argument("--rules", type=int, default=10,
                        help="rules per account (default 10: five times the reference "
                             "organization's density, 125 series per account)")
    parser.add_argument("--rules-for", action="append", default=[], metavar="N=R",
                        help="rules per account for one size, e.g. 300=10 (repeatable)")
    parser.add_argument("--window-minutes", type=int, default=15,
                        help="window both approaches read (default 15: what a steady-state "
                             "metrics run reads, 5 minutes since the last one plus the "
                             "10-minute overlap)")
    parser.add_argument("--period", type=int, default=300, choices=(60, 300),
                        help="period in seconds (default 300)")
    parser.add_argument("--workers", type=int, default=8, help="orgscope aws.max_workers")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--job", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--markdown", type=Path, metavar="JSON",
                        help="print the tables of an earlier run's JSON and exit")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())))
        return
    if args.child:
        result = CHILDREN[args.child](json.loads(args.job.read_text()))
        print(json.dumps(result))
        return
    for key, value in BASE_ENV.items():
        os.environ.setdefault(key, value)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    sizes = parse_sizes(args.sizes)
    rules_for = parse_rules_for(args.rules_for)
    import boto3
    import moto

    results: dict[str, Any] = {
        "bench": "collect_scaling",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "load_average_at_start": list(os.getloadavg()),
                    "python": platform.python_version(), "platform": platform.platform(),
                    "moto": moto.__version__, "boto3": boto3.__version__},
        "settings": {"window_minutes": args.window_minutes, "period_s": args.period,
                     "rules_per_account_default": args.rules, "rules_for": rules_for,
                     "orgscope_max_workers": args.workers, "seed": args.seed},
        "memory": "peak RSS of each approach's own subprocess: VmHWM from /proc/self/status "
                  "(the high-water mark ru_maxrss reports, without the parent's size that "
                  "Linux carries across exec: ru_maxrss_mib shows it); interpreter and imports "
                  "included, RSS after imports given apart",
        "prices": {"GetMetricData": "$0.01 per 1,000 metrics requested",
                   "GetMetricStatistics": "$0.01 per 1,000 requests"},
        "sizes": [],
    }
    clock = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="collect-scaling-") as tmp:
        for accounts in sizes:
            size = run_size(accounts, rules_for.get(accounts, args.rules), args, Path(tmp))
            results["sizes"].append(size)
            results["total_s"] = round(time.monotonic() - clock, 1)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2) + "\n")
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["machine"]["load_average_at_end"] = list(os.getloadavg())
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    for size in results["sizes"]:
        for name, check in size["check"].items():
            if not check["match"]:
                print(f"{size['accounts']} accounts: {name} did not read what was written: "
                      f"{check['mismatches']}", file=sys.stderr)


if __name__ == "__main__":
    main()
