"""The IAM gate: WSGI middleware in front of moto enforcing what moto does not, for orgscope's
own roles only.

moto lets anyone assume any role, whether it exists or not, ignores trust-policy conditions
and never evaluates a role's permissions. For orgscope's read role and heal role (the
"guarded" roles) the gate restores the behaviour orgscope must cope with in real AWS:

* ``sts:AssumeRole`` of a guarded role fails with STS's ``AccessDenied`` (HTTP 403) when the
  role does not exist in that account, or when its trust policy requires an ``sts:ExternalId``
  (``StringEquals``) that the request does not carry;
* a request signed with credentials issued for a guarded role is refused with the service's
  own access-denied error when the role no longer exists or none of its policies allows the
  action (Allow statements with ``*`` wildcards; explicit Deny wins; resources and Allow
  conditions are not evaluated). A Deny's ``StringEquals``/``StringEqualsIgnoreCase``
  condition on ``aws:ResourceTag/<key>`` is evaluated for EventBridge rules, from the rule's
  tags in moto: the heal role's Deny on the opt-out tag holds here as in AWS. When the gate
  cannot tell the action, it lets the request through.

Every other caller (the simulator's own admin sessions, the base credentials) is untouched.

The action is found per protocol (botocore 1.44 / boto3 1.44.8, measured):

=============  ======================  =============================================
protocol       services                action from
=============  ======================  =============================================
json           events, sqs, ce, logs,  ``X-Amz-Target: <prefix>.<Operation>``
               organizations
rpc-v2-cbor    cloudwatch              path ``/service/<svc>/operation/<Operation>``
query          sts, iam                ``Action`` form or query parameter
rest-json      xray                    HTTP method + path, via the botocore model
rest-xml       s3 (path style)         :func:`s3_action`: reads of a bucket are
                                       ``s3:ListBucket``, of a key ``s3:GetObject``
=============  ======================  =============================================

The service prefix comes from the SigV4 credential scope (``monitoring`` -> ``cloudwatch``).
"""

from __future__ import annotations

import fnmatch
import io
import json
import logging
import re
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import botocore.session
from moto.events.models import events_backends
from moto.iam.exceptions import NotFoundException
from moto.iam.models import iam_backends

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: SigV4 signing names whose IAM action prefix differs.
IAM_PREFIX = {"monitoring": "cloudwatch"}
#: SigV4 signing name -> botocore service name, where they differ.
BOTOCORE_NAME = {"monitoring": "cloudwatch"}
#: Actions any principal may call whatever its policies say.
ALWAYS_ALLOWED = frozenset({"sts:GetCallerIdentity"})

_CREDENTIAL_RE = re.compile(r"Credential=([^/,\s]+)/[^/]+/([^/]+)/([^/]+)/aws4_request")
_ROLE_ARN_RE = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):role/(?:.*/)?([\w+=,.@-]+)$")
_CBOR_PATH_RE = re.compile(r"^/service/[^/]+/operation/([A-Za-z0-9]+)$")


# --- pure helpers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    """Who signed a request: the access key and the SigV4 scope's region and service."""

    access_key: str
    region: str
    service: str


def parse_authorization(header: str) -> Signature | None:
    """The SigV4 ``Authorization`` header -> :class:`Signature` (None when unsigned/other)."""
    match = _CREDENTIAL_RE.search(header or "")
    if not match:
        return None
    return Signature(match.group(1), match.group(2), match.group(3))


def parse_role_arn(arn: str) -> tuple[str, str] | None:
    """'arn:aws:iam::111111111111:role/X' -> ('111111111111', 'X')."""
    match = _ROLE_ARN_RE.match(arn or "")
    return (match.group(1), match.group(2)) if match else None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def load_policy(text: str) -> dict[str, Any]:
    """A policy document as stored by moto (JSON, sometimes URL-encoded) -> dict."""
    try:
        document = json.loads(text)
    except ValueError:
        document = json.loads(urllib.parse.unquote(text))
    if not isinstance(document, dict):
        raise ValueError("policy document is not a JSON object")
    return document


def _statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [s for s in _as_list(document.get("Statement")) if isinstance(s, Mapping)]


def _action_matches(patterns: list[Any], action: str) -> bool:
    lowered = action.lower()
    return any(fnmatch.fnmatchcase(lowered, str(p).lower()) for p in patterns)


#: Condition operators a Deny statement's Condition is evaluated with (others: the Deny
#: applies whatever the condition, the cautious reading).
_CONDITION_TESTS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda value, wanted: value == wanted,
    "StringEqualsIgnoreCase": lambda value, wanted: value.lower() == wanted.lower(),
}


def condition_matches(condition: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    """Whether a statement's ``Condition`` holds for the request's condition keys.

    ``context`` maps lower-cased condition keys (``aws:resourcetag/orgscope:autoheal``) to
    values. A key the request lacks makes its test false, as in IAM. Only the operators in
    :data:`_CONDITION_TESTS` are evaluated; any other makes the condition hold.
    """
    for operator, tests in condition.items():
        test = _CONDITION_TESTS.get(operator)
        if test is None or not isinstance(tests, Mapping):
            return True
        for key, wanted in tests.items():
            value = context.get(str(key).lower())
            if value is None or not any(test(value, str(w)) for w in _as_list(wanted)):
                return False
    return True


def conditional_denies(documents: Iterable[Mapping[str, Any]], action: str) -> bool:
    """Whether some Deny statement covering ``action`` carries a Condition (the gate then
    needs the request's condition keys)."""
    return any(statement.get("Effect") == "Deny" and statement.get("Condition")
               and _action_matches(_as_list(statement.get("Action")), action)
               for document in documents for statement in _statements(document))


def policies_allow(documents: Iterable[Mapping[str, Any]], action: str,
                   context: Mapping[str, str] | None = None) -> bool:
    """True when some Allow statement covers ``action`` and no Deny statement does.

    Resources and Allow conditions are not evaluated. A Deny's Condition is, against
    ``context`` (:func:`condition_matches`); without a context every Deny applies.
    """
    allowed = False
    for document in documents:
        for statement in _statements(document):
            if not _action_matches(_as_list(statement.get("Action")), action):
                continue
            if statement.get("Effect") == "Deny":
                condition = statement.get("Condition")
                if context is not None and isinstance(condition, Mapping) and condition \
                        and not condition_matches(condition, context):
                    continue
                return False
            if statement.get("Effect") == "Allow":
                allowed = True
    return allowed


def trust_refusal(trust: Mapping[str, Any], external_id: str | None) -> str | None:
    """Why a trust policy refuses an AssumeRole with ``external_id`` (None when it allows).

    Only the ``StringEquals`` ``sts:ExternalId`` condition is evaluated: the statement allowing
    ``sts:AssumeRole`` must either have no such condition or list ``external_id``.
    """
    statements = [
        s for s in _statements(trust)
        if s.get("Effect") == "Allow" and _action_matches(_as_list(s.get("Action")),
                                                           "sts:AssumeRole")
    ]
    if not statements:
        return "the role's trust policy allows no sts:AssumeRole"
    for statement in statements:
        condition = statement.get("Condition") or {}
        required = _as_list((condition.get("StringEquals") or {}).get("sts:ExternalId"))
        if not required or external_id in required:
            return None
    return "the ExternalId does not match the role's trust policy" if external_id else (
        "the role's trust policy requires an ExternalId"
    )


@lru_cache(maxsize=32)
def _rest_routes(service: str) -> tuple[tuple[str, re.Pattern[str], str], ...]:
    """(method, path regex, operation) for every operation of a rest protocol service."""
    model = botocore.session.get_session().get_service_model(BOTOCORE_NAME.get(service, service))
    routes = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        path = str(http.get("requestUri", "/")).split("?", 1)[0]
        regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path).replace("\\+", ""))
        routes.append((str(http.get("method", "POST")), re.compile(f"^{regex}/?$"), name))
    # Longest literal path first, so '/TraceSummaries' wins over a '/{Param}' route.
    return tuple(sorted(routes, key=lambda r: -len(r[1].pattern)))


def rest_operation(service: str, method: str, path: str) -> str | None:
    """The operation a rest-json/rest-xml request calls, from the botocore service model."""
    try:
        routes = _rest_routes(service)
    except Exception:  # an unknown service: cannot tell the action, so let it through
        return None
    for route_method, regex, name in routes:
        if route_method == method and regex.match(path):
            return name
    return None


def s3_action(method: str, path: str) -> str:
    """The IAM action of a path-style S3 request, coarsely: a GET or HEAD of the bucket is
    ``s3:ListBucket`` (ListObjectsV2's action), of a key ``s3:GetObject``; a DELETE is
    ``s3:DeleteObject`` and any other write ``s3:PutObject`` (both refused to a read role)."""
    bucket, _, key = path.lstrip("/").partition("/")
    if method in ("GET", "HEAD"):
        return "s3:GetObject" if bucket and key else "s3:ListBucket"
    return "s3:DeleteObject" if method == "DELETE" else "s3:PutObject"


def request_operation(
    service: str, method: str, path: str, headers: Mapping[str, str], form: Mapping[str, str]
) -> str | None:
    """The API operation of a request (None when it cannot be told)."""
    target = headers.get("x-amz-target")
    if target:
        return target.rsplit(".", 1)[-1]
    cbor = _CBOR_PATH_RE.match(path)
    if cbor:
        return cbor.group(1)
    if "Action" in form:
        return form["Action"]
    if service in ("sts", "iam", "sqs") or path in ("", "/"):
        return None
    return rest_operation(service, method, path)


def _cbor_text(text: str) -> bytes:
    data = text.encode()
    size = len(data)
    if size < 24:
        return bytes([0x60 | size]) + data
    if size < 256:
        return bytes([0x78, size]) + data
    return bytes([0x79]) + size.to_bytes(2, "big") + data


def cbor_map(items: Mapping[str, str]) -> bytes:
    """A tiny CBOR encoder for a map of short strings (an rpc-v2-cbor error body)."""
    out = bytes([0xA0 | len(items)])
    for key, value in items.items():
        out += _cbor_text(key) + _cbor_text(value)
    return out


@dataclass(frozen=True)
class Denial:
    status: str
    headers: list[tuple[str, str]]
    body: bytes


def denial(protocol: str, message: str, *, query_compatible: bool = False) -> Denial:
    """The service's own access-denied response for ``protocol``."""
    request_id = str(uuid.uuid4())
    common = [("x-amzn-RequestId", request_id)]
    if query_compatible:  # awsQueryCompatible services: botocore reads the query error code
        common.append(("x-amzn-query-error", "AccessDenied;Sender"))
    if protocol == "json":
        body = json.dumps({"__type": "AccessDeniedException", "message": message}).encode()
        return Denial("400 Bad Request",
                      [("Content-Type", "application/x-amz-json-1.1"), *common], body)
    if protocol == "cbor":
        body = cbor_map({"__type": "AccessDeniedException", "message": message})
        return Denial("400 Bad Request", [("Content-Type", "application/cbor"),
                                          ("smithy-protocol", "rpc-v2-cbor"), *common], body)
    if protocol == "rest-json":
        body = json.dumps({"message": message}).encode()
        return Denial("403 Forbidden", [("Content-Type", "application/json"),
                                        ("x-amzn-ErrorType", "AccessDeniedException"),
                                        *common], body)
    escaped = (message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
    if protocol == "rest-xml":  # S3: a bare <Error>, as S3 answers
        body = (f"<Error><Code>AccessDenied</Code><Message>{escaped}</Message>"
                f"<RequestId>{request_id}</RequestId></Error>").encode()
        return Denial("403 Forbidden", [("Content-Type", "application/xml"), *common], body)
    body = (
        "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
        f"<Message>{escaped}</Message></Error><RequestId>{request_id}</RequestId>"
        "</ErrorResponse>"
    ).encode()
    return Denial("403 Forbidden", [("Content-Type", "text/xml"), *common], body)


def protocol_of(path: str, headers: Mapping[str, str], form: Mapping[str, str]) -> str:
    if headers.get("x-amz-target"):
        return "json"
    if _CBOR_PATH_RE.match(path):
        return "cbor"
    if "Action" in form:
        return "query"
    return "rest-json"


# --- moto's in-process state -----------------------------------------------------------------


class MotoIam:
    """Read-only views of moto's IAM and STS backends, and of EventBridge rule tags (same
    process as the server)."""

    partition = "aws"

    def _backend(self, account_id: str) -> Any:
        return iam_backends[account_id][self.partition]

    def role(self, account_id: str, name: str) -> Any | None:
        try:
            return self._backend(account_id).get_role(name)
        except NotFoundException:
            return None

    def role_policies(self, role: Any) -> list[dict[str, Any]]:
        """The role's inline and attached managed policy documents."""
        documents = [load_policy(text) for text in role.policies.values()]
        for managed in role.managed_policies.values():
            for version in managed.versions:
                if version.is_default:
                    documents.append(load_policy(version.document))
        return documents

    def rule_tags(self, account_id: str, region: str, bus: str, name: str) -> dict[str, str]:
        """The tags of an EventBridge rule (empty when there is no such rule)."""
        try:
            backend = events_backends[account_id][region]
            rule = backend.describe_rule(name, bus)
            return dict(backend.tagger.get_tag_dict_for_resource(rule.arn))
        except Exception:  # no such bus or rule: no tags to condition on
            return {}

    def role_arn_of_key(self, access_key: str) -> str | None:
        """The role ARN temporary credentials were issued for (None for other keys)."""
        for _, account in list(iam_backends.items()):
            key = account[self.partition].access_keys.get(access_key)
            if key is not None:
                return getattr(key, "role_arn", None) or None
        return None


# --- the middleware --------------------------------------------------------------------------


class IamGate:
    """WSGI middleware: refuses what AWS would refuse for the guarded role names."""

    def __init__(self, app: WsgiApp, guarded_roles: Iterable[str],
                 iam: MotoIam | None = None) -> None:
        self.app = app
        self.guarded = frozenset(guarded_roles)
        self.iam = iam or MotoIam()
        self._key_roles: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        refusal = self.check(environ)
        if refusal is None:
            return self.app(environ, start_response)
        start_response(refusal.status,
                       [*refusal.headers, ("Content-Length", str(len(refusal.body)))])
        return [refusal.body]

    def _role_of_key(self, access_key: str) -> str | None:
        with self._lock:
            if access_key in self._key_roles:
                return self._key_roles[access_key]
        role_arn = self.iam.role_arn_of_key(access_key)
        with self._lock:
            self._key_roles[access_key] = role_arn
        return role_arn

    def check(self, environ: dict[str, Any]) -> Denial | None:
        """None to pass the request on, or the denial to answer with."""
        signature = parse_authorization(environ.get("HTTP_AUTHORIZATION", ""))
        if signature is None:
            return None
        headers = {"x-amz-target": environ.get("HTTP_X_AMZ_TARGET", "")}
        path = environ.get("PATH_INFO", "/")
        form = _form(environ)
        if form.get("Action") == "AssumeRole":
            return self._check_assume(form)
        parsed = parse_role_arn(self._role_of_key(signature.access_key) or "")
        if parsed is None or parsed[1] not in self.guarded:
            return None
        method = environ.get("REQUEST_METHOD", "POST")
        if signature.service == "s3":
            action = s3_action(method, path)
            operation: str | None = action
        else:
            operation = request_operation(signature.service, method, path, headers, form)
            action = f"{IAM_PREFIX.get(signature.service, signature.service)}:{operation}"
        if operation is None or action in ALWAYS_ALLOWED:
            return None
        account_id, role_name = parsed
        role = self.iam.role(account_id, role_name)
        why = "the role no longer exists"
        if role is not None:
            policies = self.iam.role_policies(role)
            context = None
            if conditional_denies(policies, action):
                context = self._condition_keys(environ, signature, account_id)
            if policies_allow(policies, action, context):
                return None
            # allowed but for a Deny: say so, as AWS does ("with an explicit deny")
            why = "with an explicit deny in an identity-based policy" if policies_allow(
                [{"Statement": [s for d in policies for s in _statements(d)
                                if s.get("Effect") == "Allow"]}], action) else \
                "no policy allows it"
        message = (f"User: arn:aws:sts::{account_id}:assumed-role/{role_name} is not authorized "
                   f"to perform: {action} ({why})")
        log.info("gate: denied %s for %s in %s: %s", action, role_name, account_id, why)
        protocol = "rest-xml" if signature.service == "s3" else protocol_of(path, headers, form)
        query_compatible = signature.service in ("sqs", "monitoring")
        return denial(protocol, message, query_compatible=query_compatible)

    def _condition_keys(self, environ: dict[str, Any], signature: Signature,
                        account_id: str) -> dict[str, str]:
        """``aws:ResourceTag/<key>`` of the EventBridge rule a JSON request names (Name and
        EventBusName in the body), lower-cased; empty for anything else."""
        body = json_body(environ)
        name = body.get("Name")
        if signature.service != "events" or not isinstance(name, str):
            return {}
        bus = str(body.get("EventBusName") or "default").split("/")[-1]
        tags = self.iam.rule_tags(account_id, signature.region, bus, name)
        return {f"aws:resourcetag/{key}".lower(): value for key, value in tags.items()}

    def _check_assume(self, form: Mapping[str, str]) -> Denial | None:
        parsed = parse_role_arn(form.get("RoleArn", ""))
        if parsed is None or parsed[1] not in self.guarded:
            return None
        account_id, role_name = parsed
        role = self.iam.role(account_id, role_name)
        if role is None:
            reason = "the role does not exist"
        else:
            reason = trust_refusal(load_policy(role.assume_role_policy_document),
                                   form.get("ExternalId") or None) or ""
        if not reason:
            return None
        log.info("gate: refused AssumeRole of %s in %s: %s", role_name, account_id, reason)
        return denial("query", f"User is not authorized to perform: sts:AssumeRole on resource: "
                               f"{form['RoleArn']} ({reason})")


def json_body(environ: dict[str, Any]) -> dict[str, Any]:
    """A JSON protocol request's body as a dict (empty otherwise); the body is put back."""
    if not environ.get("CONTENT_TYPE", "").startswith("application/x-amz-json"):
        return {}
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    try:
        loaded = json.loads(body or b"{}")
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _form(environ: dict[str, Any]) -> dict[str, str]:
    """Query-string and url-encoded form parameters; the body is put back for moto."""
    params = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))
    content_type = environ.get("CONTENT_TYPE", "")
    if not content_type.startswith("application/x-www-form-urlencoded"):
        return params
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    params.update(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
    return params
