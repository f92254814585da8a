"""Writes what the traffic model produced: CloudWatch metric data and DLQ messages.

CloudWatch PutMetricData takes at most 1000 data items per call; accounts are written in
parallel. DLQ messages are sent with SendMessageBatch (10 per call) carrying the original
event and the attributes EventBridge adds (RULE_ARN, TARGET_ARN, ERROR_CODE, ERROR_MESSAGE).
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from sim.admin import AdminSessions
from sim.traffic import NAMESPACE, DeadLetters

log = logging.getLogger(__name__)

MAX_METRIC_ITEMS = 1000
#: Segment documents per PutTraceSegments call (AWS takes up to 64 KB a call).
MAX_SEGMENTS_PER_CALL = 25
MAX_BATCH_MESSAGES = 10
#: Real DLQ messages per queue per tick (metrics still count every event).
MAX_DLQ_MESSAGES_PER_TICK = 100


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def put_metrics(admin: AdminSessions, metrics: Mapping[str, Sequence[dict[str, Any]]],
                workers: int = 4) -> int:
    """PutMetricData for every account; returns the number of API calls."""
    jobs = [(account, chunk) for account, data in metrics.items()
            for chunk in chunks(list(data), MAX_METRIC_ITEMS) if chunk]

    def put(job: tuple[str, Sequence[dict[str, Any]]]) -> None:
        account, chunk = job
        admin.client(account, "cloudwatch").put_metric_data(Namespace=NAMESPACE,
                                                            MetricData=list(chunk))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(put, jobs))
    return len(jobs)


def _envelope(event: dict[str, Any], when: datetime) -> dict[str, Any]:
    return {**event, "id": str(uuid.uuid4()), "time": when.strftime("%Y-%m-%dT%H:%M:%SZ")}


def send_dead_letters(admin: AdminSessions, letters: Sequence[DeadLetters], when: datetime
                      ) -> int:
    """Send each DLQ its dead letters (capped per tick); returns messages sent."""
    sent = 0
    for letter in letters:
        _, _, _, region, account, name = letter.dlq_arn.split(":", 5)
        sqs = admin.client(account, "sqs", region)
        url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        events = letter.events[:MAX_DLQ_MESSAGES_PER_TICK]
        if len(letter.events) > len(events):
            log.info("DLQ %s: sent %d of %d dead letters this tick", name, len(events),
                     len(letter.events))
        for batch in chunks(events, MAX_BATCH_MESSAGES):
            entries = [{
                "Id": str(i),
                "MessageBody": json.dumps(_envelope(event, when)),
                "MessageAttributes": {
                    "RULE_ARN": {"DataType": "String", "StringValue": letter.rule_arn},
                    "TARGET_ARN": {"DataType": "String", "StringValue": letter.target_arn},
                    "ERROR_CODE": {"DataType": "String", "StringValue": "SDK_CLIENT_ERROR"},
                    "ERROR_MESSAGE": {"DataType": "String",
                                      "StringValue": "target failed after retries"},
                },
            } for i, event in enumerate(batch)]
            sqs.send_message_batch(QueueUrl=url, Entries=entries)
            sent += len(entries)
    return sent


def put_segments(admin: AdminSessions, documents: Mapping[str, Sequence[str]], region: str
                 ) -> int:
    """PutTraceSegments of each account's segment documents (JSON text); returns the number
    of API calls. Segments X-Ray reports unprocessed are logged."""
    calls = 0
    for account, docs in documents.items():
        xray = admin.client(account, "xray", region)
        for chunk in chunks(list(docs), MAX_SEGMENTS_PER_CALL):
            answer = xray.put_trace_segments(TraceSegmentDocuments=list(chunk))
            calls += 1
            for bad in answer.get("UnprocessedTraceSegments", []):
                log.warning("X-Ray in %s refused segment %s: %s %s", account, bad.get("Id"),
                            bad.get("ErrorCode"), bad.get("Message"))
    return calls


#: The log group X-Ray Transaction Search keeps spans in (collectors/otel.py reads it).
SPANS_LOG_GROUP = "aws/spans"
SPANS_LOG_STREAM = "default"
#: PutLogEvents takes at most 10,000 events a call.
MAX_LOG_EVENTS = 10_000


def put_span_events(admin: AdminSessions, events: Mapping[str, Sequence[dict[str, Any]]],
                    region: str, created: set[str]) -> int:
    """Write each account's OpenTelemetry span events to its ``aws/spans`` log group
    (created on first use; ``created`` remembers the accounts done). Real accounts' spans
    arrive through X-Ray's OTLP endpoint, which moto lacks, so the simulator writes the log
    events directly. Returns the number of PutLogEvents calls."""
    calls = 0
    for account, items in events.items():
        if not items:
            continue
        logs = admin.client(account, "logs", region)
        if account not in created:
            exists = logs.exceptions.ResourceAlreadyExistsException
            with contextlib.suppress(exists):
                logs.create_log_group(logGroupName=SPANS_LOG_GROUP)
            with contextlib.suppress(exists):
                logs.create_log_stream(logGroupName=SPANS_LOG_GROUP,
                                       logStreamName=SPANS_LOG_STREAM)
            created.add(account)
        ordered = sorted(items, key=lambda event: event["timestamp"])
        for chunk in chunks(ordered, MAX_LOG_EVENTS):
            logs.put_log_events(logGroupName=SPANS_LOG_GROUP, logStreamName=SPANS_LOG_STREAM,
                                logEvents=list(chunk))
            calls += 1
    return calls
