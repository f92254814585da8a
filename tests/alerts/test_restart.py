"""Killing `orgscope alerts --once` with messages in the outbox, then starting it again,
delivers each message exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from orgscope.datasets import all_datasets
from orgscope.store import Store
from sim.slack_sink import Response, SlackSink
from tests.alerts.alert_frames import NOW, ORDERS, PAYMENTS, ROOT, health, verdict


def _config(tmp_path: Path) -> Path:
    text = (ROOT / "config.toml").read_text()
    for old, new in (("backoff_s = 2.0", "backoff_s = 3.0"),
                     ("drain_wait_s = 30.0", "drain_wait_s = 60.0")):
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def _alerts(config: Path, store: Path, sink: SlackSink, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "ORGSCOPE_SLACK_WEBHOOK": sink.webhook("default"),
           "ORGSCOPE_SLACK_WEBHOOK_PAYMENTS": sink.webhook("payments")}
    return subprocess.Popen(
        [sys.executable, "-m", "orgscope.cli", "--config", str(config), "--store", str(store),
         "alerts", "--once", *extra], cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_killed_with_messages_pending_then_restarted_delivers_each_once(
        tmp_path: Path, sink: SlackSink) -> None:
    sink.clear()
    store_path = tmp_path / "store"
    store = Store(str(store_path), all_datasets())
    store.write("rule_health", health(
        verdict("orders-in", "DISABLED", at=NOW),
        verdict("payment-processed", "DISABLED", account_id=PAYMENTS, at=NOW)), "health-1")
    config = _config(tmp_path)
    sink.script(Response(500, "oops"))  # the first message fails and waits 3 s to retry
    first = _alerts(config, store_path, sink)
    try:
        _wait_for(lambda: len(sink.received()) >= 2 or first.poll() is not None, 60)
        time.sleep(1.0)  # the second message's 200 is stored; the first waits for its retry
        assert first.poll() is None, first.communicate()[0]
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        first.wait(10)
    assert [r.status for r in sink.received()] == [500, 200]
    pending = list((store_path / "_outbox" / "pending").glob("*.json"))
    assert len(pending) == 1

    second = _alerts(config, store_path, sink)
    output, _ = second.communicate(timeout=90)
    assert second.returncode == 0, output
    delivered = Counter(str(r.payload["text"]) for r in sink.delivered())
    assert sorted(delivered.values()) == [1, 1], delivered
    assert {r.path for r in sink.delivered()} == {"/services/default", "/services/payments"}
    assert any(ORDERS in text or "orders-in" in text for text in delivered)
    assert not list((store_path / "_outbox" / "pending").glob("*.json"))
    rows = store.query("SELECT status, attempts FROM notifications ORDER BY attempts")
    assert rows.to_dict("records") == [{"status": "sent", "attempts": 1},
                                       {"status": "sent", "attempts": 2}]
