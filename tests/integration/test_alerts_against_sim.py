"""Alerts against the simulated organization and the local Slack sink.

One simulator for the module; the tests run in file order and share its state. Only the
inventory is collected: without metrics every verdict is STALE, which holds the metric alerts
and leaves rule_disabled (the inventory's word) to be judged. A rule
disabled through the EventBridge API raises one Slack message with its labels at the next
collection (as `orgscope serve` runs it: a cycle, then the steps it triggers), nothing more
while it stays disabled, and one resolved message once it is enabled again.
(The auto-heal helper's end-to-end test drives the heal notice between the two.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from orgscope import plugins, wiring
from orgscope.plugins import run_steps
from orgscope.runner import Runner
from sim.slack_sink import SlackSink
from tests.simulated import Org, simulated_org

pytestmark = pytest.mark.integration

ACCOUNT, BUS, RULE = "666666666666", "default", "order-placed-to-inventory"
KEY = f"rule_disabled/{ACCOUNT}/us-east-1/{BUS}/{RULE}"


@dataclass
class Alerting:
    org: Org
    runner: Runner
    sink: SlackSink

    def collect(self, *names: str) -> dict[str, str | None]:
        """A cycle of ``names``, then the steps it triggers (health ... alerts)."""
        cycle = self.runner.run_cycle([plugins.collector(name) for name in names])
        assert cycle.failed == [], [r.error for r in cycle.failed]
        return run_steps(self.runner, names)

    def events(self) -> object:
        return self.org.sim.admin.client(ACCOUNT, "events")

    def about_rule(self) -> list[dict[str, object]]:
        return [r.payload for r in self.sink.delivered() if RULE in json.dumps(r.payload)]


@pytest.fixture(scope="module")
def alerting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alerting]:
    sink = SlackSink()
    sink.start()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("ORGSCOPE_SLACK_WEBHOOK", sink.webhook("default"))
            patch.setenv("ORGSCOPE_SLACK_WEBHOOK_PAYMENTS", sink.webhook("payments"))
            with simulated_org(tmp_path_factory.mktemp("alerts"),
                               replace={'backfill = "2d"': 'backfill = "1h"'}) as org:
                config = wiring.load(org.config_path)
                runner = Runner(config, wiring.session_factory(config),
                                wiring.open_store(config))
                alerting = Alerting(org, runner, sink)
                # the inventory alone: rule_disabled is the inventory's word, so the metrics
                # (their verdicts STALE here) are not needed, and they are the slow part
                summaries = alerting.collect("inventory")
                assert summaries["alerts"] is not None, "the alerts step failed"
                yield alerting
    finally:
        sink.stop()


def test_disabling_a_rule_sends_one_message_with_its_labels(alerting: Alerting) -> None:
    assert alerting.about_rule() == []  # a healthy rule: nothing said
    alerting.events().disable_rule(Name=RULE, EventBusName=BUS)  # type: ignore[attr-defined]
    summaries = alerting.collect("inventory")
    assert summaries["alerts"] is not None and "1 messages queued" in summaries["alerts"], \
        summaries
    [message] = alerting.about_rule()
    assert str(message["text"]).startswith("[CRITICAL] Rule disabled: rule " + RULE)
    body = json.dumps(message)
    for label in (ACCOUNT, "inventory-mgmt", "us-east-1", "*Team*\\ninventory",
                  f"*Bus*\\n{BUS}", f"*Rule*\\n{RULE}",
                  f"?account={ACCOUNT}&region=us-east-1&bus={BUS}&rule={RULE}"):
        assert label in body, label
    # later collections while it stays disabled say nothing more
    alerting.collect("inventory")
    assert len(alerting.about_rule()) == 1
    [row] = alerting.org.query(f"select state, team, account_name from alerts "
                               f"where key = '{KEY}'")
    assert row == {"state": "firing", "team": "inventory", "account_name": "inventory-mgmt"}


def test_enabling_it_again_sends_one_resolved_message(alerting: Alerting) -> None:
    alerting.events().enable_rule(Name=RULE, EventBusName=BUS)  # type: ignore[attr-defined]
    alerting.collect("inventory")
    alerting.collect("inventory")
    messages = alerting.about_rule()
    assert [str(m["text"]).split(":")[0] for m in messages] == [
        "[CRITICAL] Rule disabled", "[RESOLVED] Rule disabled"]
    events = alerting.org.query(f"select state from alert_events where key = '{KEY}' "
                                "order by \"at\"")
    assert [e["state"] for e in events] == ["firing", "resolved"]
    sent = alerting.org.query(f"select kind, status from notifications where alert_key = "
                              f"'{KEY}' order by created_at")
    assert sent == [{"kind": "firing", "status": "sent"}, {"kind": "resolved", "status": "sent"}]


def test_a_route_to_a_secrets_manager_webhook(alerting: Alerting) -> None:
    """The webhook read from Secrets Manager through the session factory (orgscope's own
    credentials: the secret lives where orgscope runs), once per TTL."""
    from alerts.step import run_alerts
    from orgscope.config import SlackRoute
    from orgscope.health.update import update_rule_health

    config = alerting.runner.config
    secrets = alerting.runner.factory.base_client("secretsmanager", "us-east-1")
    secrets.create_secret(Name="orgscope/slack/inventory",
                          SecretString=json.dumps({"url": alerting.sink.webhook("from-secret")}))
    routed = config.model_copy(update={"slack": config.slack.model_copy(update={"routes": [
        SlackRoute(team="inventory", webhook_secret="orgscope/slack/inventory")]})})
    alerting.events().disable_rule(Name=RULE, EventBusName=BUS)  # type: ignore[attr-defined]
    cycle = alerting.runner.run_cycle([plugins.collector("inventory")])
    assert cycle.failed == []
    update_rule_health(routed, alerting.runner.store)
    run = run_alerts(routed, alerting.runner.store, alerting.runner.factory, max_wait_s=5)
    assert run.delivery is not None and len(run.delivery.sent) == 1, run.summary()
    [message] = [r for r in alerting.sink.delivered() if r.path == "/services/from-secret"]
    assert str(message.payload["text"]).startswith("[CRITICAL] Rule disabled: rule " + RULE)
    [row] = alerting.org.query("select channel from notifications where status = 'sent' "
                               "order by created_at desc limit 1")
    assert row == {"channel": "secret:orgscope/slack/inventory"}  # the name, never the URL
