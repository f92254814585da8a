"""The change feed: `orgscope serve`'s long poll of the change queue (docs/changes.md).

AWS APIs wrapped, with orgscope's own credentials in the monitoring account
(``SessionFactory.base_client``): ``sqs:ReceiveMessage`` (long poll, ``[changes] wait_s``,
20 s by default, up to 10 messages), ``sqs:DeleteMessage`` (each message once its change is
stored) and ``sqs:GetQueueAttributes`` (the start-up check). Through each account's read role,
whatever the ``reread`` collector calls (the inventory's DescribeRule, ListTargetsByRule and
ListTagsForResource for one rule).

One poll: receive, parse each message (:func:`orgscope.changes.parse_change`; a message that
is not a usable change event is logged and deleted), then per account and region re-read what
the changes name as one inventory run (its snapshot becomes the latest ``rules`` view), write
the changes to ``rule_changes``, delete their messages (only after both writes), and run the
steps that follow an inventory run (verdicts, heal, alerts). A re-read that fails leaves its
messages in the queue: SQS shows them again after the visibility timeout, and after five
receives moves them to the dead-letter queue. An account without an inventory snapshot yet is
not re-read (its first inventory run reads it whole); its changes are still recorded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from botocore.exceptions import BotoCoreError, ClientError

from orgscope.accounts import Account
from orgscope.aws import describe_error
from orgscope.changes import ChangeRecordError, RuleChange, changes_frame, parse_change
from orgscope.collect import Collector
from orgscope.datasets import EVENT_BUSES, RULE_CHANGES, RULES
from orgscope.runner import Runner
from orgscope.steps import AfterRun
from orgscope.store import ordered_id
from orgscope.untrusted import visible

log = logging.getLogger(__name__)

#: What the feed calls on the queue (the consumer policy of orgscope-change-queue.yaml grants
#: exactly these; tests/test_change_templates.py holds the two equal).
QUEUE_ACTIONS: tuple[str, ...] = (
    "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
#: The collector that re-reads one account and region's changes (collectors/inventory.py's
#: ``reread_collector``, handed in by the composition root).
Reread = Callable[[Sequence[RuleChange]], Collector]
#: After a failing poll, wait this long before the next (seconds).
RETRY_S = 5.0


class ChangeQueueError(Exception):
    """The change queue cannot be read: a message for people, naming the queue and why."""


@dataclass
class PollResult:
    """What one poll did."""

    received: int = 0
    skipped: int = 0
    changes: list[RuleChange] = field(default_factory=list)
    reread: int = 0
    failed: int = 0

    def summary(self) -> str:
        return (f"changes: {self.received} received, {len(self.changes)} stored, "
                f"{self.skipped} skipped, {self.reread} account-region(s) re-read, "
                f"{self.failed} failed (kept in the queue)")


def group_changes(parsed: Sequence[tuple[str, RuleChange]]
                  ) -> dict[tuple[str, str], list[tuple[str, RuleChange]]]:
    """(receipt handle, change) pairs by (account, region), oldest event first."""
    groups: dict[tuple[str, str], list[tuple[str, RuleChange]]] = {}
    for receipt, change in sorted(parsed, key=lambda item: item[1].event_time):
        groups.setdefault(change.target, []).append((receipt, change))
    return groups


class ChangeFeed:
    """The change queue of ``runner``'s config, re-read through ``reread`` and followed by
    ``after_run`` (the steps of an inventory run)."""

    def __init__(self, runner: Runner, reread: Reread, after_run: AfterRun) -> None:
        settings = runner.config.changes
        self.runner = runner
        self.reread = reread
        self.after_run = after_run
        self.queue_url = settings.queue_url
        self.wait_s = settings.wait_s
        self.region = settings.queue_region(runner.config.aws.regions[0])
        self._sqs: Any = None

    @property
    def sqs(self) -> Any:
        if self._sqs is None:
            self._sqs = self.runner.factory.base_client("sqs", self.region)
        return self._sqs

    def check(self) -> None:
        """GetQueueAttributes on the queue; :class:`ChangeQueueError` when it cannot be read."""
        try:
            self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        except (ClientError, BotoCoreError) as error:
            raise ChangeQueueError(
                f"[changes] queue_url {self.queue_url} (region {self.region}) cannot be read "
                f"with orgscope's own credentials: {describe_error(error)}. Deploy "
                "orgscope/iam/orgscope-change-queue.yaml and attach its ConsumerPolicyArn "
                "(docs/iam.md), or set queue_url = \"\" to turn change events off") from error

    def _account(self, account_id: str) -> Account:
        for entry in self.runner.config.accounts:
            if entry.id == account_id:
                return Account.from_config(entry)
        known = self.runner.store.query(
            "SELECT name, team FROM accounts WHERE account_id = ?", [account_id])
        if not known.empty:
            return Account(account_id, str(known.iloc[0]["name"]), str(known.iloc[0]["team"]))
        return Account(account_id, account_id, "unknown")

    def _snapshot(self, account_id: str, region: str) -> dict[str, pd.DataFrame]:
        return {dataset.name: self.runner.store.query(
            f'SELECT * FROM "{dataset.name}" WHERE account_id = ? AND region = ?',
            [account_id, region]) for dataset in (RULES, EVENT_BUSES)}

    def _apply(self, account_id: str, region: str, changes: Sequence[RuleChange],
               now: datetime) -> bool | None:
        """Re-read one account and region's changes as an inventory run: True when it went
        ok, False when it failed, None when there was nothing to patch (no snapshot yet)."""
        inputs = self._snapshot(account_id, region)
        if all(frame.empty for frame in inputs.values()):
            log.info("changes %s %s: no inventory snapshot yet; its first inventory run will "
                     "read it", account_id, region)
            return None
        result = self.runner.run_target(self.reread(changes), self._account(account_id),
                                        region, inputs, now=now)
        if result.status != "ok":
            log.warning("changes %s %s: re-read failed, %d message(s) kept in the queue: %s",
                        account_id, region, len(changes), result.error)
        return result.status == "ok"

    def poll_once(self, now: datetime | None = None) -> PollResult:
        """One long poll and what follows it (see the module docstring)."""
        response = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                            WaitTimeSeconds=self.wait_s)
        messages = response.get("Messages") or []
        at = now or datetime.now(UTC)
        result = PollResult(received=len(messages))
        done: list[str] = []
        parsed: list[tuple[str, RuleChange]] = []
        for message in messages:
            receipt = str(message.get("ReceiptHandle") or "")
            try:
                parsed.append((receipt, parse_change(str(message.get("Body") or ""), at)))
            except ChangeRecordError as error:
                log.warning("change queue: skipped message %s: %s",
                            visible(str(message.get("MessageId"))), error)
                result.skipped += 1
                done.append(receipt)
        for (account_id, region), group in group_changes(parsed).items():
            outcome = self._apply(account_id, region, [c for _, c in group], at)
            if outcome is False:
                result.failed += len(group)
                continue
            result.reread += int(bool(outcome))
            result.changes.extend(change for _, change in group)
            done.extend(receipt for receipt, _ in group)
        if result.changes:
            self.runner.store.write(RULE_CHANGES.name, changes_frame(result.changes),
                                    ordered_id("changes", at))
        for receipt in done:
            if receipt:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=receipt)
        if result.reread:
            for name, summary in self.after_run(self.runner, ["inventory"]).items():
                if summary:
                    log.info("step %s (after changes): %s", name, summary)
        if messages:
            log.info(result.summary())
        return result

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set; a failing poll is logged and retried after
        :data:`RETRY_S` (never raises)."""
        log.info("change feed: long-polling %s (%s)", self.queue_url, self.region)
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("change feed: the poll failed; retrying in %.0fs", RETRY_S)
                stop.wait(RETRY_S)


def start_feed(feed: ChangeFeed, stop: threading.Event) -> threading.Thread:
    """The feed's poll loop in a daemon thread (so the scheduler's jobs never wait on it)."""
    thread = threading.Thread(target=feed.run, args=(stop,), name="change-feed", daemon=True)
    thread.start()
    return thread
