"""DLQ collector: which queues, parsing of ARNs, ages and rows (the AWS side is integration)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from collectors.dlq import age_queries, depth_row, newest_ages, parse_queue_arn, queues_to_read
from orgscope.accounts import Account
from orgscope.collect import CollectContext, Window
from orgscope.datasets import DLQ_DEPTH

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
ORDERS = "arn:aws:sqs:us-east-1:777777777777:orders-dlq"
RULES = pd.DataFrame([
    # a central-bus rule whose target's DLQ lives in the consumer account
    {"account_id": "121212121212", "region": "us-east-1", "rule": "a",
     "dlq_arns": [ORDERS, "arn:aws:sqs:us-east-1:121212121212:forwarding-dlq"]},
    {"account_id": "777777777777", "region": "us-east-1", "rule": "b", "dlq_arns": [ORDERS]},
    {"account_id": "777777777777", "region": "us-east-1", "rule": "c", "dlq_arns": []},
    {"account_id": "777777777777", "region": "eu-west-1", "rule": "d",
     "dlq_arns": ["arn:aws:sqs:eu-west-1:777777777777:eu-dlq", "not-an-arn"]},
])


def test_parse_queue_arn() -> None:
    ref = parse_queue_arn(ORDERS)
    assert ref is not None
    assert (ref.region, ref.account_id, ref.name) == ("us-east-1", "777777777777", "orders-dlq")
    assert parse_queue_arn("arn:aws:sns:us-east-1:777777777777:topic") is None
    assert parse_queue_arn("nonsense") is None


def test_queues_of_every_account_that_live_here(caplog: pytest.LogCaptureFixture) -> None:
    extra = ["arn:aws:sqs:us-east-1:777777777777:configured"]
    found = queues_to_read(RULES, extra, "777777777777", "us-east-1")
    assert [q.name for q in found] == ["configured", "orders-dlq"]  # once each, sorted
    assert [q.name for q in queues_to_read(RULES, [], "777777777777", "eu-west-1")] == [
        "eu-dlq"]
    assert "not-an-arn" in caplog.text
    assert queues_to_read(RULES.iloc[0:0], [], "777777777777", "us-east-1") == []


def test_age_queries_and_newest_age_wins() -> None:
    queues = queues_to_read(RULES, [], "777777777777", "us-east-1")
    (query,) = age_queries(queues)
    stat = query["MetricStat"]
    assert query["Id"] == "q0" and stat["Stat"] == "Maximum"
    assert stat["Metric"]["Namespace"] == "AWS/SQS"
    assert stat["Metric"]["Dimensions"] == [{"Name": "QueueName", "Value": "orders-dlq"}]
    results = [{"Id": "q0", "Timestamps": [NOW, NOW - timedelta(minutes=1)],
                "Values": [120.0, 60.0]}, {"Id": "q9", "Timestamps": [NOW], "Values": [1.0]}]
    assert newest_ages(results, queues) == {ORDERS: 120.0}
    assert newest_ages([{"Id": "q0", "Timestamps": [], "Values": []}], queues) == {}


def test_depth_row_matches_the_contract() -> None:
    ctx = CollectContext(account=Account("777777777777", "order-processing", "orders"),
                         region="us-east-1", window=Window(NOW, NOW), collected_at=NOW,
                         client_factory=lambda s: None)
    queue = queues_to_read(RULES, [], "777777777777", "us-east-1")[0]
    row = depth_row(ctx, queue, {"ApproximateNumberOfMessages": "7",
                                 "ApproximateNumberOfMessagesNotVisible": "1"}, None)
    assert (row["visible"], row["in_flight"], row["oldest_age_s"]) == (7, 1, None)
    DLQ_DEPTH.to_table(pd.DataFrame([row], columns=DLQ_DEPTH.columns))
    with pytest.raises(KeyError):
        depth_row(ctx, queue, {}, None)
