"""The durable outbox against the local Slack sink: retries, Retry-After, exactly once."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.outbox import Delivery, Message, Outbox, RetryPolicy
from alerts.routing import SecretCache, Webhooks
from alerts.webhook import SlackPoster, classify
from sim.slack_sink import Response, SlackSink

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
FAST = RetryPolicy(max_attempts=5, backoff_s=0.2, max_backoff_s=1.0)


@pytest.fixture
def clean_sink(sink: SlackSink) -> SlackSink:
    sink.clear()
    return sink


def message(message_id: str = "msg-1", channel: str = "HOOK") -> Message:
    return Message(id=message_id, channel=channel, kind="firing", alert_key="k",
                   payload={"text": f"hello {message_id}", "blocks": []}, created_at=T0)


def poster(sink: SlackSink, **env: str) -> SlackPoster:
    return SlackPoster(Webhooks(None, {"HOOK": sink.webhook(), **env}), timeout_s=2)


def test_429_with_retry_after_then_500_then_ok_delivers_exactly_once(
        tmp_path: Path, clean_sink: SlackSink) -> None:
    clean_sink.script(Response(429, "rate_limited", {"Retry-After": "1"}),
                      Response(500, "oops"))
    outbox = Outbox(tmp_path)
    recorded: list[Message] = []
    assert outbox.enqueue(message())
    started = time.monotonic()
    report = outbox.drain(poster(clean_sink), recorded.append, FAST, max_wait_s=10)
    waited = time.monotonic() - started
    assert report.sent == ["msg-1"] and report.attempts == 3 and not report.waiting
    assert waited >= 1.0  # Retry-After honoured
    assert [r.status for r in clean_sink.received()] == [429, 500, 200]
    assert [r.payload["text"] for r in clean_sink.delivered()] == ["hello msg-1"]
    # every attempt recorded; the last one as sent, with its attempt count
    assert [(m.status, m.attempts) for m in recorded] == [("pending", 1), ("pending", 2),
                                                          ("sent", 3)]
    assert "HTTP 429" in str(recorded[0].last_error)
    # a second drain and a second enqueue of the same id post nothing more
    assert not outbox.enqueue(message())
    assert outbox.drain(poster(clean_sink), recorded.append, FAST, max_wait_s=1).attempts == 0
    assert len(clean_sink.received()) == 3
    assert outbox.get("msg-1") is not None and outbox.where("msg-1") == "sent"


def test_a_429_holds_back_the_channels_other_messages(tmp_path: Path,
                                                      clean_sink: SlackSink) -> None:
    clean_sink.script(Response(429, "rate_limited", {"Retry-After": "1"}))
    outbox = Outbox(tmp_path)
    outbox.enqueue(message("msg-a"))
    outbox.enqueue(message("msg-b"))
    report = outbox.drain(poster(clean_sink), lambda m: None, FAST, max_wait_s=10)
    assert sorted(report.sent) == ["msg-a", "msg-b"]
    times = [r.at for r in clean_sink.received()]
    assert len(times) == 3 and (times[1] - times[0]).total_seconds() >= 0.9


def test_retries_wait_beyond_the_budget_stay_pending(tmp_path: Path,
                                                     clean_sink: SlackSink) -> None:
    clean_sink.script(Response(429, "rate_limited", {"Retry-After": "30"}))
    outbox = Outbox(tmp_path)
    outbox.enqueue(message())
    report = outbox.drain(poster(clean_sink), lambda m: None, FAST, max_wait_s=0.5)
    assert report.waiting == ["msg-1"] and report.sent == []
    [waiting] = outbox.messages("pending")
    assert waiting.attempts == 1 and waiting.next_attempt_at is not None


def test_unset_webhook_and_4xx_fail_at_once_timeouts_retry(tmp_path: Path,
                                                           clean_sink: SlackSink) -> None:
    outbox = Outbox(tmp_path)
    outbox.enqueue(message("msg-unset", channel="NOT_SET_ANYWHERE"))
    clean_sink.script(Response(404, "no_service"))
    outbox.enqueue(message("msg-404"))
    recorded: list[Message] = []
    report = outbox.drain(poster(clean_sink), recorded.append, FAST, max_wait_s=1)
    assert sorted(report.failed) == ["msg-404", "msg-unset"]
    errors = {m.id: m.last_error for m in recorded}
    assert "$NOT_SET_ANYWHERE is not set" in str(errors["msg-unset"])
    assert "HTTP 404: no_service" in str(errors["msg-404"])
    assert classify(503, "", {}).outcome == "retry"
    assert classify(429, "", {"retry-after": "7"}).retry_after_s == 7.0


def test_a_refused_secret_webhook_is_read_again_before_the_message_fails(
        clean_sink: SlackSink) -> None:
    """A webhook replaced in Secrets Manager (the old one revoked: 404) is read again at once
    rather than failing every message until the cached value's TTL runs out."""
    values = [clean_sink.webhook("old"), clean_sink.webhook("new")]
    cache = SecretCache(lambda secret_id: values.pop(0), ttl_s=3600)
    post = SlackPoster(Webhooks(cache), timeout_s=2)
    assert cache.get("orgscope/slack") == clean_sink.webhook("old")
    clean_sink.script(Response(404, "no_service"))
    assert post("secret:orgscope/slack", {"text": "hi"}).outcome == "sent"
    assert [(r.path, r.status) for r in clean_sink.received()] == [
        ("/services/old", 404), ("/services/new", 200)]
    # the same answer from an unchanged secret fails, after one read of it
    values.append(clean_sink.webhook("new"))
    clean_sink.script(Response(404, "no_service"))
    assert post("secret:orgscope/slack", {"text": "hi"}).outcome == "failed"
    assert len(clean_sink.received()) == 3 and values == []


def test_gives_up_after_max_attempts(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    outbox.enqueue(message())
    calls: list[str] = []

    def always_500(channel: str, payload: dict[str, object]) -> Delivery:
        calls.append(channel)
        return Delivery("retry", "HTTP 500: oops")

    report = outbox.drain(always_500, lambda m: None,
                          RetryPolicy(max_attempts=3, backoff_s=0.01, max_backoff_s=0.01),
                          max_wait_s=5)
    assert report.failed == ["msg-1"] and len(calls) == 3
    failed = outbox.get("msg-1")
    assert failed is not None and "gave up after 3 attempts" in str(failed.last_error)


def test_a_429_does_not_spend_the_attempts_that_give_up(tmp_path: Path) -> None:
    """Slack said when to come back: rate limiting past max_attempts must not drop a message
    (what Cloud Custodian's mailer does); only 5xx, timeouts and connection errors count."""
    outbox = Outbox(tmp_path)
    outbox.enqueue(message())
    answers = [Delivery("retry", "HTTP 429: rate_limited", 1.0)] * 5 + \
        [Delivery("retry", "HTTP 500: oops"), Delivery("sent")]
    moment = [T0]

    def post(channel: str, payload: dict[str, object]) -> Delivery:
        return answers.pop(0)

    def sleep(seconds: float) -> None:
        moment[0] += timedelta(seconds=seconds)

    report = outbox.drain(post, lambda m: None,
                          RetryPolicy(max_attempts=3, backoff_s=0.01, max_backoff_s=0.01),
                          max_wait_s=60, clock=lambda: moment[0], sleep=sleep)
    assert report.sent == ["msg-1"] and not report.failed and answers == []
    sent = outbox.get("msg-1")
    assert sent is not None and sent.attempts == 7


def test_recover_finishes_an_interrupted_move_and_unrecorded_rows(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    sent = Message(**{**message().__dict__, "status": "sent", "attempts": 1})
    outbox._write("sent", sent)  # the crash fell between writing sent/ and removing pending/
    outbox._write("pending", message())
    recorded: list[Message] = []
    outbox.recover(recorded.append)
    assert outbox.messages("pending") == []
    assert [m.status for m in recorded] == ["sent"]
    outbox.recover(recorded.append)
    assert len(recorded) == 1  # recorded once


def test_prune_drops_only_old_recorded_deliveries(tmp_path: Path) -> None:
    from datetime import timedelta

    outbox = Outbox(tmp_path)
    old = Message(**{**message("old").__dict__, "status": "sent", "recorded": True})
    unrecorded = Message(**{**message("unrec").__dict__, "status": "sent"})
    outbox._write("sent", old)
    outbox._write("sent", unrecorded)
    outbox.enqueue(message("waiting"))
    assert outbox.prune(T0 + timedelta(days=1)) == 1
    assert outbox.where("old") is None
    assert outbox.where("unrec") == "sent" and outbox.where("waiting") == "pending"
    assert outbox.prune(T0) == 0


def test_a_timeout_is_retried(tmp_path: Path, clean_sink: SlackSink) -> None:
    clean_sink.script(Response(200, "ok", delay_s=2.5))  # slower than the POST's timeout
    outbox = Outbox(tmp_path)
    outbox.enqueue(message())
    recorded: list[Message] = []
    slow = SlackPoster(Webhooks(None, {"HOOK": clean_sink.webhook()}), timeout_s=1)
    report = outbox.drain(slow, recorded.append, FAST, max_wait_s=5)
    assert report.sent == ["msg-1"] and report.attempts == 2
    assert "timed out" in str(recorded[0].last_error).lower()
    # Slack may have taken the first POST before it timed out: docs/alerts.md says so
    assert len(clean_sink.received()) == 2
