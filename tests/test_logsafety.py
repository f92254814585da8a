"""Log lines leak no secret and cannot be forged (orgscope/logsafety.py, issue #13).

The first two tests run the command line's own logging setup in a child process, as
`orgscope -vv` does: before the safe formatter, slack_sdk's debug line printed the whole
webhook URL, and a rule name with a newline and an ANSI escape printed as two lines, the
second one looking like a record of its own.
"""

from __future__ import annotations

import io
import logging
import re
import subprocess
import sys
import textwrap

from hypothesis import given
from hypothesis import strategies as st

from orgscope.logsafety import REDACTED, SafeFormatter, redact
from orgscope.untrusted import visible
from sim.slack_sink import SlackSink

SECRET = "Xq7ZsecretPART9k"


def _child(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                          capture_output=True, text=True, timeout=60, check=True)


def test_a_webhook_post_at_debug_logs_no_webhook_secret() -> None:
    sink = SlackSink()
    sink.start()
    try:
        url = f"{sink.url}/services/T0ORGSCOPE/B0ALERTS/{SECRET}"
        result = _child("""
            import sys
            from orgscope.cli import configure_logging
            from slack_sdk.webhook import WebhookClient
            configure_logging(2)
            response = WebhookClient(sys.argv[1], retry_handlers=[]).send_dict({"text": "hi"})
            assert response.status_code == 200, response.status_code
        """, url)
        assert [r.path for r in sink.received()] == [f"/services/T0ORGSCOPE/B0ALERTS/{SECRET}"]
    finally:
        sink.stop()
    assert "Sending a request" in result.stderr  # slack_sdk's debug line is there...
    assert SECRET not in result.stderr  # ...without the part of the URL that is the secret
    assert f"/services/{REDACTED}" in result.stderr


def test_untrusted_text_in_a_log_record_stays_on_one_line() -> None:
    forged = "orders-rule\n2026-11-02T10:00:00 INFO    orgscope.heal: all clear\x1b[2K\r"
    result = _child("""
        import logging, sys
        from orgscope.cli import configure_logging
        configure_logging(1)
        logging.getLogger("orgscope.heal").warning("rule %s is disabled", sys.argv[1])
    """, forged)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert "\x1b" not in result.stderr and "\r" not in result.stderr
    assert "rule orders-rule\\n2026-11-02T10:00:00 INFO" in lines[0]
    assert lines[0].endswith("all clear\\x1b[2K\\r is disabled")


def _formatted(message: str, *args: object, exc: bool = False) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(SafeFormatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("orgscope.test_logsafety")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        if exc:
            try:
                raise ValueError(args[0])
            except ValueError:
                logger.exception(message)
        else:
            logger.warning(message, *args)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


@given(st.text())
def test_any_message_is_one_line_with_no_control_character(text: str) -> None:
    out = _formatted("span %s", text)
    assert out.endswith("\n") and out.count("\n") == 1
    assert not any(ch in out[:-1] for ch in "\r\x1b\x00\x85\u2028\u2029\u202e")


def test_a_traceback_keeps_its_lines_indented_and_redacted() -> None:
    out = _formatted("delivery failed", f"https://hooks.slack.com/services/T1/B2/{SECRET}\nFAKE",
                     exc=True)
    first, *rest = out.splitlines()
    assert first == "ERROR orgscope.test_logsafety: delivery failed"
    assert rest and all(line.startswith("  | ") for line in rest)
    assert SECRET not in out


def test_secrets_are_redacted() -> None:
    cases = {
        f"url: https://hooks.slack.com/services/T01/B02/{SECRET}, body": SECRET,
        f"https://hooks.slack.com/triggers/E01/123/{SECRET}": SECRET,
        f"https://user:{SECRET}@proxy.example.com:8080/": SECRET,
        f"GET /bucket/key?X-Amz-Credential=AKIA/x&X-Amz-Signature={SECRET}": SECRET,
        f"https://api.example.com/v1?api_key={SECRET}&page=2": SECRET,
        f"headers={{'Authorization': b'AWS4-HMAC-SHA256 Credential=AKIAX/20261102, "
        f"Signature={SECRET}'}}": SECRET,
        f"'X-Amz-Security-Token': b'{SECRET}'": SECRET,
        f"<SecretAccessKey>{SECRET}</SecretAccessKey>": SECRET,
        f'{{"SecretString": "https://hooks.slack.com/services/T/B/{SECRET}"}}': SECRET,
        f"token xoxb-1234-{SECRET}": SECRET,
    }
    for text, secret in cases.items():
        assert secret not in redact(text), text
        assert REDACTED in redact(text), text


def test_ordinary_text_is_left_alone() -> None:
    for text in ("collector metrics: 13 ok, 0 failed in 2.1s, 130 API calls",
                 "rule orders/created on bus central-bus", "https://example.com/docs/page"):
        assert redact(text) == text
        assert visible(text) == text


def test_every_hostile_string_logs_as_one_line_with_nothing_a_terminal_acts_on() -> None:
    """The hostile corpus (testkit/hostile.py) through the log sink, as a rule name in a
    collector's warning: one line each, no control character, no bidi control."""
    from testkit.hostile import all_hostile

    formatter = SafeFormatter("%(levelname)s %(name)s: %(message)s")
    for text in all_hostile():
        record = logging.LogRecord("collectors.inventory", logging.WARNING, __file__, 1,
                                   "rule %s skipped: %s", (text, text), None)
        line = formatter.format(record)
        assert "\n" not in line and "\r" not in line, repr(text[:40])
        assert not re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]", line)
