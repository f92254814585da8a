"""The session factory: AssumeRole parameters, caching, refresh before expiry, isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from orgscope.aws import AccessError, SessionFactory, describe_error
from orgscope.config import Config


def base_session() -> boto3.Session:
    return boto3.Session(aws_access_key_id="AKIDBASE", aws_secret_access_key="secret",
                         region_name="us-east-1")


def credentials(expires_in: timedelta, key: str = "ASIAEXAMPLE00000001") -> dict[str, Any]:
    return {
        "Credentials": {
            "AccessKeyId": key,
            "SecretAccessKey": "s",
            "SessionToken": "t",
            "Expiration": datetime.now(UTC) + expires_in,
        }
    }


def stubbed(config: Config, calls: list[dict[str, Any]] | None = None) -> tuple[SessionFactory,
                                                                                   Stubber]:
    factory = SessionFactory(config.aws, base_session=base_session(),
                             call_hook=lambda s, op, p: calls.append(p) if calls is not None
                             else None)
    stub = Stubber(factory._sts_client())
    stub.activate()
    return factory, stub


def test_assume_role_passes_external_id_and_session_name(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORGSCOPE_EXTERNAL_ID", "quickgrocer-7f3a")
    factory, stub = stubbed(config)
    stub.add_response(
        "assume_role",
        credentials(timedelta(hours=1)),
        {
            "RoleArn": "arn:aws:iam::111111111111:role/OrgScopeReadOnly",
            "RoleSessionName": "orgscope",
            "DurationSeconds": 3600,
            "ExternalId": "quickgrocer-7f3a",
        },
    )
    session = factory.session("111111111111")
    assert session.get_credentials().get_frozen_credentials().access_key == "ASIAEXAMPLE00000001"
    stub.assert_no_pending_responses()


def test_no_external_id_when_the_variable_is_unset(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ORGSCOPE_EXTERNAL_ID", raising=False)
    factory, stub = stubbed(config)
    stub.add_response(
        "assume_role",
        credentials(timedelta(hours=1)),
        {"RoleArn": ANY, "RoleSessionName": "orgscope", "DurationSeconds": 3600},
    )
    factory.session("111111111111")
    stub.assert_no_pending_responses()


def test_sessions_and_clients_are_cached(config: Config) -> None:
    factory, stub = stubbed(config)
    stub.add_response("assume_role", credentials(timedelta(hours=1)))
    first = factory.client("111111111111", "events", "us-east-1")
    second = factory.client("111111111111", "events", "us-east-1")
    assert first is second
    assert factory.session("111111111111") is factory.session("111111111111")
    stub.assert_no_pending_responses()  # one AssumeRole only


def test_credentials_are_refreshed_before_expiry(config: Config) -> None:
    factory, stub = stubbed(config)
    # Expires in 5 minutes: inside botocore's mandatory refresh window (10 minutes), so the
    # next use must assume the role again rather than sign with nearly-expired keys.
    stub.add_response("assume_role", credentials(timedelta(minutes=5), key="ASIAFIRST00000000001"))
    stub.add_response("assume_role", credentials(timedelta(hours=1), key="ASIASECOND0000000001"))
    session = factory.session("111111111111")
    frozen = session.get_credentials().get_frozen_credentials()
    assert frozen.access_key == "ASIASECOND0000000001"
    stub.assert_no_pending_responses()


def test_fresh_credentials_are_not_refreshed(config: Config) -> None:
    factory, stub = stubbed(config)
    stub.add_response("assume_role", credentials(timedelta(hours=1), key="ASIAFIRST00000000001"))
    session = factory.session("111111111111")
    assert session.get_credentials().get_frozen_credentials().access_key == "ASIAFIRST00000000001"
    assert session.get_credentials().get_frozen_credentials().access_key == "ASIAFIRST00000000001"
    stub.assert_no_pending_responses()


def test_one_failing_account_does_not_affect_another(config: Config) -> None:
    factory, stub = stubbed(config)
    stub.add_client_error("assume_role", service_error_code="AccessDenied",
                          service_message="not authorized to perform sts:AssumeRole",
                          http_status_code=403)
    stub.add_response("assume_role", credentials(timedelta(hours=1)))
    with pytest.raises(AccessError) as caught:
        factory.session("444444444444")
    assert caught.value.account_id == "444444444444"
    assert caught.value.reason == (
        "cannot assume OrgScopeReadOnly: AccessDenied on AssumeRole: "
        "not authorized to perform sts:AssumeRole"
    )
    assert factory.session("555555555555") is not None
    stub.assert_no_pending_responses()


def test_failures_are_not_cached(config: Config) -> None:
    factory, stub = stubbed(config)
    stub.add_client_error("assume_role", service_error_code="AccessDenied", http_status_code=403)
    stub.add_response("assume_role", credentials(timedelta(hours=1)))
    with pytest.raises(AccessError):
        factory.session("444444444444")
    factory.session("444444444444")  # the role was fixed: the next cycle gets through
    stub.assert_no_pending_responses()


def test_call_hook_sees_every_call(config: Config) -> None:
    calls: list[dict[str, Any]] = []
    factory, stub = stubbed(config, calls)
    stub.add_response("assume_role", credentials(timedelta(hours=1)))
    factory.session("111111111111")
    assert len(calls) == 1 and calls[0]["RoleSessionName"] == "orgscope"


def test_endpoint_from_config_is_used(config: Config) -> None:
    aws = config.aws.model_copy(update={"endpoint_url": "http://127.0.0.1:1"})
    factory = SessionFactory(aws, base_session=base_session())
    client = factory.base_client("events", "us-east-1")
    assert client.meta.endpoint_url == "http://127.0.0.1:1"


def test_describe_error_for_non_aws_errors() -> None:
    assert describe_error(ValueError("bad")) == "ValueError: bad"


def test_a_slow_account_does_not_hold_up_another(config: Config) -> None:
    """AssumeRole of one account runs while another account's AssumeRole is still waiting."""
    import threading

    factory = SessionFactory(config.aws, base_session=base_session())
    slow_started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def fake_assume(account_id: str, role: object) -> dict[str, str]:
        calls.append(account_id)
        if account_id == "444444444444":
            slow_started.set()
            release.wait(timeout=10)
        expiry = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        return {"access_key": "ASIA0000000000000001", "secret_key": "s", "token": "t",
                "expiry_time": expiry}

    factory._assume = fake_assume  # type: ignore[method-assign]
    slow = threading.Thread(target=factory.session, args=("444444444444",))
    slow.start()
    assert slow_started.wait(timeout=10)
    factory.session("555555555555")  # must not wait for 444444444444
    assert calls == ["444444444444", "555555555555"]
    release.set()
    slow.join(timeout=10)


def test_forgetting_an_account_assumes_its_role_again(config: Config) -> None:
    factory, stub = stubbed(config)
    stub.add_response("assume_role", credentials(timedelta(hours=1), key="ASIAFIRST00000000001"))
    stub.add_response("assume_role", credentials(timedelta(hours=1), key="ASIASECOND0000000001"))
    first = factory.client("111111111111", "events", "us-east-1")
    factory.forget("111111111111")
    second = factory.client("111111111111", "events", "us-east-1")
    assert first is not second
    keys = second._request_signer._credentials.get_frozen_credentials().access_key
    assert keys == "ASIASECOND0000000001"
    stub.assert_no_pending_responses()
