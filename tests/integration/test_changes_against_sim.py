"""Change events against the simulated organization: a rule disabled through the API is in
``rule_changes``, the latest ``rules`` view and a DISABLED verdict after one poll of the change
queue, with who disabled it in the Slack message, and no full inventory run in between.

One simulator for the module, with the change-event rules and queue deployed (sim/build.py);
its CloudTrail middleware (sim/trail.py) emits the events, moto's EventBridge forwards them
across accounts into the queue. The tests run in file order and share its state.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from orgscope import plugins, wiring
from orgscope.change_feed import ChangeFeed, ChangeQueueError
from orgscope.config import Config
from orgscope.runner import Runner
from sim.slack_sink import SlackSink
from tests.simulated import Org, simulated_org

pytestmark = pytest.mark.integration

Key = tuple[str, str, str]
DISABLED: Key = ("555555555555", "default", "large-orders-to-merchant")
BY_PIPELINE: Key = ("666666666666", "default", "order-placed-to-inventory")
REGION = "us-east-1"
#: Who the simulator's faults and platform team act as (sim/admin.py).
ADMIN_ARN = "assumed-role/OrganizationAccountAccessRole/quickgrocer-sim"


@dataclass
class Changes:
    org: Org
    config: Config
    runner: Runner
    feed: ChangeFeed
    sink: SlackSink

    def disable(self, key: Key) -> None:
        account, bus, rule = key
        self.org.sim.admin.client(account, "events").disable_rule(Name=rule, EventBusName=bus)

    def inventory_runs(self) -> list[dict[str, object]]:
        return self.org.query("select account_id, api_calls, started_at from runs "
                              "where collector = 'inventory' order by started_at")

    def feed_for(self, config: Config) -> ChangeFeed:
        return ChangeFeed(Runner(config, self.runner.factory, self.runner.store),
                          plugins.reread, plugins.run_steps)


def _where(key: Key) -> str:
    return f"account_id = '{key[0]}' and bus = '{key[1]}' and rule = '{key[2]}'"


@pytest.fixture(scope="module")
def changes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Changes]:
    sink = SlackSink()
    sink.start()
    with simulated_org(tmp_path_factory.mktemp("changes"), {'backfill = "2d"': 'backfill = "1h"'},
                       change_events=True) as org, pytest.MonkeyPatch.context() as patch:
        loaded = wiring.load(org.config_path)
        for name in {loaded.slack.default_webhook_env,
                     *(r.webhook_env for r in loaded.slack.routes if r.webhook_env)}:
            patch.setenv(name, sink.webhook(name))
        queue_url = org.sim.deployment.change_queue_url
        assert queue_url
        config = loaded.model_copy(update={"changes": loaded.changes.model_copy(
            update={"queue_url": queue_url, "wait_s": 1})})
        runner = Runner(config, wiring.session_factory(config), wiring.open_store(config))
        feed = ChangeFeed(runner, plugins.reread, plugins.run_steps)
        feed.check()
        # the build's own last changes (each forwarder's PutTargets) come first: no inventory
        # has read those accounts yet, so they are recorded and nothing is re-read
        while feed.poll_once().received:
            pass
        # traffic up to now, inventory and metrics read, so the health model judges
        org.sim.tick(datetime.now(UTC) + timedelta(minutes=1))
        for name in ("inventory", "metrics"):
            cycle = runner.run_cycle([plugins.collector(name)])
            assert cycle.failed == [], [r.error for r in cycle.failed]
        plugins.run_steps(runner, ["inventory"])
        try:
            yield Changes(org, config, runner, feed, sink)
        finally:
            sink.stop()


def test_the_builds_forwarders_were_recorded_without_a_reread(changes: Changes) -> None:
    rows = changes.org.query("select account_id, rule, event_name from rule_changes "
                             "where rule = 'orgscope-change-forwarder'")
    accounts = {a.id for a in changes.config.accounts}
    assert {str(r["account_id"]) for r in rows} == accounts
    assert {str(r["event_name"]) for r in rows} == {"PutTargets"}


def test_a_disabled_rule_is_seen_after_one_poll_naming_who_disabled_it(
        changes: Changes) -> None:
    before = changes.inventory_runs()
    changes.disable(DISABLED)
    result = changes.feed.poll_once()

    assert [(c.event_name, c.rule) for c in result.changes] == [("DisableRule", DISABLED[2])]
    (row,) = changes.org.query(f"select * from rule_changes where {_where(DISABLED)}")
    who = str(row["principal_arn"])
    assert who == f"arn:aws:sts::{DISABLED[0]}:{ADMIN_ARN}"
    assert row["principal_type"] == "AssumedRole"
    (rule,) = changes.org.query(f"select state from rules where {_where(DISABLED)}")
    assert rule["state"] == "DISABLED"
    (verdict,) = changes.org.query(f"select verdict from rule_health where {_where(DISABLED)}")
    assert verdict["verdict"] == "DISABLED"
    # no full inventory: one run, in that account and region, of three calls
    new = changes.inventory_runs()[len(before):]
    assert [(r["account_id"], r["api_calls"]) for r in new] == [(DISABLED[0], 3)]
    # the other rules of the organization are still there, as the inventory saw them (the
    # forwarders too; the queue's own rule is in an account orgscope does not watch)
    watched = {a.id for a in changes.config.accounts}
    total = changes.org.query("select count(*) as n from rules")[0]["n"]
    assert total == len(changes.org.sim.deployment.rules) + len(
        [r for r in changes.org.sim.deployment.change_rules if r[0] in watched])

    key = "rule_disabled/" + "/".join((DISABLED[0], REGION, *DISABLED[1:]))
    (firing,) = changes.org.query(
        f"select status, payload from notifications where alert_key = '{key}' "
        "and kind = 'firing'")
    assert firing["status"] == "sent"
    text = json.dumps(json.loads(str(firing["payload"])))
    assert f"disabled by {who}" in text
    assert any(f"disabled by {who}" in json.dumps(r.payload) for r in changes.sink.delivered())


def test_auto_heal_leaves_alone_a_rule_an_ignored_principal_changed(changes: Changes) -> None:
    heal = changes.config.heal.model_copy(update={
        "enabled": True, "dry_run": True,
        "ignore_principals": ["arn:aws:sts::*:assumed-role/OrganizationAccountAccessRole/*"]})
    feed = changes.feed_for(changes.config.model_copy(update={"heal": heal}))
    changes.disable(BY_PIPELINE)
    assert [c.rule for c in feed.poll_once().changes] == [BY_PIPELINE[2]]
    (row,) = changes.org.query(f"select * from heal_actions where {_where(BY_PIPELINE)}")
    assert row["action"] == "skip"
    assert str(row["reason"]).startswith("ignored-principal: last changed by arn:aws:sts::")
    assert str(row["disabled_by"]).endswith(ADMIN_ARN)
    assert row["disabled_at"] is not None


def test_a_message_that_is_no_change_event_is_skipped_and_deleted(changes: Changes) -> None:
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=changes.org.endpoint)
    sqs.send_message(QueueUrl=changes.config.changes.queue_url, MessageBody="{not json")
    result = changes.feed.poll_once()
    assert (result.received, result.skipped, result.changes) == (1, 1, [])
    assert changes.feed.poll_once().received == 0


def test_a_queue_orgscope_cannot_read_is_a_clear_error_at_start(changes: Changes) -> None:
    url = changes.config.changes.queue_url.rsplit("/", 1)[0] + "/no-such-queue"
    config = changes.config.model_copy(update={"changes": changes.config.changes.model_copy(
        update={"queue_url": url})})
    with pytest.raises(ChangeQueueError, match="no-such-queue"):
        changes.feed_for(config).check()


def test_a_failed_reread_keeps_its_message_in_the_queue(changes: Changes) -> None:
    """Last in the module: the kept message shows again after the visibility timeout."""
    key: Key = ("888888888888", "default", "order-events-to-delivery")
    changes.org.sim.withhold_actions(key[0], ["events:DescribeRule"])
    try:
        changes.disable(key)
        result = changes.feed.poll_once()
    finally:
        changes.org.sim.repair_account(key[0])
    assert (result.received, result.failed, result.changes) == (1, 1, [])
    assert changes.org.query(f"select * from rule_changes where {_where(key)}") == []
    (run,) = changes.org.query("select status, error from runs where collector = 'inventory' "
                               f"and account_id = '{key[0]}' order by started_at desc limit 1")
    assert run["status"] == "error" and "events:DescribeRule" in str(run["error"])
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=changes.org.endpoint)
    attributes = sqs.get_queue_attributes(
        QueueUrl=changes.config.changes.queue_url,
        AttributeNames=["ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"
