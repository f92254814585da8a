"""X-Ray segments of sampled order flows: pure functions from (minute, seed, faults) to the
segment documents each account would send with PutTraceSegments.

The flow traced is the article's order: ``customer-web`` (API Gateway, POST /orders) puts an
Order Placed event on ``central-bus`` in the event-bus account, with the W3C traceparent of its
PutEvents subsegment in ``detail.traceContext.traceparent``; the rule
``order-placed-to-order-processing`` delivers it to the ``order-processing`` consumer (a Lambda
function), which calls ``payment-service`` and then ``inventory-mgmt`` over HTTP. Every
account writes its own segments, linked by ``parent_id`` across accounts.

The traceparent travels as the X-Ray **annotation** ``traceparent`` on the consumer's segment
(annotations are indexed and searchable, metadata is not), next to ``event_rule`` and
``event_bus``; the producer records the one it sent as ``metadata.event.traceparent`` on its
PutEvents subsegment.

Services named in ``otel`` (the simulated organization passes :data:`OTEL_SERVICES`:
inventory-mgmt) report OpenTelemetry spans instead of X-Ray segments: the same spans, as the
JSON log events X-Ray Transaction Search keeps in the account's ``aws/spans`` log group
(:func:`otel_events`), so the demo's traces mix sources and still stitch into one.

One flow in :data:`BREAK_EVERY` breaks the X-Ray trace id at the bus, as EventBridge does for
targets it does not propagate X-Ray context to: the consumer starts a new trace (no parent id),
linked to the producer only by the traceparent annotation; payment-service and
inventory-mgmt follow the consumer's new trace. inventory-mgmt's clock runs
:data:`INVENTORY_SKEW_MS` behind the others (a skew stitching must survive).

Only a sample of orders is traced (:func:`flows_in_minute`: about :data:`FLOWS_PER_MINUTE` at
peak, at least one a minute), deterministic per seed and minute.
"""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sim.traffic import daily_shape, minute_key

#: The services of the traced flow (each is the account of the same name; the bus is
#: ``central-bus`` in the event-bus account).
SERVICES: tuple[str, ...] = ("customer-web", "central-bus", "order-processing",
                             "payment-service", "inventory-mgmt")
ACCOUNT_OF: dict[str, str] = {"customer-web": "customer-web", "central-bus": "event-bus",
                              "order-processing": "order-processing",
                              "payment-service": "payment-service",
                              "inventory-mgmt": "inventory-mgmt"}
TRACED_RULE = "order-placed-to-order-processing"
FLOWS_PER_MINUTE = 4
BREAK_EVERY = 4
INVENTORY_SKEW_MS = 40.0
#: Services of the simulated organization that send OpenTelemetry spans (aws/spans), not
#: X-Ray segments.
OTEL_SERVICES: frozenset[str] = frozenset({"inventory-mgmt"})
OTEL_SCOPE = "quickgrocer.sim"


@dataclass(frozen=True)
class TraceFault:
    """A scenario fault on one traced service for [start, end): ``kind`` latency_spike
    (``value`` extra ms of work) or error_burst (``value`` the share of calls that fault)."""

    kind: str
    service: str
    value: float
    start: datetime
    end: datetime

    def active(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True)
class TraceFaults:
    items: tuple[TraceFault, ...] = ()

    def value(self, kind: str, service: str, moment: datetime) -> float:
        return max((f.value for f in self.items if f.kind == kind and f.service == service
                    and f.active(moment)), default=0.0)

    def pruned(self, now: datetime) -> TraceFaults:
        return TraceFaults(tuple(f for f in self.items if f.end > now))


@dataclass
class FlowSegments:
    """Segment documents per account id, and what was traced (for tests and logs)."""

    documents: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(list))
    #: aws/spans log events ({"timestamp": ms, "message": JSON span}) per account id.
    spans: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    flows: int = 0
    broken: int = 0


def _rng(seed: int, *parts: object) -> random.Random:
    return random.Random("|".join(["trace", str(seed), *map(str, parts)]))  # noqa: S311


def _hex(rng: random.Random, digits: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(digits))


def _span_id(rng: random.Random) -> str:
    return _hex(rng, 15) + rng.choice("123456789abcdef")


def xray_trace_id(moment: datetime, rng: random.Random) -> str:
    return f"1-{int(moment.timestamp()):08x}-{_hex(rng, 24)}"


def flows_in_minute(minute: datetime, seed: int) -> int:
    """Orders traced in ``minute``: the daily shape times :data:`FLOWS_PER_MINUTE`, >= 1."""
    return max(1, round(FLOWS_PER_MINUTE * daily_shape(minute)))


def _t(moment: datetime) -> float:
    return round(moment.timestamp(), 6)


def _ms(value: float) -> timedelta:
    return timedelta(milliseconds=value)


class _Clock:
    """Builds one flow's spans on one timeline (milliseconds after the flow starts)."""

    def __init__(self, start: datetime, rng: random.Random, faults: TraceFaults) -> None:
        self.start = start
        self.rng = rng
        self.faults = faults

    def at(self, ms: float, skew_ms: float = 0.0) -> float:
        return _t(self.start + _ms(ms - skew_ms))

    def work(self, service: str, base_ms: float) -> float:
        """Time ``service`` spends on one step: lognormal noise plus any latency spike."""
        return base_ms * self.rng.lognormvariate(0.0, 0.2) + \
            self.faults.value("latency_spike", service, self.start)

    def faults_now(self, service: str) -> bool:
        rate = self.faults.value("error_burst", service, self.start)
        return rate > 0 and self.rng.random() < rate


def _http(method: str, url: str, status: int) -> dict[str, Any]:
    return {"request": {"method": method, "url": url}, "response": {"status": status}}


def _flags(doc: dict[str, Any], status: int) -> dict[str, Any]:
    if status >= 500:
        doc["fault"] = True
    elif status == 429:
        doc["throttle"] = True
        doc["error"] = True
    elif status >= 400:
        doc["error"] = True
    return doc


def _backend(clock: _Clock, service: str, trace: str, parent: str, begin: float, *,
             path: str, table: str, operation: str, skew_ms: float = 0.0
             ) -> tuple[dict[str, Any], float, int]:
    """A backend service's segment (payment-service, inventory-mgmt): its DynamoDB call.
    Returns the document, its end (flow ms, true clock) and its HTTP status."""
    rng = clock.rng
    seg_id = _span_id(rng)
    db_start = begin + clock.work(service, 4.0)
    db_end = db_start + 8.0 * rng.lognormvariate(0.0, 0.3)
    end = db_end + clock.work(service, 6.0)
    status = 500 if clock.faults_now(service) else 200
    db = {"id": _span_id(rng), "name": "DynamoDB", "namespace": "aws",
          "start_time": clock.at(db_start, skew_ms), "end_time": clock.at(db_end, skew_ms),
          "aws": {"operation": operation, "table_name": table}}
    doc = _flags({
        "id": seg_id, "trace_id": trace, "parent_id": parent, "name": service,
        "origin": "AWS::ECS::Container", "start_time": clock.at(begin, skew_ms),
        "end_time": clock.at(end, skew_ms),
        "http": _http("POST", f"https://{service}.internal{path}", status),
        "subsegments": [db]}, status)
    return doc, end, status


def _nanos(seconds: float) -> int:
    return round(seconds * 1_000_000) * 1000


def otel_events(document: Mapping[str, Any], account_id: str) -> list[dict[str, Any]]:
    """One service's X-Ray segment document as the OpenTelemetry spans it would have sent:
    ``aws/spans`` log events (``timestamp`` ms, ``message`` one JSON span with its resource
    inline), a SERVER span for the segment and a CLIENT span per subsegment (any depth)."""
    trace = str(document["trace_id"])
    resource = {"attributes": {"service.name": document["name"], "cloud.provider": "aws",
                               "cloud.platform": "aws_ecs", "cloud.account.id": account_id}}
    events: list[dict[str, Any]] = []
    stack: list[tuple[Mapping[str, Any], str | None, bool]] = [
        (document, document.get("parent_id"), True)]
    while stack:
        doc, parent, server = stack.pop()
        http = doc.get("http") or {}
        request, response = http.get("request") or {}, http.get("response") or {}
        attributes: dict[str, Any] = {}
        name = str(doc["name"])
        if request:
            attributes["http.request.method"] = request["method"]
            attributes["url.full"] = request["url"]
            name = f"{request['method']} {'/' + request['url'].split('/', 3)[-1]}"
        if response:
            attributes["http.response.status_code"] = response["status"]
        aws = doc.get("aws") or {}
        if aws.get("operation"):
            name = f"{doc['name']}.{aws['operation']}"
            attributes.update({"rpc.system": "aws-api", "rpc.service": doc["name"],
                               "rpc.method": aws["operation"]})
        start, end = _nanos(doc["start_time"]), _nanos(doc["end_time"])
        span: dict[str, Any] = {
            "resource": resource, "scope": {"name": OTEL_SCOPE},
            "traceId": trace[2:10] + trace[11:], "spanId": doc["id"],
            "parentSpanId": parent or "", "name": name,
            "kind": "SERVER" if server else "CLIENT",
            "startTimeUnixNano": start, "endTimeUnixNano": end, "durationNano": end - start,
            "attributes": attributes,
            "status": {"code": "ERROR" if doc.get("fault") else "UNSET"}}
        events.append({"timestamp": start // 1_000_000,
                       "message": json.dumps(span, separators=(",", ":"))})
        stack.extend((sub, str(doc["id"]), False) for sub in doc.get("subsegments") or [])
    return events


def _emit(out: FlowSegments, account_id: str, document: dict[str, Any],
          otel: frozenset[str]) -> None:
    """Append a service's segment to ``out``: as X-Ray, or as OTel spans when it is in
    ``otel``."""
    if document["name"] in otel:
        out.spans[account_id].extend(otel_events(document, account_id))
    else:
        out.documents[account_id].append(document)


def flow_segments(start: datetime, index: int, seed: int, *, accounts: Mapping[str, str],
                  faults: TraceFaults, delivered: bool, out: FlowSegments,
                  broken: bool = False, otel: frozenset[str] = frozenset()) -> None:
    """The segments of one traced order starting at ``start`` (``accounts``: service ->
    account id), appended to ``out``. ``delivered``: whether the traced rule delivers now;
    ``broken``: whether the consumer starts a new X-Ray trace; ``otel``: services that send
    OpenTelemetry spans instead of X-Ray segments."""
    rng = _rng(seed, start.isoformat(), index)
    clock = _Clock(start, rng, faults)
    trace = xray_trace_id(start, rng)
    order_id = f"ord-{_hex(rng, 10)}"
    api_id, validate_id, put_id = _span_id(rng), _span_id(rng), _span_id(rng)
    traceparent = f"00-{trace[2:10]}{trace[11:]}-{put_id}-01"
    validate_end = clock.work("customer-web", 8.0)
    api_status = 500 if clock.faults_now("customer-web") else 201
    subsegments: list[dict[str, Any]] = [{
        "id": validate_id, "name": "validate-order", "start_time": clock.at(0.5),
        "end_time": clock.at(validate_end)}]
    put_start = validate_end + 1.0
    put_end = put_start + 25.0 * rng.lognormvariate(0.0, 0.2)
    if api_status < 500:
        subsegments.append({
            "id": put_id, "name": "EventBridge", "namespace": "aws",
            "start_time": clock.at(put_start), "end_time": clock.at(put_end),
            "aws": {"operation": "PutEvents", "event_bus_name": "central-bus"},
            "metadata": {"event": {"traceparent": traceparent}}})
    api_end = (put_end if api_status < 500 else validate_end) + 4.0
    out.flows += 1
    _emit(out, accounts["customer-web"], _flags({
        "id": api_id, "trace_id": trace, "name": "customer-web",
        "origin": "AWS::ApiGateway::Stage", "start_time": clock.at(0.0),
        "end_time": clock.at(api_end),
        "http": _http("POST", "https://api.quickgrocer.example/orders", api_status),
        "annotations": {"order_id": order_id}, "subsegments": subsegments}, api_status), otel)
    if api_status >= 500:
        return
    # The bus: accepts the event, then the rule delivers it (asynchronously) to the consumer.
    bus_start = put_start + 6.0
    rule_id = _span_id(rng)
    rule_start = bus_start + 2.0
    delivery = rule_start + clock.work("central-bus", 90.0)
    bus_doc: dict[str, Any] = {
        "id": _span_id(rng), "trace_id": trace, "parent_id": put_id, "name": "central-bus",
        "origin": "AWS::Events::EventBus", "start_time": clock.at(bus_start),
        "end_time": clock.at(delivery + 1.0), "annotations": {"order_id": order_id}}
    if delivered:
        bus_doc["subsegments"] = [{
            "id": rule_id, "name": TRACED_RULE, "start_time": clock.at(rule_start),
            "end_time": clock.at(delivery), "annotations": {"event_rule": TRACED_RULE}}]
    _emit(out, accounts["central-bus"], bus_doc, otel)
    if not delivered:
        return
    consumer_trace = xray_trace_id(start + _ms(delivery), rng) if broken else trace
    out.broken += int(broken)
    c0 = delivery + 1.5
    work_end = c0 + clock.work("order-processing", 12.0)
    pay_sub, inv_sub = _span_id(rng), _span_id(rng)
    pay_doc, pay_end, pay_status = _backend(clock, "payment-service", consumer_trace, pay_sub,
                                            work_end + 2.0, path="/charges", table="charges",
                                            operation="PutItem")
    inv_start = pay_end + 3.0
    inv_doc, inv_end, inv_status = _backend(clock, "inventory-mgmt", consumer_trace, inv_sub,
                                            inv_start + 2.0, path="/reservations",
                                            table="stock", operation="UpdateItem",
                                            skew_ms=INVENTORY_SKEW_MS)
    consumer_status = 500 if clock.faults_now("order-processing") or pay_status >= 500 or \
        inv_status >= 500 else 200
    consumer_end = inv_end + 2.0 + 2.0
    consumer: dict[str, Any] = {
        "id": _span_id(rng), "trace_id": consumer_trace, "name": "order-processing",
        "origin": "AWS::Lambda::Function", "start_time": clock.at(c0),
        "end_time": clock.at(consumer_end),
        "annotations": {"traceparent": traceparent, "event_rule": TRACED_RULE,
                        "event_bus": "central-bus", "order_id": order_id},
        "subsegments": [
            _flags({"id": pay_sub, "name": "payment-service", "namespace": "remote",
                    "start_time": clock.at(work_end + 1.0),
                    "end_time": clock.at(pay_end + 1.0),
                    "http": _http("POST", "https://payment-service.internal/charges",
                                  pay_status)}, pay_status),
            _flags({"id": inv_sub, "name": "inventory-mgmt", "namespace": "remote",
                    "start_time": clock.at(inv_start), "end_time": clock.at(inv_end + 2.0),
                    "http": _http("POST", "https://inventory-mgmt.internal/reservations",
                                  inv_status)}, inv_status),
        ]}
    if not broken:
        consumer["parent_id"] = rule_id
    _flags(consumer, consumer_status)
    _emit(out, accounts["order-processing"], consumer, otel)
    _emit(out, accounts["payment-service"], pay_doc, otel)
    _emit(out, accounts["inventory-mgmt"], inv_doc, otel)


def minute_segments(minute: datetime, seed: int, *, accounts: Mapping[str, str],
                    faults: TraceFaults, delivered: bool,
                    out: FlowSegments | None = None,
                    otel: frozenset[str] = frozenset()) -> FlowSegments:
    """Every traced flow of ``minute``: starts spread over its first 50 seconds
    (``otel``: services sending OpenTelemetry spans, see :func:`flow_segments`)."""
    out = out if out is not None else FlowSegments()
    count = flows_in_minute(minute, seed)
    rng = _rng(seed, minute_key(minute))
    for index in range(count):
        offset = 50.0 * (index + rng.random()) / count
        start = minute + timedelta(seconds=math.floor(offset * 1000) / 1000)
        flow_segments(start, index, seed, accounts=accounts, faults=faults,
                      delivered=delivered, out=out,
                      broken=(minute_key(minute) + index) % BREAK_EVERY == 0, otel=otel)
    return out


def documents_json(documents: Mapping[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    """Documents as the JSON strings PutTraceSegments takes."""
    return {account: [json.dumps(doc, separators=(",", ":")) for doc in docs]
            for account, docs in documents.items()}
