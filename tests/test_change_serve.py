"""`orgscope serve` and the change feed: on only with ``[changes] queue_url``, only where the
org-wide steps run, and a queue it cannot read stops it before anything starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import pytest
from botocore.exceptions import ClientError

from orgscope import plugins, wiring
from orgscope.change_feed import ChangeFeed, ChangeQueueError
from orgscope.config import ConfigError
from orgscope.config_toml import write_config
from orgscope.demo import demo_config, demo_config_path
from orgscope.plugins import parse_config
from orgscope.runner import Runner
from orgscope.scheduler import change_feed
from tests.conftest import reference_data

QUEUE = "https://sqs.eu-west-1.amazonaws.com/131313131313/orgscope-changes"


def _runner(queue_url: str = QUEUE, shard: str = "1/1", sqs: Any = None) -> Runner:
    data = reference_data()
    data["changes"] = {"queue_url": queue_url}
    data["organization"]["shard"] = shard
    factory = MagicMock()
    factory.base_client.return_value = sqs or MagicMock()
    return Runner(parse_config(data), factory, MagicMock())


def test_no_queue_no_feed() -> None:
    assert change_feed(_runner(""), plugins.reread, plugins.run_steps) is None


def test_the_feed_runs_where_the_org_wide_steps_run() -> None:
    assert change_feed(_runner(shard="2/3"), plugins.reread, plugins.run_steps) is None
    feed = change_feed(_runner(shard="1/3"), plugins.reread, plugins.run_steps)
    assert isinstance(feed, ChangeFeed)
    assert feed.region == "eu-west-1"  # from the queue URL
    feed.runner.factory.base_client.assert_called_with("sqs", "eu-west-1")  # type: ignore[attr-defined]


def test_a_queue_it_cannot_read_stops_serve_with_the_reason() -> None:
    sqs = MagicMock()
    sqs.get_queue_attributes.side_effect = ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "not authorized to GetQueueAttributes"}},
        "GetQueueAttributes")
    with pytest.raises(ChangeQueueError) as raised:
        change_feed(_runner(sqs=sqs), plugins.reread, plugins.run_steps)
    assert QUEUE in str(raised.value) and "AccessDenied" in str(raised.value)


@pytest.mark.parametrize("url", ["sqs://queue", "https://sqs.us-east-1.amazonaws.com/q",
                                 "https://sqs.us-east-1.amazonaws.com/1313/orgscope"])
def test_a_queue_url_that_is_no_sqs_url_is_a_config_error(url: str) -> None:
    data = reference_data()
    data["changes"] = {"queue_url": url}
    with pytest.raises(ConfigError) as raised:
        parse_config(data)
    assert raised.value.lines == [
        f"config.toml: changes.queue_url = {url!r}: must be an SQS queue URL such as "
        "'https://sqs.us-east-1.amazonaws.com/131313131313/orgscope-changes' (the QueueUrl "
        "output of orgscope-change-queue.yaml), or empty for off"]


def test_the_demo_collects_with_the_simulators_change_queue(config_file: Path) -> None:
    url = "http://127.0.0.1:5999/123456789012/orgscope-changes"
    config = demo_config(wiring.load(config_file), "http://127.0.0.1:5999", history_hours=6,
                         change_queue_url=url)
    written = write_config(config, demo_config_path(config))
    assert written.changes.queue_url == url
    assert written.changes.queue_region("us-east-1") == "us-east-1"  # no sqs.<region>. host
    assert demo_config(wiring.load(config_file), "http://127.0.0.1:5999",
                       history_hours=6).changes.queue_url == ""
