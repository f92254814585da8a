"""SQS dead-letter queue depth, read in the queue's own account.

AWS APIs wrapped: ``sqs:GetQueueUrl`` (QueueName + QueueOwnerAWSAccountId),
``sqs:GetQueueAttributes`` (ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible)
and ``cloudwatch:GetMetricData`` for AWS/SQS ``ApproximateAgeOfOldestMessage`` (Maximum over
the last minutes; SQS has no attribute for the oldest message's age). Never
``sqs:ReceiveMessage``: peeking hides a message from its real consumer.

Which queues: every ``dlq_arns`` entry of every rule in the latest inventory (rules of *all*
accounts: a target's DLQ usually lives in the target's account, not the rule's) whose ARN names
this account and region, plus the ``queues`` ARNs of ``[collectors.dlq]``.

Dataset ``dlq_depth``: one row per queue per reading: account_id, region, queue (name),
queue_arn, ts (the reading's time), visible (ApproximateNumberOfMessages), in_flight
(ApproximateNumberOfMessagesNotVisible), oldest_age_s (null when CloudWatch has no recent
datapoint: an idle queue, or the simulator, which publishes no AWS/SQS metrics).

A queue that no longer exists is logged and skipped; the run still succeeds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError
from pydantic import Field, model_validator

from orgscope.aws import describe_error
from orgscope.collect import CollectContext, Collector, pages, probe_metric_data
from orgscope.config import ACCOUNT_ID_RE, CollectorConfig
from orgscope.datasets import DLQ_DEPTH

log = logging.getLogger(__name__)


class DlqCollectorConfig(CollectorConfig):
    """SQS dead-letter queues: every target's DLQ, plus these queue ARNs."""

    queues: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _queue_arns(self) -> DlqCollectorConfig:
        for arn in self.queues:
            parts = arn.split(":")
            if len(parts) != 6 or parts[:3] != ["arn", "aws", "sqs"] or \
                    not ACCOUNT_ID_RE.match(parts[4]):
                raise ValueError(
                    f"queues: {arn!r} must be an SQS queue ARN such as "
                    "'arn:aws:sqs:us-east-1:111111111111:orders-dlq'")
        return self


SQS_NAMESPACE = "AWS/SQS"
AGE_METRIC = "ApproximateAgeOfOldestMessage"
#: How far back the age of the oldest message is looked up (SQS publishes every minute while
#: a queue is active; the newest datapoint wins).
AGE_LOOKBACK = timedelta(minutes=15)
AGE_PERIOD_S = 60
MAX_QUERIES_PER_CALL = 500
ATTRIBUTES = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
#: Error codes SQS answers with for a queue that does not exist (JSON and query protocols).
MISSING_QUEUE_CODES = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})


@dataclass(frozen=True)
class QueueRef:
    """An SQS queue named by its ARN: arn:aws:sqs:<region>:<account>:<name>."""

    arn: str
    region: str
    account_id: str
    name: str


# --- pure helpers ----------------------------------------------------------------------------


def parse_queue_arn(arn: str) -> QueueRef | None:
    """'arn:aws:sqs:us-east-1:111111111111:orders-dlq' -> QueueRef; None if not an SQS ARN."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs" or not parts[5]:
        return None
    return QueueRef(arn, parts[3], parts[4], parts[5])


def queues_to_read(rules: pd.DataFrame, extra: Iterable[str], account_id: str, region: str
                   ) -> list[QueueRef]:
    """The DLQs of every rule's targets plus ``extra`` ARNs that live in this account and
    region, each once, sorted by ARN. ARNs that are not SQS queue ARNs are logged and skipped."""
    arns: set[str] = set(extra)
    if len(rules) and "dlq_arns" in rules.columns:
        for value in rules["dlq_arns"]:
            if value is not None and not isinstance(value, float):
                arns.update(str(arn) for arn in value)
    found: list[QueueRef] = []
    for arn in sorted(arns):
        ref = parse_queue_arn(arn)
        if ref is None:
            log.warning("dlq %s %s: %r is not an SQS queue ARN, skipped", account_id, region,
                        arn)
        elif ref.account_id == account_id and ref.region == region:
            found.append(ref)
    return found


def age_queries(queues: Sequence[QueueRef]) -> list[dict[str, Any]]:
    """GetMetricData queries for the age of the oldest message of each queue (id ``q<n>``)."""
    return [{
        "Id": f"q{index}",
        "MetricStat": {
            "Metric": {"Namespace": SQS_NAMESPACE, "MetricName": AGE_METRIC,
                       "Dimensions": [{"Name": "QueueName", "Value": queue.name}]},
            "Period": AGE_PERIOD_S,
            "Stat": "Maximum",
        },
        "ReturnData": True,
    } for index, queue in enumerate(queues)]


def newest_ages(results: Iterable[Mapping[str, Any]], queues: Sequence[QueueRef]
                ) -> dict[str, float]:
    """MetricDataResults -> {queue ARN: newest age in seconds}; unknown ids are skipped."""
    by_id = {f"q{index}": queue for index, queue in enumerate(queues)}
    newest: dict[str, tuple[datetime, float]] = {}
    for result in results:
        queue = by_id.get(str(result.get("Id")))
        if queue is None:
            log.warning("dlq: age result for unknown query id %r skipped", result.get("Id"))
            continue
        for stamp, value in zip(result.get("Timestamps", []), result.get("Values", []),
                                strict=False):
            try:
                number = float(value)
            except (TypeError, ValueError):
                log.warning("dlq: bad age datapoint %r for %s skipped", value, queue.arn)
                continue
            if not isinstance(stamp, datetime):
                log.warning("dlq: bad age timestamp %r for %s skipped", stamp, queue.arn)
                continue
            if queue.arn not in newest or stamp > newest[queue.arn][0]:
                newest[queue.arn] = (stamp, number)
    return {arn: value for arn, (_, value) in newest.items()}


def depth_row(ctx: CollectContext, queue: QueueRef, attributes: Mapping[str, str],
              oldest_age_s: float | None) -> dict[str, Any]:
    """One GetQueueAttributes answer -> one ``dlq_depth`` row (ValueError if unreadable)."""
    in_flight = attributes.get("ApproximateNumberOfMessagesNotVisible")
    return {
        "account_id": ctx.account.id,
        "region": ctx.region,
        "queue": queue.name,
        "queue_arn": queue.arn,
        "ts": ctx.collected_at,
        "visible": int(attributes["ApproximateNumberOfMessages"]),
        "in_flight": int(in_flight) if in_flight is not None else None,
        "oldest_age_s": oldest_age_s,
    }


# --- AWS edges -------------------------------------------------------------------------------


def _ages(ctx: CollectContext, queues: Sequence[QueueRef]) -> dict[str, float]:
    """Age of the oldest message per queue ARN from CloudWatch (missing when no datapoint)."""
    cloudwatch = ctx.client("cloudwatch")
    end = ctx.collected_at.replace(second=0, microsecond=0)
    results: list[dict[str, Any]] = []
    queries = age_queries(queues)
    for start in range(0, len(queries), MAX_QUERIES_PER_CALL):
        params: dict[str, Any] = {
            "MetricDataQueries": queries[start:start + MAX_QUERIES_PER_CALL],
            "StartTime": end - AGE_LOOKBACK, "EndTime": end,
        }
        for page in pages(cloudwatch.get_metric_data, params):
            results.extend(page.get("MetricDataResults", []))
    return newest_ages(results, queues)


def _attributes(sqs: Any, queue: QueueRef) -> dict[str, str] | None:
    """GetQueueUrl + GetQueueAttributes; None when the queue does not exist."""
    try:
        url = sqs.get_queue_url(QueueName=queue.name,
                                QueueOwnerAWSAccountId=queue.account_id)["QueueUrl"]
        answer = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(ATTRIBUTES))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in MISSING_QUEUE_CODES:
            return None
        raise
    return dict(answer.get("Attributes", {}))


def collect_dlq(ctx: CollectContext) -> dict[str, pd.DataFrame]:
    """Depth of every dead-letter queue of this account and region (see module doc)."""
    extra = ctx.settings.queues if isinstance(ctx.settings, DlqCollectorConfig) else []
    queues = queues_to_read(ctx.input("rules"), extra, ctx.account.id, ctx.region)
    if not queues:
        return {DLQ_DEPTH.name: DLQ_DEPTH.empty_frame()}
    try:
        ages = _ages(ctx, queues)
    except ClientError as error:  # the age is an extra: the depth is still worth storing
        log.warning("dlq %s %s: no oldest-message ages (%s); depth read without them",
                    ctx.account.id, ctx.region, describe_error(error))
        ages = {}
    sqs = ctx.client("sqs")
    rows: list[dict[str, Any]] = []
    for queue in queues:
        attributes = _attributes(sqs, queue)
        if attributes is None:
            log.warning("dlq %s %s: queue %s no longer exists, skipped", ctx.account.id,
                        ctx.region, queue.arn)
            continue
        try:
            rows.append(depth_row(ctx, queue, attributes, ages.get(queue.arn)))
        except (KeyError, ValueError) as error:
            log.warning("dlq %s %s: unreadable attributes of %s skipped: %s", ctx.account.id,
                        ctx.region, queue.arn, error)
    log.info("dlq %s %s: %d queue(s), %d message(s) waiting", ctx.account.id, ctx.region,
             len(rows), sum(row["visible"] for row in rows))
    frame = pd.DataFrame(rows, columns=DLQ_DEPTH.columns) if rows else DLQ_DEPTH.empty_frame()
    return {DLQ_DEPTH.name: frame}


#: A queue name no real queue has: "does not exist" proves the probed action.
PROBE_QUEUE = "orgscope-access-probe"

DLQ = Collector(
    name="dlq",
    settings=DlqCollectorConfig,
    feeds=("health",),
    fn=collect_dlq,
    datasets=(DLQ_DEPTH,),
    scope="regional",
    description="Depth and oldest-message age of every rule target's dead-letter queue.",
    iam_actions=("sqs:GetQueueUrl", "sqs:GetQueueAttributes", "cloudwatch:GetMetricData"),
    inputs=("rules",),
    probes=(
        ("sqs:GetQueueUrl", lambda ctx: ctx.client("sqs").get_queue_url(QueueName=PROBE_QUEUE)),
        ("sqs:GetQueueAttributes", lambda ctx: ctx.client("sqs").get_queue_attributes(
            QueueUrl=f"https://sqs.{ctx.region}.amazonaws.com/{ctx.account.id}/{PROBE_QUEUE}",
            AttributeNames=["ApproximateNumberOfMessages"])),
        ("cloudwatch:GetMetricData", probe_metric_data),
    ),
)
