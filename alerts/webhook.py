"""Posting one message to a Slack incoming webhook with slack_sdk's WebhookClient.

slack_sdk's own retry handlers are turned off (``retry_handlers=[]``): the outbox decides when
to retry, so a retry survives a restart and is recorded. This module only classifies what
Slack answered into a :class:`~alerts.outbox.Delivery`.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.webhook import WebhookClient

from alerts.outbox import Delivery
from alerts.routing import WebhookError, Webhooks

log = logging.getLogger(__name__)

MAX_ERROR = 300


def _retry_after(headers: Any) -> float | None:
    """Seconds from a Retry-After header (case-insensitive; None when absent or not a number)."""
    if not headers:
        return None
    for name, value in dict(headers).items():
        if str(name).lower() == "retry-after":
            try:
                return max(float(value[0] if isinstance(value, list) else value), 0.0)
            except (TypeError, ValueError):
                return None
    return None


def classify(status: int, body: str, headers: Any) -> Delivery:
    """Slack's answer -> sent, retry (429 with its Retry-After, 5xx) or failed (other 4xx)."""
    if status == 200:
        return Delivery("sent")
    error = f"HTTP {status}: {body.strip()[:MAX_ERROR]}"
    if status == 429:
        return Delivery("retry", error, _retry_after(headers) or 1.0)
    if status >= 500:
        return Delivery("retry", error)
    return Delivery("failed", error)


class SlackPoster:
    """``post(channel, payload)`` for the outbox: resolve the channel's URL and POST."""

    def __init__(self, webhooks: Webhooks, timeout_s: float) -> None:
        self.webhooks = webhooks
        self.timeout_s = timeout_s

    def __call__(self, channel: str, payload: dict[str, Any]) -> Delivery:
        try:
            url = self.webhooks.url(channel)
        except WebhookError as error:
            return Delivery("failed" if error.permanent else "retry", str(error))
        delivery = self._post(url, payload)
        if delivery.outcome == "failed":
            # a webhook revoked and replaced in Secrets Manager: read it again before failing
            # the message for good, rather than failing every message until the cache expires
            try:
                fresh = self.webhooks.reread(channel)
            except WebhookError as error:
                log.warning("%s refused (%s); reading the secret again failed: %s", channel,
                            delivery.error, error)
                return delivery
            if fresh is not None and fresh != url:
                log.info("%s refused (%s); posting to the webhook now in the secret", channel,
                         delivery.error)
                return self._post(fresh, payload)
        return delivery

    def _post(self, url: str, payload: dict[str, Any]) -> Delivery:
        client = WebhookClient(url, timeout=int(max(self.timeout_s, 1)), retry_handlers=[])
        try:
            response = client.send_dict(payload)
        except Exception as error:  # timeouts, refused connections, DNS: all retried
            return Delivery("retry", f"{type(error).__name__}: {error}"[:MAX_ERROR])
        return classify(response.status_code, str(response.body or ""), response.headers)
