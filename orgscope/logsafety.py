"""Log lines that leak no secret and cannot be forged: the formatter every orgscope command
logs through (installed by ``orgscope.cli.configure_logging``).

Two things reach a log line that must not: secrets (a Slack webhook URL, which slack_sdk logs
in full at debug; tokens, signatures and passwords in URLs and headers, which urllib3 and
botocore log at debug) and text from monitored accounts (rule names, span attributes) that can
carry newlines, carriage returns and ANSI escapes, so one record could pass for several or
repaint the terminal. :class:`SafeFormatter` formats a record as usual, then

* :func:`redact` replaces every secret it recognises with ``[redacted]``, in the message, its
  arguments and any traceback;
* :func:`orgscope.untrusted.visible` writes every control character of the message as an
  escape (a newline as ``\\n``, ESC as ``\\x1b``), so one record is one line; a traceback
  keeps its lines, each indented with ``  | `` so none can pass for a record of its own.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from orgscope.untrusted import visible

REDACTED = "[redacted]"

_URL_CHAR = r"[^\s'\"<>\\]"
#: (pattern, replacement) in the order applied; each keeps what says where the secret was.
_SECRETS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Slack incoming webhooks and workflow triggers, on Slack's hosts...
    (re.compile(rf"(hooks\.slack(?:-gov)?\.com/(?:services|triggers|workflows)/){_URL_CHAR}+",
                re.IGNORECASE), rf"\1{REDACTED}"),
    # ...and the same path shape anywhere else (a proxy, a test sink): /services/T../B../secret
    (re.compile(r"(/services/)[\w-]+/[\w-]+/[\w-]+"), rf"\1{REDACTED}"),
    # user:password@ in any URL
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/\s:@'\"]+:[^/\s@'\"]+@", re.IGNORECASE),
     rf"\1{REDACTED}@"),
    # secrets in query strings (presigned S3 URLs, OAuth codes, API keys)
    (re.compile(r"([?&](?:[\w.-]*token|[\w.-]*secret|[\w.-]*password|api[_-]?key|key|sig|"
                r"signature|code|x-amz-signature|x-amz-credential|x-amz-security-token)=)"
                r"[^&\s'\"<>]+", re.IGNORECASE), rf"\1{REDACTED}"),
    # headers as requests, urllib3 and botocore print them
    (re.compile(r"((?:authorization|proxy-authorization|x-amz-security-token|x-api-key|"
                r"cookie|set-cookie)['\"]?\s*[:=]\s*b?['\"]?)[^'\"\n,}]+", re.IGNORECASE),
     rf"\1{REDACTED}"),
    # SigV4 signatures and credentials wherever they appear
    (re.compile(r"((?:Signature|Credential)=)[^,\s'\"&]+"), rf"\1{REDACTED}"),
    # STS and Secrets Manager answers in XML or JSON
    (re.compile(r"(<(SecretAccessKey|SessionToken|SecretString)>)[^<]*(</\2>)"),
     rf"\1{REDACTED}\3"),
    (re.compile(r"(['\"](?:SecretAccessKey|SessionToken|SecretString|aws_secret_access_key|"
                r"aws_session_token)['\"]\s*:\s*['\"])[^'\"]*"), rf"\1{REDACTED}"),
    # Slack API tokens
    (re.compile(r"\b(xox[abposre]|xapp)-[\w-]+"), rf"\1-{REDACTED}"),
)

def redact(text: str) -> str:
    """``text`` with every secret :data:`_SECRETS` recognises replaced by ``[redacted]``."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class SafeFormatter(logging.Formatter):
    """A :class:`logging.Formatter` whose output is redacted (:func:`redact`) and whose
    message is one line (:func:`visible`); a traceback's lines are kept, each indented with
    ``  | `` and their control characters escaped."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = visible(redact(record.message))
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))

    def format(self, record: logging.LogRecord) -> str:
        # logging.Formatter.format, without reusing a traceback another handler's formatter
        # cached on the record (``exc_text``): that one would be neither indented nor escaped
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        text = self.formatMessage(record)
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            text += "\n" + _indented(record.exc_text)
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return redact(text)


def _indented(text: str) -> str:
    return "\n".join("  | " + visible(line) for line in text.splitlines())


def install(handler: logging.Handler, fmt: str, datefmt: str | None = None) -> None:
    """Make ``handler`` format with :class:`SafeFormatter` (``fmt``, ``datefmt``)."""
    handler.setFormatter(SafeFormatter(fmt, datefmt))
