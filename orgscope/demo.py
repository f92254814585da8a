"""`orgscope demo` (what `make demo` runs): simulator, scheduler and dashboard, together.

The simulated organization runs in this process on a free loopback port; the scheduler collects
from it through boto3 exactly as it would from AWS (the endpoint and the fake credentials are
the only difference); the dashboard runs as a child process on the same store. Ctrl-C (or
SIGTERM, at any moment, start-up included) stops all three and exits with status 0. Slack
messages go to a local webhook sink (sim/slack_sink.py, its page printed at start) unless the
webhook variables already name a real webhook.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import threading
from datetime import timedelta
from pathlib import Path

from collectors.metrics import MetricsCollectorConfig
from orgscope import plugins, wiring
from orgscope.config import Config
from orgscope.config_toml import write_config
from orgscope.processes import start_dashboard, stop_children, stop_on_signals
from orgscope.runner import Runner
from orgscope.scheduler import serve
from sim.slack_sink import SlackSink

log = logging.getLogger(__name__)

DEMO_STORE = "data-demo"
DEMO_CONFIG_NAME = "demo-config.toml"
DEMO_INTERVAL = timedelta(minutes=1)
DEMO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
#: The demo's metrics full tier: often enough that a sitting sees both tiers (docs/performance.md).
DEMO_FULL_INTERVAL = timedelta(minutes=15)
DEFAULT_SCENARIO = Path(__file__).resolve().parent.parent / "sim" / "scenarios" / "demo.toml"


def demo_config(config: Config, endpoint_url: str, history_hours: int,
                change_queue_url: str = "", export_uri: str = "") -> Config:
    """The config the demo collects with: the simulator's endpoint, its own store, the
    per-account collectors at most a minute apart so the screen moves while you watch,
    auto-heal on (not dry-run), the simulator's change queue (``change_queue_url``, when
    it has one: a disabled rule is seen in seconds, docs/changes.md) and its cost data
    export (``export_uri``, when it writes one: the Cost page's resource lines)."""
    store = config.store.path
    if not os.environ.get(wiring.STORE_ENV) and store == "./data":
        store = str(Path(config.source).resolve().parent / DEMO_STORE)
    # Cost Explorer data changes a few times a day: the payer collector keeps its interval
    for name, collector in plugins.COLLECTORS.items():
        if collector.scope == "regional":
            config = config.with_collector(
                name, interval=min(config.collector(name).interval, DEMO_INTERVAL))
    # Back-fill no further than the simulator's history: older periods would be stored as
    # zeros and flatten the baselines the health model learns.
    metrics = config.collector_settings("metrics", MetricsCollectorConfig)
    # Both metric tiers within a sitting: a full read every quarter hour instead of hourly.
    config = config.with_collector("metrics",
                                   backfill=min(metrics.backfill, timedelta(hours=history_hours)),
                                   full_interval=min(metrics.full_interval, DEMO_FULL_INTERVAL))
    if export_uri:
        config = config.with_collector("cost", source="data_export", export_uri=export_uri)
    aws = config.aws.model_copy(update={"endpoint_url": endpoint_url})
    # Auto-heal for real (through the simulator's heal role): the scenario's disabled rule is
    # back ENABLED one or two inventories later; the opted-out one stays off (docs/heal.md).
    heal = config.heal.model_copy(update={"enabled": True, "dry_run": False})
    config = wiring.with_store(config, store)
    update: dict[str, object] = {"aws": aws, "heal": heal}
    if change_queue_url:
        update["changes"] = config.changes.model_copy(update={"queue_url": change_queue_url})
    return config.model_copy(update=update)


def demo_config_path(config: Config) -> Path:
    """Where the demo writes its effective config: in its store folder when that is local,
    else in a temporary folder."""
    base = wiring.store_base(config)
    if "://" not in base:
        return Path(base) / DEMO_CONFIG_NAME
    return Path(tempfile.mkdtemp(prefix="orgscope-demo-")) / DEMO_CONFIG_NAME


def start_slack_sink(config: Config) -> SlackSink:
    """Start the local Slack sink and point every webhook variable config.toml names (the
    default and each route's) at it, unless that variable already holds a real webhook."""
    sink = SlackSink()
    sink.start()
    names = [config.slack.default_webhook_env,
             *(route.webhook_env for route in config.slack.routes if route.webhook_env)]
    kept = []
    for name in dict.fromkeys(names):
        if os.environ.get(name):
            kept.append(name)
        else:
            os.environ[name] = sink.webhook(name)
    print(f"orgscope demo: Slack messages at {sink.url}/ (local webhook sink)")
    if kept:
        print(f"orgscope demo: ${', $'.join(kept)} already set: those messages go to the real "
              "webhook")
    return sink


def run_demo(config: Config, port: int | None = None, scenario: str | None = None,
             tick_s: float = 30.0, world: str = "quickgrocer") -> int:
    """The whole product on a simulated organization: ``world`` "quickgrocer" (the reference,
    with its fault timeline) or "harbor" (the second organization, steady traffic). Runs until
    SIGINT or SIGTERM, from the first moment on: the dashboard is stopped as soon as one
    arrives (not after the running collection), then the scheduler, the simulator and the
    Slack sink; returns 0."""
    with stop_on_signals() as stop:
        return _run_demo(config, stop, port, scenario, tick_s=tick_s, world=world)


def _run_demo(config: Config, stop: threading.Event, port: int | None, scenario: str | None,
              *, tick_s: float, world: str) -> int:
    from sim import SimulatedOrg
    from sim.shapes import HarborOrg

    os.environ.update(DEMO_CREDENTIALS)
    org: SimulatedOrg | HarborOrg
    if world == "harbor":
        org = HarborOrg(config)
        endpoint = org.start()
        org.start_traffic(tick_s)
    else:
        scenario_path = Path(scenario) if scenario else (
            DEFAULT_SCENARIO if DEFAULT_SCENARIO.exists() else None)
        org = SimulatedOrg(config, tick_s=tick_s, scenario=scenario_path, change_events=True,
                           data_export=True)
        endpoint = org.start()
        org.start_traffic()
    dashboard: subprocess.Popen[bytes] | None = None
    stopper: threading.Thread | None = None
    sink: SlackSink | None = None
    try:
        if stop.is_set():
            return 0
        queue_url = org.deployment.change_queue_url if isinstance(org, SimulatedOrg) else ""
        export = org.data_export.uri if isinstance(org, SimulatedOrg) and org.data_export \
            else ""
        config = demo_config(config, endpoint, org.history_hours, queue_url, export)
        url = f"http://localhost:{port or config.dashboard.port}"
        if config.dashboard.base_url == f"http://localhost:{config.dashboard.port}":
            # Slack links point at this dashboard, on whatever port it was given
            config = config.model_copy(update={
                "dashboard": config.dashboard.model_copy(update={"base_url": url})})
        # The dashboard reads the config the demo really collects with (one-minute intervals,
        # the simulator's endpoint, auto-heal on), so its intervals, bill and commands are true.
        config = wiring.with_store(config, wiring.store_base(config))  # absolute: the file moves
        config = write_config(config, demo_config_path(config))
        child_env = {**DEMO_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}
        dashboard = start_dashboard(config, port, child_env)
        # the dashboard goes at the signal, not after the scheduler's running cycle
        stopper = threading.Thread(target=_stop_when, args=(stop, dashboard), daemon=True,
                                   name="demo-dashboard-stop")
        stopper.start()
        print(f"orgscope demo: simulated organization at {endpoint}")
        print(f"orgscope demo: the config it collects with: {config.source}")
        print(f"orgscope demo: dashboard at {url} (store: {wiring.store_base(config)})")
        sink = start_slack_sink(config)
        print("orgscope demo: Ctrl-C stops everything", flush=True)

        runner = Runner(config, wiring.session_factory(config), wiring.open_store(config))
        if not stop.is_set():
            serve(runner, list(plugins.COLLECTORS.values()), plugins.run_steps, stop=stop,
                  reread=plugins.reread)
    finally:
        stop.set()
        if dashboard is not None:
            stop_children([dashboard])
        if stopper is not None:
            stopper.join(timeout=30)  # its log line comes before "demo stopped"
        org.stop()
        if sink is not None:
            sink.stop()
        log.info("demo stopped")
    return 0


def _stop_when(stop: threading.Event, dashboard: subprocess.Popen[bytes]) -> None:
    """Stop the dashboard as soon as ``stop`` is set: a collection still running must not keep
    its port (a supervisor restarting the demo would find it taken)."""
    stop.wait()
    stop_children([dashboard])
    log.info("dashboard stopped at the signal (the running collection finishes on its own)")
