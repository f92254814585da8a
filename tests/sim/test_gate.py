from __future__ import annotations

import json

import pytest

from sim.gate import (
    condition_matches,
    conditional_denies,
    denial,
    parse_authorization,
    parse_role_arn,
    policies_allow,
    request_operation,
    s3_action,
    trust_refusal,
)

AUTH = ("AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20261126/us-east-1/monitoring/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=abc")


def test_parse_authorization() -> None:
    signature = parse_authorization(AUTH)
    assert signature is not None
    assert (signature.access_key, signature.region, signature.service) == (
        "ASIAEXAMPLE", "us-east-1", "monitoring")
    assert parse_authorization("") is None


def test_parse_role_arn() -> None:
    assert parse_role_arn("arn:aws:iam::111111111111:role/ops/OrgScopeReadOnly") == (
        "111111111111", "OrgScopeReadOnly")
    assert parse_role_arn("arn:aws:iam::111111111111:user/bob") is None


@pytest.mark.parametrize(
    ("service", "method", "path", "headers", "form", "expected"),
    [
        ("events", "POST", "/", {"x-amz-target": "AWSEvents.ListRules"}, {}, "ListRules"),
        ("monitoring", "POST", "/service/GraniteServiceVersion20100801/operation/GetMetricData",
         {}, {}, "GetMetricData"),
        ("sts", "POST", "/", {}, {"Action": "GetCallerIdentity"}, "GetCallerIdentity"),
        ("xray", "POST", "/TraceSummaries", {}, {}, "GetTraceSummaries"),
        ("xray", "POST", "/Traces", {}, {}, "BatchGetTraces"),
        ("sts", "POST", "/", {}, {}, None),
    ],
)
def test_request_operation(service: str, method: str, path: str, headers: dict[str, str],
                           form: dict[str, str], expected: str | None) -> None:
    assert request_operation(service, method, path, headers, form) == expected


def test_policies_allow_with_wildcards_and_deny() -> None:
    read = {"Statement": [{"Effect": "Allow", "Action": ["events:List*", "logs:*read*"],
                           "Resource": "*"}]}
    assert policies_allow([read], "events:ListRules")
    assert not policies_allow([read], "events:DisableRule")
    deny = {"Statement": {"Effect": "Deny", "Action": "events:*"}}
    assert not policies_allow([read, deny], "events:ListRules")
    assert not policies_allow([], "events:ListRules")


def test_a_deny_on_a_tag_applies_only_to_tagged_resources() -> None:
    heal = {"Statement": [
        {"Effect": "Allow", "Action": ["events:EnableRule", "events:DescribeRule"],
         "Resource": "*"},
        {"Effect": "Deny", "Action": "events:EnableRule", "Resource": "*",
         "Condition": {"StringEqualsIgnoreCase": {"aws:ResourceTag/orgscope:autoheal": "off"}}}]}
    assert conditional_denies([heal], "events:EnableRule")
    assert not conditional_denies([heal], "events:DescribeRule")
    tagged = {"aws:resourcetag/orgscope:autoheal": "OFF"}
    assert not policies_allow([heal], "events:EnableRule", tagged)
    assert policies_allow([heal], "events:EnableRule", {"aws:resourcetag/orgscope:autoheal": "on"})
    assert policies_allow([heal], "events:EnableRule", {})  # untagged: the Deny does not apply
    assert not policies_allow([heal], "events:EnableRule")  # no context: every Deny applies
    assert policies_allow([heal], "events:DescribeRule", tagged)


def test_condition_operators() -> None:
    context = {"aws:resourcetag/team": "Payments"}
    assert condition_matches({"StringEquals": {"aws:ResourceTag/Team": "Payments"}}, context)
    assert not condition_matches({"StringEquals": {"aws:ResourceTag/Team": "payments"}}, context)
    either = {"StringEqualsIgnoreCase": {"aws:ResourceTag/team": ["x", "payments"]}}
    assert condition_matches(either, context)
    assert not condition_matches({"StringEquals": {"aws:ResourceTag/Owner": "x"}}, context)
    # an operator the gate does not evaluate: the cautious reading, the condition holds
    assert condition_matches({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01"}}, context)


def test_trust_refusal_checks_the_external_id() -> None:
    trust = {"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                            "Condition": {"StringEquals": {"sts:ExternalId": "secret"}}}]}
    assert trust_refusal(trust, "secret") is None
    assert "does not match" in (trust_refusal(trust, "guess") or "")
    assert "requires an ExternalId" in (trust_refusal(trust, None) or "")
    open_trust = {"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole"}]}
    assert trust_refusal(open_trust, "anything") is None


def test_denials_use_each_protocols_shape() -> None:
    json_denial = denial("json", "no")
    assert json_denial.status.startswith("400")
    assert json.loads(json_denial.body)["__type"] == "AccessDeniedException"
    cbor_denial = denial("cbor", "no", query_compatible=True)
    # a CBOR map of 2 text pairs; botocore decoding it is covered by the integration tests
    assert cbor_denial.body == (b"\xa2" + b"\x66__type" + b"\x75AccessDeniedException"
                                + b"\x67message" + b"\x62no")
    assert ("x-amzn-query-error", "AccessDenied;Sender") in cbor_denial.headers
    xml = denial("query", "a < b").body.decode()
    assert xml.startswith("<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>")
    assert "a &lt; b" in xml
    s3 = denial("rest-xml", "a < b")
    assert s3.status.startswith("403")
    assert s3.body.decode().startswith("<Error><Code>AccessDenied</Code><Message>a &lt; b")


@pytest.mark.parametrize(("method", "path", "action"), [
    ("GET", "/exports", "s3:ListBucket"), ("GET", "/exports/", "s3:ListBucket"),
    ("HEAD", "/exports", "s3:ListBucket"),
    ("GET", "/exports/data/BILLING_PERIOD=2024-02/x.parquet", "s3:GetObject"),
    ("PUT", "/exports/x.parquet", "s3:PutObject"), ("PUT", "/exports", "s3:PutObject"),
    ("DELETE", "/exports/x.parquet", "s3:DeleteObject"),
])
def test_s3_requests_are_read_as_their_iam_action(method: str, path: str, action: str) -> None:
    assert s3_action(method, path) == action
