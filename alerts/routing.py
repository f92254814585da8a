"""Which Slack webhook a message goes to, and where that webhook's URL comes from.

A *channel* is a route's name: the environment variable holding the webhook URL
(``ORGSCOPE_SLACK_WEBHOOK_PAYMENTS``) or ``secret:<id>`` for one read from Secrets Manager. The
name is what the ``notifications`` dataset and the outbox record; the URL itself is looked up
only when a message is posted, and never stored.

Secrets are cached for ``[slack] secret_cache_ttl`` (as the article's SecretCache does), and
read through the process's one SessionFactory: with orgscope's own credentials when the secret
lives in the monitoring account (the default), else through the read role of the account
named by ``secrets_account_id`` (which must then allow secretsmanager:GetSecretValue on it).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping

from orgscope.aws import SessionFactory
from orgscope.config import Config, SlackConfig

log = logging.getLogger(__name__)

SECRET_PREFIX = "secret:"  # noqa: S105 - a channel-name prefix, not a secret
#: JSON keys a secret's value may hold the URL under (else the value is the URL itself).
SECRET_URL_KEYS: tuple[str, ...] = ("url", "webhook_url", "webhook")


class WebhookError(Exception):
    """No usable webhook URL for a channel. ``permanent``: retrying will not help until the
    configuration changes (an unset variable), as opposed to a failed secret read."""

    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def route(slack: SlackConfig, team: str | None, severity: str) -> str:
    """The channel for a message about ``team`` at ``severity``: the first matching route's,
    else the default webhook's."""
    for candidate in slack.routes:
        if candidate.team not in ("*", team or ""):
            continue
        if candidate.severity not in ("*", severity):
            continue
        if candidate.webhook_env:
            return candidate.webhook_env
        return SECRET_PREFIX + candidate.webhook_secret
    if slack.default_webhook_secret:
        return SECRET_PREFIX + slack.default_webhook_secret
    return slack.default_webhook_env


class SecretCache:
    """Secret values by id, each kept for ``ttl_s`` seconds after it was read.

    ``fetch`` reads one secret (an AWS call); it runs at most once per id and TTL, and a failed
    read is not cached.
    """

    def __init__(self, fetch: Callable[[str], str], ttl_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._ttl = ttl_s
        self._clock = clock
        self._values: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def get(self, secret_id: str) -> str:
        with self._lock:
            cached = self._values.get(secret_id)
            if cached is not None and self._clock() - cached[0] < self._ttl:
                return cached[1]
        value = self._fetch(secret_id)
        with self._lock:
            self._values[secret_id] = (self._clock(), value)
        return value

    def forget(self, secret_id: str) -> None:
        """Drop the cached value: the next :meth:`get` reads the secret again."""
        with self._lock:
            self._values.pop(secret_id, None)


def webhook_from_secret(text: str) -> str:
    """The URL in a secret's value: the value itself, or a JSON object's url/webhook_url."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            loaded = json.loads(stripped)
        except json.JSONDecodeError:
            raise WebhookError("the secret is neither a URL nor valid JSON", True) from None
        for key in SECRET_URL_KEYS:
            if isinstance(loaded, dict) and isinstance(loaded.get(key), str):
                return str(loaded[key])
        raise WebhookError(f"the secret's JSON has none of the keys {', '.join(SECRET_URL_KEYS)}",
                           True)
    return stripped


def secrets_fetcher(config: Config, factory: SessionFactory) -> Callable[[str], str]:
    """A function reading one secret's SecretString through ``factory`` (a SessionFactory)."""
    account = config.slack.secrets_account_id or config.organization.monitoring_account_id
    region = config.slack.secrets_region or config.aws.regions[0]
    own = account == config.organization.monitoring_account_id

    def fetch(secret_id: str) -> str:
        client = factory.base_client("secretsmanager", region) if own else \
            factory.client(account, "secretsmanager", region)
        response = client.get_secret_value(SecretId=secret_id)
        log.info("read Slack webhook secret %s (account %s, region %s)", secret_id, account,
                 region)
        return str(response.get("SecretString") or "")

    return fetch


class Webhooks:
    """Resolves a channel to its URL: an environment variable (read at each post, so a
    variable set later is picked up), or a cached secret."""

    def __init__(self, secrets: SecretCache | None,
                 environ: Mapping[str, str] | None = None) -> None:
        self.secrets = secrets
        self.environ = os.environ if environ is None else environ

    def url(self, channel: str) -> str:
        if channel.startswith(SECRET_PREFIX):
            secret_id = channel.removeprefix(SECRET_PREFIX)
            if self.secrets is None:
                raise WebhookError(f"{channel}: no Secrets Manager access configured", True)
            try:
                value = self.secrets.get(secret_id)
            except WebhookError:
                raise
            except Exception as error:  # any AWS failure: retried later, with its reason
                raise WebhookError(f"{channel}: cannot read the secret: "
                                   f"{type(error).__name__}: {error}", False) from None
            return _checked(channel, webhook_from_secret(value))
        value = self.environ.get(channel, "")
        if not value:
            raise WebhookError(f"${channel} is not set: no webhook to post to", True)
        return _checked(channel, value)


    def reread(self, channel: str) -> str | None:
        """For a secret channel, its URL read again past the cache (None for an environment
        variable, which :meth:`url` reads at every post anyway)."""
        if not channel.startswith(SECRET_PREFIX) or self.secrets is None:
            return None
        self.secrets.forget(channel.removeprefix(SECRET_PREFIX))
        return self.url(channel)


def _checked(channel: str, url: str) -> str:
    if not url.startswith(("https://", "http://")):
        raise WebhookError(f"{channel}: the webhook is not an http(s) URL", True)
    return url
