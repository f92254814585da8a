"""Change events: EventBridge's "AWS API Call via CloudTrail" events for rule and bus changes,
read from the monitoring account's queue and parsed into what changed, where, and who did it
(pure functions; docs/changes.md).

Each account forwards the events of :data:`CHANGE_EVENT_NAMES` (the pattern
:func:`change_event_pattern`, the one the templates in orgscope/iam/ carry) to the monitoring
account's bus, whose rule puts them in an SQS queue. One SQS message body is one EventBridge
event (JSON)::

    {"id", "detail-type": "AWS API Call via CloudTrail", "source": "aws.events", "account",
     "time", "region", "detail": {"eventSource": "events.amazonaws.com", "eventName",
     "eventTime", "eventID", "awsRegion", "recipientAccountId", "userIdentity": {"type",
     "arn", "principalId", "accountId"}, "requestParameters": {"name", "eventBusName",
     "state", "resourceARN", ...}}}

The account and region come from the CloudTrail record (``recipientAccountId``,
``awsRegion``), not from the envelope: a forwarded event's envelope may name the account that
forwarded it. Everything in ``detail`` is written by the monitored account's principals and
is untrusted text: stored as read, made literal at the sink (orgscope/untrusted.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from orgscope.untrusted import replace_surrogates

#: The EventBridge calls whose CloudTrail events orgscope reacts to.
CHANGE_EVENT_NAMES: tuple[str, ...] = (
    "DisableRule", "EnableRule", "PutRule", "DeleteRule", "PutTargets", "RemoveTargets",
    "PutPermission", "RemovePermission", "DeleteEventBus", "TagResource", "UntagResource",
)
DETAIL_TYPE = "AWS API Call via CloudTrail"
EVENT_SOURCE = "events.amazonaws.com"
#: The ``source`` EventBridge gives CloudTrail events of EventBridge's own API.
SOURCE = "aws.events"

#: The calls that change a bus (its policy, or the bus itself) rather than one rule.
BUS_EVENT_NAMES = frozenset({"PutPermission", "RemovePermission", "DeleteEventBus"})

_ACCOUNT_RE = re.compile(r"^\d{12}$")
_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
#: 'arn:aws:events:REGION:ACCOUNT:rule/NAME' or 'rule/BUS/NAME'; 'event-bus/NAME'.
_EVENTS_ARN_RE = re.compile(
    r"^arn:aws[\w-]*:events:[^:]*:\d{12}:(?P<kind>rule|event-bus)/(?P<path>.+)$")


def change_event_pattern() -> dict[str, Any]:
    """The event pattern of every account's forwarding rule (and of the monitoring account's
    rule that fills the queue)."""
    return {"source": [SOURCE], "detail-type": [DETAIL_TYPE],
            "detail": {"eventSource": [EVENT_SOURCE], "eventName": list(CHANGE_EVENT_NAMES)}}


class ChangeRecordError(ValueError):
    """A queue message that is not a change event orgscope can use (logged and skipped)."""


@dataclass(frozen=True)
class RuleChange:
    """One change of a rule or bus: where, what, who and when. ``rule`` is None for a change
    of the bus itself (its policy, or its deletion)."""

    account_id: str
    region: str
    bus: str
    rule: str | None
    event_name: str
    principal_arn: str | None
    principal_type: str | None
    event_time: datetime
    received_at: datetime
    event_id: str

    @property
    def target(self) -> tuple[str, str]:
        """(account_id, region): where the change is re-read."""
        return self.account_id, self.region


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _time(value: Any) -> datetime:
    """An ISO-8601 CloudTrail time ('2026-12-07T22:01:02Z') as aware UTC."""
    if not isinstance(value, str):
        raise ChangeRecordError("eventTime is missing")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise ChangeRecordError(f"eventTime is not a time: {value[:40]!r}") from error
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _short_name(value: str | None) -> str | None:
    """A bus or rule given as a name or an ARN -> its name."""
    if value is None:
        return None
    return value.rsplit("/", 1)[-1] if value.startswith("arn:") else value


def _named(event_name: str, params: Mapping[str, Any]) -> tuple[str, str | None]:
    """(bus, rule) the call's requestParameters name."""
    if event_name in ("TagResource", "UntagResource"):
        match = _EVENTS_ARN_RE.match(str(params.get("resourceARN") or ""))
        if match is None:
            raise ChangeRecordError("resourceARN names no EventBridge rule or bus")
        parts = match.group("path").split("/")
        if match.group("kind") == "event-bus":
            return parts[-1], None
        return (parts[0], parts[1]) if len(parts) == 2 else ("default", parts[0])
    if event_name in BUS_EVENT_NAMES:
        bus = _text(params.get("eventBusName")) if event_name != "DeleteEventBus" else \
            _text(params.get("name"))
        return _short_name(bus) or "default", None
    rule = _text(params.get("name")) or _text(params.get("rule"))
    if rule is None:
        raise ChangeRecordError(f"{event_name} names no rule")
    return _short_name(_text(params.get("eventBusName"))) or "default", rule


def parse_change(body: str, received_at: datetime) -> RuleChange:
    """One SQS message body -> the change it reports.

    Raises :class:`ChangeRecordError` (the caller logs and skips it) when the body is not JSON,
    not a CloudTrail event of an EventBridge call orgscope reacts to, or lacks the account,
    region, time or the rule/bus it names. Optional fields (userIdentity's arn and type) may be
    absent. Text is kept as sent, but for lone surrogates (U+FFFD: they are not Unicode).
    """
    try:
        # a JSON "\\udc80" escape is a lone surrogate, which cannot be stored: U+FFFD instead
        event = replace_surrogates(json.loads(body))
    except ValueError as error:
        raise ChangeRecordError("the message is not JSON") from error
    if not isinstance(event, dict) or not isinstance(event.get("detail"), dict):
        raise ChangeRecordError("the message is not an EventBridge event with a detail")
    detail: dict[str, Any] = event["detail"]
    if detail.get("eventSource") != EVENT_SOURCE:
        raise ChangeRecordError("not an EventBridge API call")
    event_name = detail.get("eventName")
    if event_name not in CHANGE_EVENT_NAMES:
        raise ChangeRecordError("not a change orgscope reacts to")
    account = _text(detail.get("recipientAccountId")) or _text(event.get("account"))
    region = _text(detail.get("awsRegion")) or _text(event.get("region"))
    if account is None or not _ACCOUNT_RE.match(account):
        raise ChangeRecordError("no account id")
    if region is None or not _REGION_RE.match(region):
        raise ChangeRecordError("no region")
    params = detail.get("requestParameters")
    bus, rule = _named(str(event_name), params if isinstance(params, dict) else {})
    identity = detail.get("userIdentity")
    identity = identity if isinstance(identity, dict) else {}
    event_id = _text(detail.get("eventID")) or _text(event.get("id"))
    if event_id is None:
        raise ChangeRecordError("no event id")
    return RuleChange(
        account_id=account, region=region, bus=bus, rule=rule, event_name=str(event_name),
        principal_arn=_text(identity.get("arn")), principal_type=_text(identity.get("type")),
        event_time=_time(detail.get("eventTime") or event.get("time")),
        received_at=received_at, event_id=event_id)


#: The columns of ``rule_changes`` (orgscope/datasets/changes.py), in order.
CHANGE_COLUMNS: tuple[str, ...] = (
    "account_id", "region", "bus", "rule", "event_name", "principal_arn", "principal_type",
    "event_time", "received_at", "event_id",
)


def changes_frame(changes: Sequence[RuleChange]) -> pd.DataFrame:
    """``rule_changes`` rows, one per change."""
    return pd.DataFrame([{column: getattr(change, column) for column in CHANGE_COLUMNS}
                         for change in changes], columns=list(CHANGE_COLUMNS))

