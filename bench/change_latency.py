"""Seconds from DisableRule to the Slack message that names who did it, through change events.

The QuickGrocer simulator starts in this process with the change-event rules and queue
(sim/build.py); orgscope runs one full inventory and metrics cycle and the steps, then starts
the change feed exactly as ``orgscope serve`` does (orgscope/change_feed.py, a long poll of
``[changes] wait_s`` = 20 s in its own thread). Each trial disables one rule through the API
with the simulator's admin session (as a person or a fault would), waits for the local Slack
sink (sim/slack_sink.py) to receive the rule_disabled message containing "disabled by", then
enables the rule again and waits for the RESOLVED message before the next trial. Measured per
trial: seconds from the DisableRule call to the message, and from the EnableRule call to the
resolution; no inventory or metrics cycle runs meanwhile.

    .venv/bin/python bench/change_latency.py               # 5 trials
    .venv/bin/python bench/change_latency.py --trials 3

Results: bench/results/change_latency.json (``--out``) and a line per trial; docs/changes.md
carries them. The simulator's moto delivers EventBridge targets synchronously, so this is
orgscope's part of the latency (poll, re-read, store, verdicts, alerts, Slack) plus moto's,
not AWS's own delivery delay of CloudTrail events (documented by AWS as best effort, typically
seconds to a few minutes for "AWS API Call via CloudTrail" events).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orgscope import plugins, wiring  # noqa: E402
from orgscope.change_feed import ChangeFeed, start_feed  # noqa: E402
from orgscope.config import Config  # noqa: E402
from orgscope.runner import Runner  # noqa: E402
from sim.org import SimulatedOrg  # noqa: E402
from sim.slack_sink import SlackSink  # noqa: E402

ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
       "AWS_DEFAULT_REGION": "us-east-1"}
TIMEOUT_S = 120.0


def _wait(predicate: Any, timeout: float = TIMEOUT_S) -> float | None:
    """Seconds until ``predicate()`` is true (polled every 50 ms), None after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    return None


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 2)


def _said(sink: SlackSink, *needles: str) -> bool:
    return any(all(n in json.dumps(r.payload) for n in needles) for r in sink.delivered())


def _collected(sim: SimulatedOrg, config: Config, endpoint: str) -> tuple[Runner, ChangeFeed]:
    """orgscope pointed at the simulator with its change queue: the build's own changes
    drained, one inventory and metrics cycle and the steps run; the feed not started yet."""
    config = config.model_copy(update={
        "aws": config.aws.model_copy(update={"endpoint_url": endpoint}),
        "changes": config.changes.model_copy(
            update={"queue_url": sim.deployment.change_queue_url})})
    runner = Runner(config, wiring.session_factory(config), wiring.open_store(config))
    feed = ChangeFeed(runner, plugins.reread, plugins.run_steps)
    feed.check()
    feed.wait_s = 1
    while feed.poll_once().received:  # the build's own forwarder changes
        pass
    feed.wait_s = config.changes.wait_s
    sim.tick(datetime.now(UTC) + timedelta(minutes=1))
    for name in ("inventory", "metrics"):
        runner.run_cycle([plugins.collector(name)])
    plugins.run_steps(runner, ["inventory"])
    return runner, feed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "change_latency.json"))
    args = parser.parse_args()
    os.environ.update(ENV)
    os.environ.pop("ORGSCOPE_EXTERNAL_ID", None)
    folder = Path(tempfile.mkdtemp(prefix="orgscope-change-latency-"))
    data = tomllib.loads((ROOT / "config.toml").read_text())
    data["store"] = {"path": str(folder / "store")}
    config = plugins.parse_config(data, str(ROOT / "config.toml"))
    sink = SlackSink()
    sink.start()
    for name in {config.slack.default_webhook_env,
                 *(r.webhook_env for r in config.slack.routes if r.webhook_env)}:
        os.environ[name] = sink.webhook(name)
    sim = SimulatedOrg(config, history_hours=1, tick_s=3600, change_events=True)
    endpoint = sim.start()
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    stop = threading.Event()
    trials: list[dict[str, Any]] = []
    try:
        runner, feed = _collected(sim, config, endpoint)
        start_feed(feed, stop)
        keys = [k for k in sim.deployment.rules if k[1] == "default"][:args.trials]
        for account, bus, rule in keys:
            events = sim.admin.client(account, "events")
            events.disable_rule(Name=rule, EventBusName=bus)
            slack = _wait(lambda r=rule: _said(sink, "disabled by", r, "Rule disabled"))
            stored = runner.store.query(
                "SELECT received_at, event_time FROM rule_changes WHERE rule = ? "
                "AND event_name = 'DisableRule'", [rule])
            events.enable_rule(Name=rule, EventBusName=bus)
            resolved = _wait(lambda r=rule: _said(sink, "RESOLVED", r))
            trials.append({"account": account, "rule": rule,
                           "disable_to_slack_s": _rounded(slack),
                           "enable_to_resolved_s": _rounded(resolved),
                           "changes_rows": len(stored)})
            print(f"{account} {rule}: DisableRule -> Slack 'disabled by' in "
                  f"{_rounded(slack)} s; EnableRule -> RESOLVED in {_rounded(resolved)} s",
                  flush=True)
    finally:
        stop.set()
        sim.stop()
        sink.stop()
    seconds = [t["disable_to_slack_s"] for t in trials if t["disable_to_slack_s"] is not None]
    result = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
              "wait_s": config.changes.wait_s, "trials": trials,
              "median_s": statistics.median(seconds) if seconds else None,
              "max_s": max(seconds) if seconds else None,
              "timeouts": len(trials) - len(seconds)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "trials"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
