"""Outbox faults: files that are not messages, an enqueue racing a drain, a process killed
with SIGKILL at a chosen point (docs/alerts.md, "Outbox: delivery guarantees")."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.outbox import Delivery, Message, Outbox, RetryPolicy
from sim.slack_sink import SlackSink
from tests.alerts.test_outbox import FAST, T0, message, poster

ROOT = Path(__file__).resolve().parents[2]

NOT_MESSAGES = {
    "not-json": "{this is not json",
    "a-list": "[1, 2, 3]",
    "missing-fields": '{"id": "missing-fields"}',
    "bad-payload": message("bad-payload").to_json().replace('"payload": {', '"payload": ["x"], '
                                                            '"was": {'),
    "wrong-id": message("someone-else").to_json(),
    "bad-date": message("bad-date").to_json().replace(T0.isoformat(), "tuesday"),
}


def test_files_that_are_not_messages_are_set_aside_and_the_rest_delivered(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    outbox = Outbox(tmp_path)
    outbox.enqueue(message("good-1"))
    for name, text in NOT_MESSAGES.items():
        (outbox.folder("pending") / f"{name}.json").write_text(text)
    outbox.enqueue(message("good-2"))
    posted: list[str] = []

    def post(channel: str, payload: dict[str, object]) -> Delivery:
        posted.append(str(payload["text"]))
        return Delivery("sent")

    with caplog.at_level(logging.WARNING, logger="alerts.outbox"):
        report = outbox.drain(post, lambda m: None, FAST, max_wait_s=1)
    assert sorted(report.sent) == ["good-1", "good-2"] and not report.waiting
    assert sorted(posted) == ["hello good-1", "hello good-2"]
    aside = sorted(p.stem for p in (tmp_path / "malformed").glob("*.json"))
    assert aside == sorted(NOT_MESSAGES)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(NOT_MESSAGES)
    assert any("not-json.json is not a message" in w and "named <id>.json" in w
               for w in warnings)
    assert any("its id 'someone-else' is not its file name" in w for w in warnings)
    # an id set aside is never queued again (it may have been posted)
    assert outbox.where("not-json") == "malformed" and not outbox.enqueue(message("not-json"))
    assert outbox.get("not-json") is None


def test_a_malformed_sent_file_does_not_stop_recovery_either(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    (outbox.folder("sent") / "broken.json").write_text("")
    outbox.enqueue(message("after"))
    report = outbox.drain(lambda c, p: Delivery("sent"), lambda m: None, FAST, max_wait_s=1)
    assert report.sent == ["after"]
    assert outbox.where("broken") == "malformed"


def test_an_enqueue_racing_a_drain_never_posts_a_message_twice(tmp_path: Path) -> None:
    """Two evaluations derive the same message (the serve step and a manual `alerts --once`).
    B checks that the id is nowhere; A queues it and drains it, moving it to sent/; B then
    writes it into pending/, and A's drain, listing pending/ again, posted it a second time.
    The check and the write are now one step under the drain's lock."""
    a, b = Outbox(tmp_path), Outbox(tmp_path)
    checked, go = threading.Event(), threading.Event()
    real_where = b.where

    def paused_where(message_id: str) -> str | None:
        found = real_where(message_id)
        checked.set()
        go.wait(1.5)  # the fixed code holds the lock here: A waits for it, go never comes
        return found

    b.where = paused_where  # type: ignore[method-assign]
    enqueuer = threading.Thread(target=b.enqueue, args=(message(),))
    enqueuer.start()
    assert checked.wait(5)
    posts: list[str] = []

    def post(channel: str, payload: dict[str, object]) -> Delivery:
        posts.append(str(payload["text"]))
        return Delivery("sent")

    def record(done: Message) -> None:
        if done.status == "sent":  # A moved it out of pending/: B writes now
            go.set()
            enqueuer.join(5)

    a.enqueue(message())
    a.drain(post, record, FAST, max_wait_s=1)
    enqueuer.join(5)
    a.drain(post, record, FAST, max_wait_s=1)  # and any later drain
    assert posts == ["hello msg-1"]
    assert a.where("msg-1") == "sent" and not a.messages("pending")


def test_a_drain_does_not_hold_the_lock_while_it_sleeps_for_a_retry(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    outbox.enqueue(message("slow"))
    answers = [Delivery("retry", "HTTP 500: oops"), Delivery("sent"), Delivery("sent")]
    queued_while_asleep: list[bool] = []

    def sleep(seconds: float) -> None:
        if queued_while_asleep:
            return
        other = threading.Thread(
            target=lambda: queued_while_asleep.append(Outbox(tmp_path).enqueue(message("new"))))
        other.start()
        other.join(2)
        assert not other.is_alive(), "enqueue waited for a sleeping drain"

    report = outbox.drain(lambda c, p: answers.pop(0), lambda m: None,
                          RetryPolicy(max_attempts=3, backoff_s=0.01, max_backoff_s=0.01),
                          max_wait_s=5, sleep=sleep)
    assert queued_while_asleep == [True]
    assert sorted(report.sent) == ["new", "slow"]


def test_temporary_files_of_a_dead_writer_are_removed_when_stale(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    stale = outbox.folder("pending") / ".msg-1-dead0000.tmp"
    fresh = outbox.folder("pending") / ".msg-2-live0000.tmp"
    for path in (stale, fresh):
        path.write_text("{half")
    old = (datetime.now(UTC) - timedelta(minutes=20)).timestamp()
    os.utime(stale, (old, old))
    outbox.recover(lambda m: None)
    assert not stale.exists() and fresh.exists()


# --- SIGKILL at a chosen point ---------------------------------------------------------------

CHILD = r"""
import os, signal, sys
from alerts.outbox import Outbox, RetryPolicy
from alerts.routing import Webhooks
from alerts.webhook import SlackPoster
from tests.alerts.test_outbox import message

root, webhook, point, victim = sys.argv[1:5]
outbox = Outbox(__import__("pathlib").Path(root))
for n in range(3):
    outbox.enqueue(message(f"msg-{n}"))
if point == "enqueued":
    os.kill(os.getpid(), signal.SIGKILL)
slack = SlackPoster(Webhooks(None, {"HOOK": webhook}), timeout_s=2)

def post(channel, payload):
    if point == "before-post" and payload["text"] == f"hello {victim}":
        os.kill(os.getpid(), signal.SIGKILL)
    delivery = slack(channel, payload)
    if point == "after-200" and payload["text"] == f"hello {victim}":
        os.kill(os.getpid(), signal.SIGKILL)  # Slack took it; sent/ not written yet
    return delivery

real_finish = Outbox._finish

def finish(self, folder, done, record):
    real_finish(self, folder, done, record)
    if point == "after-sent" and done.id == victim:
        os.kill(os.getpid(), signal.SIGKILL)

Outbox._finish = finish
outbox.drain(post, lambda m: None, RetryPolicy(max_attempts=3, backoff_s=0.1), 5)
print("not killed")
"""


@pytest.mark.parametrize(("point", "duplicates"), [
    ("enqueued", {}), ("before-post", {}), ("after-sent", {}),
    # the documented window: Slack answered 200, the process died before writing sent/
    ("after-200", {"hello msg-1": 2}),
])
def test_killed_with_messages_pending_then_drained_posts_each_once(
        tmp_path: Path, sink: SlackSink, point: str, duplicates: dict[str, int]) -> None:
    sink.clear()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), sink.webhook(), point,
                           "msg-1"], check=False, cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr
    outbox = Outbox(tmp_path)  # the restarted process
    report = outbox.drain(poster(sink), lambda m: None, FAST, max_wait_s=5)
    assert not report.waiting and not report.failed
    posted = Counter(str(r.payload["text"]) for r in sink.delivered())
    expected = {f"hello msg-{n}": 1 for n in range(3)} | duplicates
    assert posted == expected
    assert sorted(m.id for m in outbox.messages("sent")) == ["msg-0", "msg-1", "msg-2"]
    assert not list((tmp_path / "pending").glob("*"))
