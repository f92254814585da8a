"""Generated organizations: N accounts with R rules each, for scale benchmarks and tests.

The reference organization (:mod:`sim.org`) stays the default; this module builds a larger,
plainer one from the same building blocks, deterministic for a given seed:

* every account gets orgscope's read role exactly as :class:`sim.build.Builder` deploys it (so
  the IAM gate enforces the template), one SQS target queue and its dead-letter queue;
* every account gets ``rules_per_account`` rules on its default bus, their event patterns and
  descriptions cycled from the reference routes (:data:`sim.topology.ROUTES`), each delivering
  to the account's queue with a RetryPolicy and the DLQ, tagged like the reference rules;
* AWS/Events metric history for the last ``history_minutes``: per rule and minute, a seeded
  event count following the reference daily shape (:func:`sim.traffic.daily_shape`), written
  with AWS's names and dimensions (counts omitted at zero, latency as statistic sets), plus
  each account's PutEvents metrics; a few rules fail a share of their invocations.

moto's GetMetricData cost grows with queries x periods x datapoints in the window
(docs/simulator.md), so keep the history short: minutes, not hours.

    spec = GeneratedSpec(accounts=100, rules_per_account=20, history_minutes=35)
    config = parse_config(generated_config_data(spec, reference_data, "/tmp/store"))
    org = GeneratedOrg(config, spec)
    endpoint = org.start()
    ...
    org.stop()
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from orgscope.config import Config
from sim.admin import AdminSessions
from sim.build import Builder
from sim.emit import put_metrics
from sim.server import GatedMotoServer, ServedOrganization
from sim.state import Rule
from sim.topology import ROUTES
from sim.traffic import (
    ENTRIES_PER_CALL,
    count_datum,
    daily_shape,
    dimensions,
    latency_datum,
    minute_key,
)

log = logging.getLogger(__name__)

TARGET_QUEUE = "generated-target"
TARGET_DLQ = "generated-target-dlq"
#: Share of rules whose target fails some invocations (FailedInvocations, DLQ, retries).
FAILING_SHARE = 0.05
FAILING_RATE = 0.05
BASE_LATENCY_MS = 90.0


@dataclass(frozen=True)
class GeneratedSpec:
    """The size of a generated organization and how much metric history it has."""

    accounts: int
    rules_per_account: int
    seed: int = 7
    history_minutes: int = 35

    def __post_init__(self) -> None:
        if self.accounts < 1:
            raise ValueError(f"accounts must be 1 or more, not {self.accounts}")
        if not 1 <= self.rules_per_account <= 300:
            raise ValueError(f"rules_per_account must be 1-300 (EventBridge allows 300 rules "
                             f"per bus), not {self.rules_per_account}")
        if not 0 <= self.history_minutes <= 24 * 60:
            raise ValueError(f"history_minutes must be 0-1440, not {self.history_minutes}")


@dataclass(frozen=True)
class GeneratedRule:
    """One rule of a generated account: name, pattern and its traffic."""

    account: str
    name: str
    description: str
    pattern: dict[str, Any]
    peak_per_min: float
    failing: bool


# --- pure: accounts, rules, config -------------------------------------------------------------


def account_ids(count: int, seed: int) -> list[str]:
    """``count`` distinct 12-digit account ids, the same for the same seed."""
    rng = random.Random(f"accounts|{seed}")  # noqa: S311 - not crypto
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < count:
        candidate = f"{rng.randrange(10**11, 10**12):012d}"
        if candidate not in seen:
            seen.add(candidate)
            ids.append(candidate)
    return ids


def generated_accounts(spec: GeneratedSpec) -> list[dict[str, Any]]:
    """``[[accounts]]`` entries: the first is the management account, the second the central
    bus (and monitoring) account, the rest team accounts spread over ten teams."""
    entries = []
    for index, account_id in enumerate(account_ids(spec.accounts, spec.seed)):
        if index == 0:
            name, team, shared = "org-management", "platform", True
        elif index == 1:
            name, team, shared = "event-bus", "platform", True
        else:
            name, team, shared = f"team-account-{index:04d}", f"team-{index % 10:02d}", False
        entries.append({"id": account_id, "name": name, "team": team,
                        "environment": "production", "cost_center": f"CC-{9000 + index % 10}",
                        "shared": shared})
    return entries


def generated_config_data(spec: GeneratedSpec, base: Mapping[str, Any], store_path: str,
                          *, backfill_minutes: int | None = None) -> dict[str, Any]:
    """A config (as data, for :func:`orgscope.config.parse_config`) watching the generated
    accounts: ``base`` (config.toml's data) with its accounts, organization ids and store
    replaced; the metrics back-fill set to ``backfill_minutes`` when given."""
    accounts = generated_accounts(spec)
    data: dict[str, Any] = json.loads(json.dumps(
        {k: v for k, v in base.items() if k != "accounts"}, default=str))
    management = accounts[0]["id"]
    central = accounts[min(1, len(accounts) - 1)]["id"]
    data["organization"] = {**data["organization"], "name": f"Generated-{spec.accounts}",
                            "discovery": "config", "management_account_id": management,
                            "monitoring_account_id": central, "central_bus_account_id": central}
    data["accounts"] = accounts
    data["store"] = {"path": store_path}
    if backfill_minutes is not None:
        collectors = data.setdefault("collectors", {})
        metrics = collectors.setdefault("metrics", {})
        metrics["backfill"] = f"{backfill_minutes}m"
    return data


def generated_rules(spec: GeneratedSpec, account_id: str) -> list[GeneratedRule]:
    """The rules of one account, patterns cycled from the reference routes."""
    rng = random.Random(f"rules|{spec.seed}|{account_id}")  # noqa: S311 - not crypto
    rules = []
    for index in range(spec.rules_per_account):
        route = ROUTES[index % len(ROUTES)]
        rules.append(GeneratedRule(
            account=account_id,
            name=f"{route.name}-{index:03d}"[:64],
            description=route.description,
            pattern=route.pattern,
            peak_per_min=round(rng.lognormvariate(math.log(8.0), 0.8), 2),
            failing=rng.random() < FAILING_SHARE,
        ))
    return rules


def rule_minute(rule: GeneratedRule, minute: datetime, seed: int) -> list[dict[str, Any]]:
    """The AWS/Events datapoints one rule emits in ``minute`` (deterministic per seed)."""
    rng = random.Random(f"{seed}|{rule.account}|{rule.name}|{minute_key(minute)}")  # noqa: S311
    expected = rule.peak_per_min * daily_shape(minute)
    matched = max(0, round(rng.gauss(expected, math.sqrt(max(expected, 1e-9)))))
    if not matched:
        return []
    failed = sum(1 for _ in range(matched) if rng.random() < FAILING_RATE) \
        if rule.failing else 0
    dims = dimensions(Rule(rule.account, "default", rule.name, "ENABLED", None, ()))
    data = [
        count_datum("MatchedEvents", matched, dims, minute),
        count_datum("TriggeredRules", matched, dims, minute),
        count_datum("Invocations", matched, dims, minute),
        count_datum("FailedInvocations", failed, dims, minute),
        count_datum("InvocationAttempts", matched + failed, dims, minute),
        count_datum("SuccessfulInvocationAttempts", matched - failed, dims, minute),
        count_datum("RetryInvocationAttempts", failed, dims, minute),
        count_datum("InvocationsSentToDlq", failed, dims, minute),
    ]
    latency = BASE_LATENCY_MS * rng.lognormvariate(0.0, 0.25)
    data.append(latency_datum(dims, minute, matched, latency))
    return [d for d in data if d is not None]


def account_minute(rules: Sequence[GeneratedRule], minute: datetime, seed: int
                   ) -> list[dict[str, Any]]:
    """Every datapoint of one account in ``minute``: its rules' and its PutEvents metrics
    (the account publishes what its rules match, ENTRIES_PER_CALL entries a call)."""
    data: list[dict[str, Any]] = []
    entries = 0
    for rule in rules:
        points = rule_minute(rule, minute, seed)
        data.extend(points)
        entries += int(next((p["Value"] for p in points if p["MetricName"] == "MatchedEvents"),
                            0))
    calls = math.ceil(entries / ENTRIES_PER_CALL)
    for name, value in (("PutEventsApproximateCallCount", calls),
                        ("PutEventsApproximateSuccessCount", calls),
                        ("PutEventsEntriesCount", entries)):
        datum = count_datum(name, value, [], minute)
        if datum:
            data.append(datum)
    return data


def count_totals(data: Sequence[Mapping[str, Any]], start: datetime, end: datetime
                 ) -> dict[str, float]:
    """Sum of each count metric's values with a timestamp in [start, end)."""
    totals: dict[str, float] = defaultdict(float)
    for datum in data:
        if "Value" in datum and start <= datum["Timestamp"] < end:
            totals[str(datum["MetricName"])] += float(datum["Value"])
    return dict(totals)


# --- the organization on moto's server ---------------------------------------------------------


@dataclass
class GeneratedOrg(ServedOrganization):
    """A generated organization played on a local moto server (one per process at a time)."""

    config: Config
    spec: GeneratedSpec
    host: str = "127.0.0.1"
    port: int = 0
    workers: int = 4
    timings: dict[str, float] = field(default_factory=dict)
    #: Every datapoint written, per account (what a reader of the whole history must find).
    written: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    history_end: datetime | None = None
    _server: GatedMotoServer | None = None
    _admin: AdminSessions | None = None

    def start(self, now: datetime | None = None) -> str:
        """Start the server, build every account, write the metric history; the endpoint."""
        clock = time.monotonic()
        guarded = (self.config.aws.read_role_name, self.config.heal.role_name)
        self._server = GatedMotoServer(guarded, host=self.host, port=self.port)
        self._server.start()
        self._admin = AdminSessions(self.endpoint_url, self.config.aws.regions[0],
                                    max_pool=max(10, self.workers * 2))
        self.timings["server_s"] = time.monotonic() - clock
        clock = time.monotonic()
        builder = Builder(self.config, self._admin)
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            list(pool.map(lambda a: self._build_account(builder, a.id), self.config.accounts))
        self.timings["build_s"] = time.monotonic() - clock
        clock = time.monotonic()
        end = (now or datetime.now(UTC)).astimezone(UTC).replace(second=0, microsecond=0)
        self._write_history(end)
        self.timings["history_s"] = time.monotonic() - clock
        log.info("generated %d accounts x %d rules at %s: build %.1fs, %d min history %.1fs",
                 self.spec.accounts, self.spec.rules_per_account, self.endpoint_url,
                 self.timings["build_s"], self.spec.history_minutes,
                 self.timings["history_s"])
        return self.endpoint_url

    def stop(self) -> None:
        """Stop the server and empty moto's (process-wide) state."""
        self._stop_server()

    def rules(self, account_id: str) -> list[GeneratedRule]:
        return generated_rules(self.spec, account_id)

    def _build_account(self, builder: Builder, account_id: str) -> None:
        builder.ensure_read_role(account_id)
        region = self.config.aws.regions[0]
        sqs = self.admin.client(account_id, "sqs")
        sqs.create_queue(QueueName=TARGET_QUEUE)
        sqs.create_queue(QueueName=TARGET_DLQ)
        queue_arn = f"arn:aws:sqs:{region}:{account_id}:{TARGET_QUEUE}"
        dlq_arn = f"arn:aws:sqs:{region}:{account_id}:{TARGET_DLQ}"
        events = self.admin.client(account_id, "events")
        entry = self.config.account(account_id)
        team = entry.team if entry else "unassigned"
        for rule in self.rules(account_id):
            tags = [{"Key": "Team", "Value": team}, {"Key": "Service", "Value": "generated"},
                    {"Key": "Environment", "Value": "production"}]
            events.put_rule(Name=rule.name, EventPattern=json.dumps(rule.pattern),
                            State="ENABLED", Description=rule.description,
                            EventBusName="default", Tags=tags)
            events.put_targets(Rule=rule.name, EventBusName="default", Targets=[{
                "Id": "queue", "Arn": queue_arn,
                "RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 7200},
                "DeadLetterConfig": {"Arn": dlq_arn}}])

    def _write_history(self, end: datetime) -> None:
        minutes = [end - timedelta(minutes=m) for m in range(self.spec.history_minutes, 0, -1)]
        for account in self.config.accounts:
            rules = self.rules(account.id)
            data: list[dict[str, Any]] = []
            for minute in minutes:
                data.extend(account_minute(rules, minute, self.spec.seed))
            self.written[account.id] = data
        put_metrics(self.admin, self.written, workers=self.workers)
        self.history_end = end

    def totals(self, start: datetime, end: datetime) -> dict[str, float]:
        """Org-wide sum of each count metric written in [start, end): the truth a reader of
        that window must find."""
        totals: dict[str, float] = defaultdict(float)
        for data in self.written.values():
            for metric, value in count_totals(data, start, end).items():
                totals[metric] += value
        return dict(totals)
