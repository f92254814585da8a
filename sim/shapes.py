"""The second simulated organization: "Harbor Lines", shaped unlike QuickGrocer.

Where :mod:`sim.org` plays one platform's event flows, this organization is a catalogue of the
shapes real accounts have and QuickGrocer does not (docs/simulator.md, "The second
organization"), deployed through the AWS APIs on moto's server behind the same IAM gate:

* three regions, accounts that use only their default bus, and a custom bus in one;
* rules that are scheduled (``rate``/``cron``, no pattern), have no targets, have no
  description, forward to another region's bus or to an API destination, are created
  DISABLED, and patterns with ``prefix``, ``suffix``, ``anything-but``, ``numeric``,
  ``exists``, ``wildcard``, ``equals-ignore-case`` and ``$or``; an event archive;
* rules tagged with a team other than their account's (``Team = berths`` on the ops bus);
* an account whose read role may read nothing, and one whose role predates the otel
  collector (``logs:FilterLogEvents`` withheld);
* an hour of AWS/Events metrics for some rules (the rest have none), one X-Ray trace
  whose producer annotates its own span with the traceparent it injects, and Cost Explorer
  answers for every account's generic workload (shared cost allocated evenly).

Its config is ``sim/orgs/harbor.toml``. Like every simulator module, nothing here is imported
by the product: the endpoint is the only difference orgscope sees.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from collectors.cost import CostCollectorConfig
from orgscope.config import Config
from sim.admin import AdminSessions
from sim.build import Builder
from sim.costexplorer import CostFeed
from sim.costs import CostModel
from sim.emit import put_metrics, put_segments
from sim.server import GatedMotoServer, ServedOrganization

log = logging.getLogger(__name__)

CONFIG = Path(__file__).resolve().parent / "orgs" / "harbor.toml"

PAYER = "400000000001"
OPS = "400000000002"
BERTHS = "400000000003"
CUSTOMS = "400000000004"
FLEET = "400000000005"
NO_READ = "400000000006"
PARTIAL = "400000000007"
OPS_BUS = "ops-bus"
#: The action the partial account's read role lacks.
WITHHELD = ("logs:FilterLogEvents",)


@dataclass(frozen=True)
class ShapeRule:
    """One rule of the catalogue, and the shape it stands for (``kind``)."""

    account: str
    region: str
    name: str
    kind: str
    pattern: dict[str, Any] | None = None
    schedule: str | None = None
    bus: str = "default"
    description: str | None = None
    state: str = "ENABLED"
    #: "queue" (an SQS queue with a DLQ), "lambda", "api" (an API destination),
    #: "xregion" (the same account's default bus in another region) or None (no target).
    target: str | None = "queue"
    tags: dict[str, str] = field(default_factory=dict)


def catalogue(regions: Sequence[str]) -> list[ShapeRule]:
    """Every rule of the organization (pure: the design, as data)."""
    home, other, far = (list(regions) + list(regions) * 2)[:3]
    return [
        # the ops account: a custom bus whose rules other teams own
        ShapeRule(OPS, home, "berth-events-to-berths", "own team tag", bus=OPS_BUS,
                  pattern={"source": [{"prefix": "harbor."}],
                           "detail-type": [{"suffix": "Berthed"}]},
                  description="Berth events for the berth planners",
                  tags={"Team": "berths", "Service": "berth-sync"}),
        ShapeRule(OPS, home, "customs-holds-to-customs", "own team tag, $or", bus=OPS_BUS,
                  pattern={"source": ["harbor.customs"], "$or": [
                      {"detail": {"hold": [True]}},
                      {"detail": {"inspection": [{"exists": True}]}}]},
                  tags={"team": "customs"}),
        ShapeRule(OPS, home, "ops-audit-sink", "no targets", bus=OPS_BUS,
                  pattern={"source": [{"anything-but": ["aws.events"]}]},
                  description="Kept for the audit archive; delivers nowhere", target=None),
        ShapeRule(OPS, home, "nightly-reconcile", "scheduled (cron)",
                  schedule="cron(0 3 * * ? *)", target="lambda"),
        # berth planning: default bus only, patterns of every kind
        ShapeRule(BERTHS, home, "heavy-cargo", "numeric", pattern={
            "source": ["harbor.berth"], "detail": {"weight": [{"numeric": [">", 5000]}]}}),
        ShapeRule(BERTHS, home, "rotterdam-calls", "wildcard", pattern={
            "detail": {"port": [{"wildcard": "NL*RTM"}]}}),
        ShapeRule(BERTHS, home, "every-five-minutes", "scheduled (rate), no description",
                  schedule="rate(5 minutes)", target="lambda"),
        ShapeRule(BERTHS, other, "berths-us", "second region", pattern={
            "source": ["harbor.berth"], "detail-type": ["Vessel Berthed"]}),
        ShapeRule(BERTHS, home, "draft-rule", "created disabled", state="DISABLED",
                  pattern={"source": ["harbor.berth"], "detail-type": ["Draft"]}),
        # customs: anything-but, exists, equals-ignore-case; forwards across regions; a partner
        ShapeRule(CUSTOMS, home, "declarations", "anything-but", pattern={
            "source": ["harbor.customs"],
            "detail": {"status": [{"anything-but": ["TEST", "DRAFT"]}]}}),
        ShapeRule(CUSTOMS, home, "no-manifest", "exists false", pattern={
            "detail": {"manifest": [{"exists": False}]}}),
        ShapeRule(CUSTOMS, home, "dutch-flag", "equals-ignore-case", pattern={
            "detail": {"flag": [{"equals-ignore-case": "nl"}]}}, target="api",
            description="Declarations to the customs broker's webhook"),
        ShapeRule(CUSTOMS, home, "forward-to-us", "cross-region bus target", pattern={
            "source": ["harbor.customs"], "detail-type": ["Declaration Filed"]},
            target="xregion"),
        # fleet tracking: the far region only
        ShapeRule(FLEET, far, "position-reports", "third region, suffix", pattern={
            "detail-type": [{"suffix": "Position"}]}),
        ShapeRule(FLEET, far, "hourly-rollup", "scheduled (rate)", schedule="rate(1 hour)",
                  target="lambda", description="Hourly fleet roll-up"),
        # the account that may read nothing, and the one without the otel permission
        ShapeRule(NO_READ, home, "invoices", "unreadable account", pattern={
            "source": ["harbor.billing"]}),
        ShapeRule(PARTIAL, home, "crane-faults", "partial access", pattern={
            "source": ["harbor.cranes"], "detail-type": ["Crane Fault"]}),
    ]


def _arn(kind: str, region: str, account: str, name: str) -> str:
    return f"arn:aws:{kind}:{region}:{account}:{name}"


@dataclass
class HarborOrg(ServedOrganization):
    """Harbor Lines on a local moto server (one simulator per process at a time)."""

    config: Config
    host: str = "127.0.0.1"
    port: int = 0
    rules: list[ShapeRule] = field(default_factory=list)
    #: The bill Cost Explorer serves (every account's generic workload; no team move).
    cost_model: CostModel | None = None
    _server: GatedMotoServer | None = None
    _admin: AdminSessions | None = None
    _builder: Builder | None = None
    _history_end: datetime | None = None
    _traffic: threading.Thread | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)

    def start(self, now: datetime | None = None) -> str:
        """Start the server, deploy every account's roles and rules, write a little metric
        history and one trace; return the endpoint."""
        clock = time.monotonic()
        guarded = (self.config.aws.read_role_name, self.config.heal.role_name)
        self._server = GatedMotoServer(guarded, host=self.host, port=self.port)
        self._server.start()
        try:
            self._build(now)
        except BaseException:
            self.stop()  # a half-built organization must not keep its port and moto's state
            raise
        log.info("Harbor Lines: %d accounts, %d rules in %d regions at %s (%.1fs)",
                 len(self.config.accounts), len(self.rules), len(self.config.aws.regions),
                 self.endpoint_url, time.monotonic() - clock)
        return self.endpoint_url

    def _build(self, now: datetime | None) -> None:
        self._admin = AdminSessions(self.endpoint_url, self.config.aws.regions[0])
        self._builder = Builder(self.config, self._admin)
        for account in self.config.accounts:
            self._builder.ensure_read_role(account.id,
                                           without=WITHHELD if account.id == PARTIAL else ())
            self._builder.ensure_heal_role(account.id)
        self.rules = catalogue(self.config.aws.regions)
        for rule in self.rules:
            self._deploy(rule)
        end = (now or datetime.now(UTC)).astimezone(UTC).replace(second=0, microsecond=0)
        self._write_metrics(end, minutes=60 * self.history_hours)
        self._write_trace(end)
        self.cost_model = CostModel(tuple(self.config.accounts), end.date())
        CostFeed(self.config.organization.management_account_id,
                 self.config.collector_settings("cost", CostCollectorConfig)
                 ).bind(self.cost_model)
        # last: the role that may read nothing (building above used admin sessions)
        self._builder.strip_read_role(NO_READ)

    #: Hours of metric history written at start (the demo back-fills no further).
    history_hours = 1

    def start_traffic(self, tick_s: float = 60.0) -> None:
        """Keep writing each finished minute's metrics (the same steady rates) every
        ``tick_s`` seconds, on a daemon thread, until :meth:`stop`."""
        def loop() -> None:
            written = self._history_end
            while not self._stopping.wait(tick_s):
                minute = datetime.now(UTC).replace(second=0, microsecond=0)
                if written is None or minute <= written:
                    continue
                try:
                    self._write_metrics(minute, minutes=int((minute - written).total_seconds()
                                                            // 60))
                    written = minute
                except Exception:  # a tick that fails is retried at the next one
                    log.exception("Harbor Lines: writing metrics failed")

        self._stopping.clear()
        self._traffic = threading.Thread(target=loop, name="harbor-traffic", daemon=True)
        self._traffic.start()

    def stop(self) -> None:
        """Stop the traffic and the server, and empty moto's (process-wide) state."""
        self._stopping.set()
        if self._traffic is not None:
            self._traffic.join(timeout=10)
            self._traffic = None
        self._stop_server()

    # --- deploying ---------------------------------------------------------------------------

    def _deploy(self, rule: ShapeRule) -> None:
        events = self.admin.client(rule.account, "events", rule.region)
        if rule.bus != "default":
            try:
                events.create_event_bus(Name=rule.bus)
                events.create_archive(
                    ArchiveName=f"{rule.bus}-archive",
                    EventSourceArn=_arn("events", rule.region, rule.account,
                                        f"event-bus/{rule.bus}"))
            except events.exceptions.ResourceAlreadyExistsException:
                pass
        params: dict[str, Any] = {"Name": rule.name, "EventBusName": rule.bus,
                                  "State": rule.state,
                                  "Tags": [{"Key": k, "Value": v} for k, v in rule.tags.items()]}
        if rule.pattern is not None:
            params["EventPattern"] = json.dumps(rule.pattern)
        if rule.schedule is not None:
            params["ScheduleExpression"] = rule.schedule
        if rule.description is not None:
            params["Description"] = rule.description
        events.put_rule(**params)
        target = self._target(rule)
        if target is not None:
            events.put_targets(Rule=rule.name, EventBusName=rule.bus, Targets=[target])

    def _target(self, rule: ShapeRule) -> dict[str, Any] | None:
        account, region = rule.account, rule.region
        if rule.target == "queue":
            sqs = self.admin.client(account, "sqs", region)
            sqs.create_queue(QueueName=f"{rule.name}-queue")
            sqs.create_queue(QueueName=f"{rule.name}-dlq")
            return {"Id": "queue", "Arn": _arn("sqs", region, account, f"{rule.name}-queue"),
                    "DeadLetterConfig": {"Arn": _arn("sqs", region, account,
                                                     f"{rule.name}-dlq")},
                    "RetryPolicy": {"MaximumRetryAttempts": 4,
                                    "MaximumEventAgeInSeconds": 3600}}
        if rule.target == "lambda":
            return {"Id": "fn", "Arn": _arn("lambda", region, account,
                                            f"function:{rule.name}")}
        if rule.target == "api":
            events = self.admin.client(account, "events", region)
            connection = events.create_connection(
                Name=f"{rule.name}-broker", AuthorizationType="API_KEY",
                AuthParameters={"ApiKeyAuthParameters": {
                    "ApiKeyName": "x-api-key", "ApiKeyValue": secrets.token_hex(8)}})
            destination = events.create_api_destination(
                Name=f"{rule.name}-webhook", ConnectionArn=connection["ConnectionArn"],
                InvocationEndpoint="https://broker.harbor.example/declarations",
                HttpMethod="POST")
            return {"Id": "broker", "Arn": destination["ApiDestinationArn"],
                    "RoleArn": f"arn:aws:iam::{account}:role/invoke-api-destinations"}
        if rule.target == "xregion":
            # another region's bus, or (a config with one region) the same region's
            elsewhere = next((r for r in self.config.aws.regions if r != region), region)
            return {"Id": "bus", "Arn": _arn("events", elsewhere, account, "event-bus/default"),
                    "RoleArn": f"arn:aws:iam::{account}:role/forward-events"}
        return None

    # --- traffic -----------------------------------------------------------------------------

    def _write_metrics(self, end: datetime, minutes: int = 10) -> None:
        """``minutes`` minutes before ``end`` of MatchedEvents/Invocations for the pattern
        rules of the readable accounts' home region, TriggeredRules for the scheduled ones
        (the rules of the other regions have none)."""
        data: dict[str, list[dict[str, Any]]] = {}
        home = self.config.aws.regions[0]
        for rule in self.rules:
            if rule.region != home or rule.account == NO_READ or rule.state != "ENABLED":
                continue
            dims = [{"Name": "RuleName", "Value": rule.name}]
            if rule.bus != "default":
                dims.insert(0, {"Name": "EventBusName", "Value": rule.bus})
            names = ("TriggeredRules", "Invocations") if rule.schedule else \
                ("MatchedEvents", "TriggeredRules", "Invocations")
            for minute in range(minutes, 0, -1):
                at = end - timedelta(minutes=minute)
                for name in names:
                    data.setdefault(rule.account, []).append(
                        {"MetricName": name, "Dimensions": dims, "Timestamp": at,
                         "Value": 3.0, "Unit": "Count"})
        put_metrics(self.admin, data)
        self._history_end = end

    def _write_trace(self, end: datetime) -> None:
        """One order of cargo: berth-planning publishes (and annotates its own segment with
        the traceparent it injects), customs-gateway consumes in a trace of its own."""
        start = (end - timedelta(minutes=2)).timestamp()
        producer_trace = f"1-{int(start):08x}-{secrets.token_hex(12)}"
        consumer_trace = f"1-{int(start):08x}-{secrets.token_hex(12)}"
        producer_span = secrets.token_hex(8)
        traceparent = f"00-{producer_trace[2:10]}{producer_trace[11:]}-{producer_span}-01"
        producer = {"trace_id": producer_trace, "id": producer_span, "name": "berth-planner",
                    "start_time": start, "end_time": start + 0.120,
                    "annotations": {"traceparent": traceparent},
                    "http": {"request": {"method": "POST", "url": "https://events"},
                             "response": {"status": 200}}}
        consumer = {"trace_id": consumer_trace, "id": secrets.token_hex(8),
                    "name": "customs-declarations", "start_time": start + 0.300,
                    "end_time": start + 0.420,
                    "annotations": {"traceparent": traceparent, "event_rule": "declarations"}}
        home = self.config.aws.regions[0]
        put_segments(self.admin, {BERTHS: [json.dumps(producer)]}, home)
        put_segments(self.admin, {CUSTOMS: [json.dumps(consumer)]}, home)
