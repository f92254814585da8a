"""`orgscope alerts` on the command line, and the local Slack sink's pages."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from orgscope.cli import main
from orgscope.datasets import all_datasets
from orgscope.store import Store
from sim.slack_sink import Response, SlackSink
from tests.alerts.alert_frames import ORDERS, ROOT, health, verdict


def test_alerts_once_prints_the_open_alerts_and_queues_without_delivering(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORGSCOPE_STORE", raising=False)
    store = Store(str(tmp_path), all_datasets())
    store.write("rule_health", health(verdict("orders-in", "DISABLED")), "health-1")
    args = ["--config", str(ROOT / "config.toml"), "--store", str(tmp_path), "alerts"]
    assert main([*args, "--once", "--no-deliver"]) == 0
    out = capsys.readouterr().out
    assert "firing" in out and "rule_disabled" in out and ORDERS in out
    assert "1 firing, 0 pending (0 silenced); 1 transitions, 1 messages queued" in out
    assert len(list((tmp_path / "_outbox" / "pending").glob("*.json"))) == 1
    assert main(args) == 2
    assert "pass --once" in capsys.readouterr().err
    assert main([*args, "--once", "--wait", "-1"]) == 2
    assert "--wait -1.0: must be between 0 and 3600 seconds" in capsys.readouterr().err


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def test_sink_records_scripted_answers_and_serves_html_and_json() -> None:
    sink = SlackSink()
    sink.start()
    try:
        sink.script(Response(500, "oops"))
        body = json.dumps({"text": "[CRITICAL] <b>Rule disabled</b>", "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "*What:* it broke"}}]})
        for _ in range(2):
            request = urllib.request.Request(sink.webhook("x"), data=body.encode(),
                                             method="POST")
            try:
                urllib.request.urlopen(request, timeout=5)
            except urllib.error.HTTPError as error:
                assert error.code == 500
        assert [r.status for r in sink.received()] == [500, 200]
        assert len(sink.delivered()) == 1
        page = _get(sink.url + "/")
        assert "Slack messages (2)" in page and "answered 500" in page
        assert "&lt;b&gt;Rule disabled&lt;/b&gt;" in page and "*What:* it broke" in page
        raw = json.loads(_get(sink.url + "/messages.json"))
        assert [m["status"] for m in raw] == [500, 200]
        assert raw[1]["payload"]["text"] == "[CRITICAL] <b>Rule disabled</b>"
        assert raw[1]["path"] == "/services/x"
    finally:
        sink.stop()


def test_check_config_notes_unset_slack_webhooks(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORGSCOPE_SLACK_WEBHOOK", "https://hooks.slack.com/services/T/B/x")
    monkeypatch.delenv("ORGSCOPE_SLACK_WEBHOOK_PAYMENTS", raising=False)
    assert main(["--config", str(ROOT / "config.toml"), "check-config", "--no-aws"]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if "Slack" in line]
    assert notes == ["note: $ORGSCOPE_SLACK_WEBHOOK_PAYMENTS is empty: Slack messages routed "
                     "to it are recorded as failed, not sent (docs/alerts.md)"]
