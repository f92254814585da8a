"""The Alerts page's data layer on a tmp store filled like a short bad night."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from alerts.silences import create_silence, expire_silence
from dashboard import alerts_data as ad
from dashboard.filters import Filters
from orgscope.store import Store
from testkit.alerts_sample import (
    EXPIRED_SILENCE_ID,
    FIRING_KEY,
    FIRING_RULE,
    OPTED_OUT_RULE,
    PENDING_KEY,
    RESOLVED_KEY,
    SILENCE_ID,
    SILENCED_KEY,
    fill_alerts,
    firing_payload,
)
from testkit.hostile import export_problems, shown


@pytest.fixture
def store(empty_store: Store, now: datetime) -> Store:
    fill_alerts(empty_store, now)
    return empty_store


def test_an_empty_store_has_no_alerts_recorded(empty_store: Store, now: datetime) -> None:
    assert not ad.alerts_recorded(empty_store)
    assert ad.active_alerts(empty_store, Filters(), now).empty
    assert ad.silences(empty_store, now).empty
    assert ad.heal_log(empty_store, Filters(), now).empty


def test_firing_first_then_pending_most_severe_first(store: Store, now: datetime) -> None:
    assert ad.alerts_recorded(store)
    active = ad.active_alerts(store, Filters(), now)
    assert list(active["key"]) == [FIRING_KEY, SILENCED_KEY, PENDING_KEY]
    assert list(active["state"]) == ["firing", "firing", "pending"]
    firing = active.iloc[0]
    assert (firing["account_name"], firing["team"], firing["bus"], firing["rule"]) == \
        ("event-bus", "platform", "central-bus", FIRING_RULE)
    assert firing["for_s"] == pytest.approx(20 * 60, abs=2)
    assert active.set_index("key").loc[PENDING_KEY, "for_s"] == pytest.approx(4 * 60, abs=2)
    assert list(active["silenced"]) == [False, True, False]
    assert active.iloc[1]["silences"] == [SILENCE_ID]


def test_filters_narrow_by_the_alerts_own_labels(store: Store, now: datetime) -> None:
    by_team = ad.active_alerts(store, Filters(teams=("payments",)), now)
    assert list(by_team["key"]) == [PENDING_KEY]
    by_account = ad.active_alerts(store, Filters(account_ids=("888888888888",)), now)
    assert list(by_account["key"]) == [SILENCED_KEY]
    assert ad.active_alerts(store, Filters(regions=("eu-west-1",)), now).empty


def test_resolved_alerts_within_the_time_range(store: Store, now: datetime) -> None:
    assert list(ad.resolved_alerts(store, Filters(time_range="24h"), now)["key"]) == \
        [RESOLVED_KEY]
    assert ad.resolved_alerts(store, Filters(time_range="1h"), now).empty


def test_the_latest_state_of_an_alert_wins(store: Store, now: datetime) -> None:
    row = ad.alert_by_key(store, FIRING_KEY, now).iloc[0].to_dict()
    row.update(state="resolved", resolved_at=now, updated_at=now + timedelta(seconds=1))
    columns = [c for c in row if c not in ("silences", "silenced", "for_s")]
    store.write("alerts", pd.DataFrame([row], columns=columns), "alerts-test-0002")
    assert FIRING_KEY not in set(ad.active_alerts(store, Filters(), now)["key"])
    assert ad.alert_by_key(store, FIRING_KEY, now).iloc[0]["state"] == "resolved"
    assert ad.alert_by_key(store, "no-such-key", now).empty


def test_history_and_messages_of_one_alert(store: Store) -> None:
    events = ad.alert_events(store, RESOLVED_KEY)
    assert list(events["state"]) == ["pending", "firing", "resolved"]
    sent = ad.alert_notifications(store, FIRING_KEY)
    assert list(sent["kind"]) == ["firing"]
    assert (sent.iloc[0]["status"], sent.iloc[0]["attempts"]) == ("sent", 3)
    assert json.loads(sent.iloc[0]["payload"])["blocks"][0]["type"] == "header"


def test_a_grouped_message_shows_on_every_member(store: Store, now: datetime) -> None:
    fired = ad.alert_by_key(store, FIRING_KEY, now).iloc[0]["fired_at"]
    other = "rule_disabled/121212121212/us-east-1/central-bus/archive-all-events"
    rows = [
        {"id": "grp-1", "alert_key": other, "kind": "firing", "channel": "platform-oncall",
         "status": "sent", "attempts": 1, "last_error": None, "created_at": fired,
         "sent_at": fired, "payload": json.dumps({"text": "[CRITICAL] 3 alerts in event-bus "
                                                          "(121212121212)"})},
        # same moment, another account: not this alert's
        {"id": "grp-2", "alert_key": "x", "kind": "firing", "channel": "c", "status": "sent",
         "attempts": 1, "last_error": None, "created_at": fired, "sent_at": fired,
         "payload": json.dumps({"text": "3 alerts in payment-service (999999999999)"})},
        # this account, another moment: not this alert's either
        {"id": "grp-3", "alert_key": other, "kind": "firing", "channel": "c", "status": "sent",
         "attempts": 1, "last_error": None, "created_at": fired + timedelta(minutes=1),
         "sent_at": fired, "payload": json.dumps({"text": "3 alerts in (121212121212)"})},
    ]
    store.write("notifications", pd.DataFrame(rows), "alerts-test-0003")
    sent = ad.alert_notifications(store, FIRING_KEY, "121212121212")
    assert list(sent["id"]) == ["grp-1", "ntf-firing-1"]
    assert list(sent["grouped"]) == [True, False]


def test_delivery_summary_counts_messages_by_status(store: Store, now: datetime) -> None:
    summary = ad.delivery_summary(store, now - timedelta(days=1)).set_index("status")
    assert summary.loc["sent", "messages"] == 3 and summary.loc["failed", "messages"] == 1
    assert summary.loc["sent", "attempts"] == 5


def test_silences_active_first_with_their_status(store: Store, now: datetime) -> None:
    frame = ad.silences(store, now)
    assert list(frame["id"]) == [SILENCE_ID, EXPIRED_SILENCE_ID]
    assert list(frame["status"]) == ["active", "expired"]
    assert frame.iloc[0]["matchers"] == {"account_id": "888888888888",
                                         "alert_name": "dlq_depth"}


def test_a_silence_created_and_expired_through_alerts_core(store: Store, now: datetime) -> None:
    active = ad.active_alerts(store, Filters(), now)
    firing = active.iloc[0].to_dict()
    matchers = ad.matchers_from_alert(firing, ["account_id", "rule", "service"])
    assert matchers == {"account_id": "121212121212", "rule": FIRING_RULE}  # null left out
    assert ad.silence_matches(matchers, active) == [FIRING_KEY]
    silence_id = create_silence(store, matchers, now + timedelta(hours=2), "local:sre",
                                "rule disabled on purpose", now=now)
    frame = ad.silences(store, now).set_index("id")
    assert frame.loc[silence_id, "status"] == "active"
    assert frame.loc[silence_id, "created_by"] == "local:sre"
    expire_silence(store, silence_id, "local:sre", now=now + timedelta(minutes=1))
    later = ad.silences(store, now + timedelta(minutes=2)).set_index("id")
    assert later.loc[silence_id, "status"] == "expired"
    assert len(later) == 3


def test_a_silence_that_ran_out_is_ended_not_expired(store: Store, now: datetime) -> None:
    frame = ad.silences(store, now + timedelta(hours=4)).set_index("id")
    assert frame.loc[SILENCE_ID, "status"] == "ended"


def test_heal_log_newest_first_and_filtered(store: Store, now: datetime) -> None:
    log = ad.heal_log(store, Filters(), now)
    assert list(log["id"]) == ["heal-3", "heal-2", "heal-1"]
    assert log.iloc[2]["disabled_by"].endswith("assumed-role/Admin/jo")
    # the organization-wide maintenance skip has no team: a team filter leaves it out
    assert list(ad.heal_log(store, Filters(teams=("partners",)), now)["rule"]) == \
        [OPTED_OUT_RULE]
    assert ad.heal_log(store, Filters(time_range="1h"), now)["id"].tolist() == \
        ["heal-3", "heal-2"]


def test_heal_csv_round_trips(store: Store, now: datetime) -> None:
    log = ad.heal_log(store, Filters(), now)
    back = pd.read_csv(io.BytesIO(ad.heal_csv(log)))
    assert list(back.columns) == list(log.columns)
    assert back.iloc[2]["result"] == "enabled" and back.iloc[2]["at"].endswith("+00:00")


def test_the_slack_message_reads_as_it_was_sent(now: datetime) -> None:
    message = ad.slack_message(json.dumps(firing_payload(now)), "http://localhost:8501")
    assert message.problem is None
    assert message.markdown.startswith(f"#### CRITICAL: rule {FIRING_RULE} is disabled")
    assert "**What**: rule `order-placed-to-orders`" in message.markdown
    assert "- **Account**  \nevent-bus (121212121212)" in shown(message.markdown)
    assert "is DISABLED  \n**Why**" in message.markdown
    assert f"[Open in orgscope](http://localhost:8501/alerts?alert={FIRING_KEY})" in \
        message.markdown
    assert shown(message.fallback).startswith(":red_circle: CRITICAL")


def test_only_links_into_the_dashboard_are_links(now: datetime) -> None:
    """A stored button to another host (or any button, without a base URL) shows its label
    and its URL as text."""
    payload = firing_payload(now)
    assert "](" not in ad.slack_message(json.dumps(payload)).markdown
    payload["blocks"][-1]["elements"][0]["url"] = "http://localhost:8501.evil.example/x"
    elsewhere = ad.slack_message(json.dumps(payload), "http://localhost:8501").markdown
    assert "](" not in elsewhere and "Open in orgscope (http" in shown(elsewhere)


def test_slack_attachments_text_only_and_bad_payloads() -> None:
    coloured = ad.slack_message(json.dumps({"attachments": [
        {"color": "#d6453d", "blocks": [{"type": "divider"}], "text": "see <https://x.io|x>"}]}))
    assert coloured.colour == "#d6453d"
    # text, not a link (a word joiner breaks GFM's autolink of the URL)
    assert coloured.markdown == "---\n\nsee x \\(https:\u2060//x.io\\)"
    assert ad.slack_message('{"text": "*down* &amp; out"}').markdown == "**down** \\& out"
    assert ad.slack_message("not json").problem is not None
    assert ad.slack_message("[1]").problem == "the stored payload is not a JSON object"


def test_mrkdwn_keeps_snake_case_and_code() -> None:
    assert ad.mrkdwn_to_markdown("rule_disabled *x* ~y~") == "rule_disabled **x** ~~y~~"


def test_parse_matchers() -> None:
    assert ad.parse_matchers("team=payments\naccount_id = 9*, ") == \
        {"team": "payments", "account_id": "9*"}
    with pytest.raises(ValueError, match="label=pattern"):
        ad.parse_matchers("team payments")


@pytest.mark.parametrize(("value", "ids"), [
    (None, []), ("", []), ("sil-1", ["sil-1"]), ("sil-1, sil-2", ["sil-1", "sil-2"]),
    ('["sil-1","sil-2"]', ["sil-1", "sil-2"]), ("[broken", []),
])
def test_silenced_by_is_read_as_json_or_a_list(value: str | None, ids: list[str]) -> None:
    assert ad.silence_ids(value) == ids


def test_a_silence_ends_after_its_duration_or_at_the_time_given(now: datetime) -> None:
    assert ad.silence_end(now, timedelta(hours=4), None) == now + timedelta(hours=4)
    naive = datetime(2030, 1, 2, 3, 4)
    assert ad.silence_end(now, timedelta(hours=4), naive) == naive.replace(tzinfo=UTC)


def test_grouped_messages_of_one_evaluation_show_on_their_members(empty_store: Store) -> None:
    """What the alerting step writes: the messages of one evaluation are stamped a microsecond
    apart (their sending order), so the second account's grouped message is not created at the
    exact moment of its alerts' transitions; it must still show on each of them."""
    from alerts.step import run_alerts
    from tests.alerts.alert_frames import NOW, ORDERS, PAYMENTS, config, health, verdict

    rows = [verdict(f"rule-{i}", "DISABLED", account_id=account)
            for account in (ORDERS, PAYMENTS) for i in range(3)]
    empty_store.write("rule_health", health(*rows), "health-1")
    run_alerts(config(), empty_store, now=NOW, deliver=False)
    groups = empty_store.query("SELECT id FROM notifications WHERE id LIKE 'grp-%'")
    assert len(groups) == 2
    for account in (ORDERS, PAYMENTS):
        for i in range(3):
            key = f"rule_disabled/{account}/us-east-1/central-bus/rule-{i}"
            sent = ad.alert_notifications(empty_store, key, account)
            assert len(sent) == 1 and sent.iloc[0]["id"].startswith("grp-"), (key, sent)


def test_heal_csv_quotes_formula_cells(store: Store, now: datetime) -> None:
    log = ad.heal_log(store, Filters(), now).assign(reason="=HYPERLINK(\"http://x\")",
                                                      rule="-1+1", disabled_by="@SUM(1)")
    back = pd.read_csv(io.BytesIO(ad.heal_csv(log)), dtype=str, keep_default_na=False)
    assert export_problems(back.to_numpy().ravel()) == []
    assert back.iloc[0]["reason"] == "'=HYPERLINK(\"http://x\")"
