"""CloudTrail for the simulator's EventBridge changes: WSGI middleware that, after each
successful rule or bus change made through the API, puts the "AWS API Call via CloudTrail"
event AWS would emit into that account's default bus (docs/simulator.md, "Change events").

moto records no CloudTrail and emits no such events. This middleware sits behind the IAM gate
(a refused call changes nothing and emits nothing) and in front of moto: for a JSON request
whose ``X-Amz-Target`` is one of :data:`orgscope.changes.CHANGE_EVENT_NAMES` and whose answer
is HTTP 200, it builds the event in CloudTrail's shape (detail.eventSource, eventName,
eventTime, eventID, awsRegion, recipientAccountId, userIdentity {type, arn, principalId,
accountId}, requestParameters with the request's keys in camelCase) and hands it to moto's
EventBridge of that account and region, which routes it through the account's forwarding rule
to the monitoring account's change bus and on to the change queue, as AWS would. The caller
is read from the request's access key in moto's STS and IAM state: the simulator's admin role
(faults, the platform team), orgscope's heal role (a re-enable), or the base keys (``Root``).
Every change is emitted, whoever makes it: the scenario's faults, the heal step's EnableRule,
a test's own call.
"""

from __future__ import annotations

import copy
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from moto.events.models import events_backends
from moto.events.utils import _BASE_EVENT_MESSAGE, EventMessageType
from moto.iam.models import get_account_id_from
from moto.sts.models import sts_backends

from orgscope.changes import CHANGE_EVENT_NAMES, DETAIL_TYPE, EVENT_SOURCE, SOURCE
from sim.gate import WsgiApp, json_body, parse_authorization

log = logging.getLogger(__name__)

#: X-Amz-Target prefix of EventBridge's JSON protocol.
EVENTS_TARGET = "AWSEvents."


def caller_identity(access_key: str) -> dict[str, str]:
    """CloudTrail's ``userIdentity`` of the principal that signed with ``access_key``."""
    account = get_account_id_from(access_key)
    assumed = sts_backends[account]["aws"].get_assumed_role_from_access_key(access_key)
    if assumed is not None:
        return {"type": "AssumedRole", "arn": assumed.arn, "principalId": assumed.user_id,
                "accountId": account, "accessKeyId": access_key}
    return {"type": "Root", "arn": f"arn:aws:iam::{account}:root", "principalId": account,
            "accountId": account, "accessKeyId": access_key}


def request_parameters(body: dict[str, Any]) -> dict[str, Any]:
    """An API request's parameters as CloudTrail writes them: each key in camelCase."""
    return {key[:1].lower() + key[1:]: value for key, value in body.items()}


def cloudtrail_detail(event_name: str, body: dict[str, Any], identity: dict[str, str],
                      region: str, at: datetime) -> dict[str, Any]:
    """The ``detail`` of the "AWS API Call via CloudTrail" event of one call."""
    return {
        "eventVersion": "1.09", "eventSource": EVENT_SOURCE, "eventName": event_name,
        "eventTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "eventID": str(uuid.uuid4()),
        "eventType": "AwsApiCall", "awsRegion": region, "sourceIPAddress": "127.0.0.1",
        "userAgent": "quickgrocer-sim", "recipientAccountId": identity["accountId"],
        "userIdentity": identity, "requestParameters": request_parameters(body),
        "responseElements": None, "readOnly": False, "managementEvent": True,
    }


class CloudTrailEvents:
    """WSGI middleware: emits a CloudTrail-shaped change event after each successful change
    of a rule or bus (see the module docstring). ``put`` takes (account, region, detail) and
    delivers the event; moto's EventBridge by default."""

    def __init__(self, app: WsgiApp,
                 put: Callable[[str, str, dict[str, Any]], None] | None = None) -> None:
        self.app = app
        self.put = put or put_on_default_bus

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        name = target[len(EVENTS_TARGET):] if target.startswith(EVENTS_TARGET) else ""
        signature = parse_authorization(environ.get("HTTP_AUTHORIZATION", ""))
        if name not in CHANGE_EVENT_NAMES or signature is None:
            return self.app(environ, start_response)
        body = json_body(environ)
        status: list[str] = []

        def _start(code: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            status.append(code)
            return start_response(code, headers, *rest)

        answer = list(self.app(environ, _start))
        if status and status[0].startswith("200"):
            try:
                identity = caller_identity(signature.access_key)
                detail = cloudtrail_detail(name, body, identity, signature.region,
                                           datetime.now(UTC))
                self.put(identity["accountId"], signature.region, detail)
            except Exception:  # the change itself was made: never fail the caller's request
                log.exception("trail: could not emit the %s event", name)
        return answer


def put_on_default_bus(account: str, region: str, detail: dict[str, Any]) -> None:
    """The event on ``account``'s default bus in ``region``, through moto's EventBridge rules
    (the forwarding rule routes it to the monitoring account's change bus).

    Each rule is handed the event on its own, as moto's PutEvents would: moto raises
    NotImplementedError for a target type it cannot deliver to (a state machine, a Kinesis
    stream: the second organization has them on its default buses), and inside PutEvents that
    would stop the loop before the forwarding rule saw the event."""
    bus = events_backends[account][region].describe_event_bus("default")
    message: EventMessageType = copy.deepcopy(_BASE_EVENT_MESSAGE)
    message.update({"id": str(uuid.uuid4()), "detail-type": DETAIL_TYPE, "source": SOURCE,
                    "account": account, "time": time.time(), "region": region,
                    "resources": [], "detail": detail, "ingestion-time": time.time()})
    for rule in list(bus.rules.values()):
        try:
            rule.send_to_targets(copy.deepcopy(message))
        except NotImplementedError as error:
            log.debug("trail: moto cannot deliver to a target of rule %s (%s)", rule.name,
                      error)
