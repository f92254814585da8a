"""The one session factory: every cross-account AWS call in orgscope starts here.

Base credentials come from boto3's standard chain (environment, profile, SSO, instance role).
For each account the factory calls STS AssumeRole with the configured role, ExternalId and a
RoleSessionName naming the tool, wraps the result in botocore ``RefreshableCredentials`` (so a
long-running scheduler re-assumes before expiry, never after), and caches one session per
(account, role) and one client per (account, role, service, region). Every client shares one
botocore ``Config``: standard retries, timeouts, and a connection pool at least as large as the
worker pool.

The endpoint is the only difference between the simulated organization and AWS: boto3 honours
``AWS_ENDPOINT_URL`` by itself, and ``aws.endpoint_url`` in config.toml overrides it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session
from botocore.config import Config as BotoConfig
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError

from orgscope import __version__
from orgscope.config import AwsConfig

log = logging.getLogger(__name__)

#: AWS error codes that mean "these credentials are no longer good" although botocore thinks
#: they are (a session revoked on the role, clock skew): the cure is to assume the role again.
EXPIRED_CREDENTIAL_CODES = frozenset(
    {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "InvalidClientTokenId"})

#: Called by the factory for every AWS request it sends: (service, operation, params).
CallHook = Callable[[str, str, dict[str, Any]], None]


class AccessError(Exception):
    """An account (or region) could not be read: the role is missing, denied, or unreachable.

    ``reason`` is short and meant for people: it is shown in the dashboard and in
    ``orgscope check-config``.
    """

    def __init__(self, account_id: str, reason: str) -> None:
        super().__init__(f"{account_id}: {reason}")
        self.account_id = account_id
        self.reason = reason


@dataclass(frozen=True)
class RoleSpec:
    """Which role to assume in every account, and where its ExternalId comes from."""

    name: str
    external_id_env: str
    session_name: str
    duration_s: int = 3600

    def arn(self, account_id: str) -> str:
        return f"arn:aws:iam::{account_id}:role/{self.name}"

    def external_id(self) -> str | None:
        value = os.environ.get(self.external_id_env, "")
        return value or None


def describe_error(error: BaseException) -> str:
    """A one-line reason for an AWS failure: the AWS error code and message when there is one."""
    if isinstance(error, ClientError):
        detail = error.response.get("Error", {})
        code = detail.get("Code", "Error")
        message = detail.get("Message", "")
        operation = error.operation_name
        return f"{code} on {operation}: {message}".strip().rstrip(":")
    return f"{type(error).__name__}: {error}"


def shared_boto_config(aws: AwsConfig) -> BotoConfig:
    """The one botocore Config every client of the process shares."""
    return BotoConfig(
        retries={"mode": "standard", "max_attempts": aws.max_attempts},
        connect_timeout=aws.connect_timeout_s,
        read_timeout=aws.read_timeout_s,
        max_pool_connections=max(10, aws.max_workers * 2),
        user_agent_extra=f"orgscope/{__version__}",
    )


class SessionFactory:
    """Cached, refreshing cross-account sessions and clients.

    Thread-safe: the runner's workers ask for clients concurrently.
    """

    def __init__(
        self,
        aws: AwsConfig,
        base_session: boto3.Session | None = None,
        call_hook: CallHook | None = None,
    ) -> None:
        self._aws = aws
        self._base = base_session or boto3.Session()
        self._endpoint_url = aws.endpoint_url or None
        self._boto_config = shared_boto_config(aws)
        self._call_hook = call_hook
        self._lock = threading.RLock()
        self._account_locks: dict[tuple[str, str], threading.RLock] = {}
        self._sessions: dict[tuple[str, str], boto3.Session] = {}
        self._clients: dict[tuple[str, str, str, str], Any] = {}
        self._sts: Any = None
        #: The base session's model loader (with its cache), shared by the account sessions.
        self._loader = self._base._session.get_component("data_loader")
        self.read_role = RoleSpec(
            name=aws.read_role_name,
            external_id_env=aws.external_id_env,
            session_name=aws.session_name,
            duration_s=aws.session_duration_s,
        )

    def base_client(self, service: str, region: str) -> Any:
        """A client with the base credentials (the account orgscope runs in)."""
        with self._lock:
            return self._make_client(self._base, service, region)

    def _make_client(self, session: boto3.Session, service: str, region: str) -> Any:
        client = session.client(
            service,  # type: ignore[call-overload]
            region_name=region,
            endpoint_url=self._endpoint_url,
            config=self._boto_config,
        )
        if self._call_hook is not None:
            hook = self._call_hook

            def _count(model: Any, params: dict[str, Any], **_: Any) -> None:
                hook(service, model.name, params)

            # before-parameter-build fires once per API call (not per retry), with the
            # caller's parameters: enough to count metrics requested and traces fetched.
            client.meta.events.register("before-parameter-build", _count)
        return client

    def _sts_client(self) -> Any:
        with self._lock:
            if self._sts is None:
                self._sts = self._make_client(self._base, "sts", self._aws.regions[0])
            return self._sts

    def _assume(self, account_id: str, role: RoleSpec) -> dict[str, str]:
        """STS AssumeRole -> credential metadata for RefreshableCredentials."""
        params: dict[str, Any] = {
            "RoleArn": role.arn(account_id),
            "RoleSessionName": role.session_name,
            "DurationSeconds": role.duration_s,
        }
        external_id = role.external_id()
        if external_id:
            params["ExternalId"] = external_id
        try:
            response = self._sts_client().assume_role(**params)
        except (ClientError, BotoCoreError) as error:
            reason = f"cannot assume {role.name}: " + describe_error(error)
            raise AccessError(account_id, reason) from None
        creds = response["Credentials"]
        expiry = creds["Expiration"]
        if isinstance(expiry, datetime):
            expiry_text = expiry.astimezone(UTC).isoformat()
        else:
            expiry_text = str(expiry)
        log.debug("assumed %s in %s until %s", role.name, account_id, expiry_text)
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": expiry_text,
        }

    def session(self, account_id: str, role: RoleSpec | None = None) -> boto3.Session:
        """A boto3 Session in ``account_id`` through ``role`` (the read role by default).

        The first call assumes the role (raising :class:`AccessError` when it cannot); later
        calls reuse the cached session, whose credentials botocore refreshes before expiry.
        """
        role = role or self.read_role
        key = (account_id, role.name)
        # One lock per (account, role): accounts are assumed in parallel, and a slow or
        # timing-out account holds up only the callers that need that account.
        with self._account_lock(key):
            with self._lock:
                cached = self._sessions.get(key)
            if cached is not None:
                return cached
            metadata = self._assume(account_id, role)
            credentials = RefreshableCredentials.create_from_metadata(
                metadata=metadata,
                refresh_using=lambda: self._assume(account_id, role),
                method="sts-assume-role",
            )
            botocore_session = botocore.session.get_session()
            # One loader for every account's session: each botocore session would otherwise
            # load and keep its own copy of the service models, about 10 MB per account for
            # two clients (3 GB at 300 accounts; bench/collect_scaling.py).
            botocore_session.register_component("data_loader", self._loader)
            # c7n and aws-sdk-pandas set refreshable credentials this way: botocore has no
            # public setter that keeps the refresh callback.
            botocore_session._credentials = credentials  # type: ignore[attr-defined]
            session = boto3.Session(botocore_session=botocore_session)
            with self._lock:
                self._sessions[key] = session
            return session

    def forget(self, account_id: str, role: RoleSpec | None = None) -> None:
        """Drop the cached session and clients of (account, role): the next use assumes the
        role again. For credentials AWS refuses as expired before botocore's own refresh."""
        role = role or self.read_role
        with self._lock:
            self._sessions.pop((account_id, role.name), None)
            for key in [k for k in self._clients if k[:2] == (account_id, role.name)]:
                del self._clients[key]
        log.info("assuming %s in %s again: its credentials were refused as expired", role.name,
                 account_id)

    def _account_lock(self, key: tuple[str, str]) -> threading.RLock:
        with self._lock:
            return self._account_locks.setdefault(key, threading.RLock())

    def client(
        self, account_id: str, service: str, region: str, role: RoleSpec | None = None
    ) -> Any:
        """A cached client for (account, role, service, region)."""
        role = role or self.read_role
        key = (account_id, role.name, service, region)
        with self._lock:
            cached = self._clients.get(key)
        if cached is not None:
            return cached
        session = self.session(account_id, role)
        # boto3 sessions are not safe to create clients from concurrently: one at a time per
        # session, under that account's lock
        with self._account_lock((account_id, role.name)):
            with self._lock:
                cached = self._clients.get(key)
            if cached is not None:
                return cached
            client = self._make_client(session, service, region)
            with self._lock:
                self._clients[key] = client
            return client
