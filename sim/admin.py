"""The simulator's own access: an admin role in every account, like a platform team's CI.

The simulator signs with static test keys (never the caller's credentials: it must not matter
what is in the environment) and assumes :data:`ADMIN_ROLE` in each account. The IAM gate does
not guard that role, so the simulator keeps working while it breaks orgscope's roles.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

ADMIN_ROLE = "OrganizationAccountAccessRole"
BASE_KEY = "testing"
SESSION_NAME = "quickgrocer-sim"
SESSION_S = 43200


class AdminSessions:
    """Cached admin clients per (account, service, region) against one endpoint."""

    def __init__(self, endpoint_url: str, region: str, max_pool: int = 20) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self._config = BotoConfig(
            retries={"mode": "standard", "max_attempts": 3},
            max_pool_connections=max_pool,
            parameter_validation=False,  # our own well-formed calls; validation costs 40%
        )
        self._base = boto3.Session(aws_access_key_id=BASE_KEY, aws_secret_access_key=BASE_KEY,
                                   region_name=region)
        self._credentials: dict[str, dict[str, str]] = {}
        self._clients: dict[tuple[str, str, str], Any] = {}
        self._lock = threading.Lock()

    def base_client(self, service: str) -> Any:
        """A client with the base (test) keys, cached per service."""
        key = ("base", service, self.region)
        with self._lock:
            cached = self._clients.get(key)
            if cached is None:
                cached = self._base.client(
                    service,  # type: ignore[call-overload]
                    endpoint_url=self.endpoint_url,
                    config=self._config,
                )
                self._clients[key] = cached
            return cached

    def credentials(self, account_id: str) -> dict[str, str]:
        """Temporary admin credentials for ``account_id`` (assumed once, then cached)."""
        with self._lock:
            cached = self._credentials.get(account_id)
        if cached is not None:
            return cached
        issued = self.base_client("sts").assume_role(
            RoleArn=f"arn:aws:iam::{account_id}:role/{ADMIN_ROLE}",
            RoleSessionName=SESSION_NAME,
            DurationSeconds=SESSION_S,
        )["Credentials"]
        credentials = {
            "aws_access_key_id": issued["AccessKeyId"],
            "aws_secret_access_key": issued["SecretAccessKey"],
            "aws_session_token": issued["SessionToken"],
        }
        with self._lock:
            return self._credentials.setdefault(account_id, credentials)

    def client(self, account_id: str, service: str, region: str | None = None) -> Any:
        """An admin client in ``account_id``; clients share one botocore session (and its
        loaded service models: a boto3 Session per account costs ~0.1 s per client)."""
        key = (account_id, service, region or self.region)
        with self._lock:
            cached = self._clients.get(key)
        if cached is not None:
            return cached
        credentials = self.credentials(account_id)
        with self._lock:
            cached = self._clients.get(key)
            if cached is None:
                cached = self._base.client(
                    service,  # type: ignore[call-overload]
                    region_name=key[2],
                    endpoint_url=self.endpoint_url,
                    config=self._config,
                    **credentials,
                )
                self._clients[key] = cached
            return cached
