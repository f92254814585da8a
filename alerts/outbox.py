"""The durable Slack outbox: one JSON file per message, moved atomically from pending/ to sent/.

Layout under the store folder: ``_outbox/pending/``, ``_outbox/sent/`` and ``_outbox/failed/``,
one ``<id>.json`` each. docs/alerts.md, "Outbox: delivery guarantees", explains the guarantees,
the retries and the one crash window where a message can be posted twice. Invariants:

* A message is a file in pending/ (written under a temporary name and renamed) before the alert
  state that produced it is stored, and leaves pending/ only once Slack accepted it (HTTP 200)
  or it failed for good.
* :meth:`enqueue` refuses an id already in pending/, sent/ or failed/; ids are derived from the
  transition that caused them, so evaluating again after a crash queues nothing new.
* A 429 does not count towards ``max_attempts``; any other 4xx, and a channel whose webhook is
  not configured, fail at once.
* Only one process drains at a time (a lock file); the others leave the messages to it. The
  drain holds the lock while it posts and moves files, not while it sleeps for a retry.
* :meth:`enqueue` checks and writes under the same lock (waiting for it), so a message can
  never be queued again once a drain has moved it out of pending/.
* A file that is not a message (not JSON, wrong fields, an id that is not its name) is moved
  to ``malformed/`` with a WARNING and the rest are delivered; its id is never queued again.
* Every attempt is reported to a ``record`` callback (the alerts step writes it to the
  ``notifications`` dataset); a sent or failed message whose final row was not written yet is
  reported again by :meth:`Outbox.recover`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FOLDERS: tuple[str, ...] = ("pending", "sent", "failed")
#: Where files that are not messages go (kept for people to look at; never read again).
MALFORMED = "malformed"
LOCK_NAME = ".drain.lock"
#: A temporary file older than this was left by a process that died while writing it.
STALE_TMP = timedelta(minutes=15)
_FIELDS = ("id", "channel", "kind", "alert_key", "payload", "created_at")


@dataclass(frozen=True)
class Message:
    """One Slack message and its delivery so far (the JSON file's content)."""

    id: str
    channel: str
    kind: str
    alert_key: str | None
    payload: dict[str, Any]
    created_at: datetime
    status: str = "pending"
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    sent_at: datetime | None = None
    #: Of ``attempts``, those Slack answered 429 (they do not count towards giving up).
    throttled: int = 0
    #: The notifications row of the final status (sent/failed) has been written.
    recorded: bool = False

    def to_json(self) -> str:
        data: dict[str, Any] = dict(self.__dict__)
        for name in ("created_at", "next_attempt_at", "sent_at"):
            value = data[name]
            data[name] = value.isoformat() if value is not None else None
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Message:
        """The message in ``text``; ValueError saying what is wrong when it is not one."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"a JSON {type(data).__name__}, not an object")
        missing = [name for name in _FIELDS if name not in data]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        if not isinstance(data["payload"], dict) or not isinstance(data["channel"], str) \
                or not isinstance(data["id"], str):
            raise ValueError("id and channel must be strings and payload an object")
        for name in ("created_at", "next_attempt_at", "sent_at"):
            if data.get(name):
                data[name] = datetime.fromisoformat(data[name])
        try:
            return cls(**data)
        except TypeError as error:  # an unknown key
            raise ValueError(str(error)) from None


@dataclass(frozen=True)
class Delivery:
    """How one POST went: 'sent', 'retry' (after ``retry_after_s`` when Slack said so, else
    the backoff) or 'failed' (for good)."""

    outcome: str
    error: str | None = None
    retry_after_s: float | None = None


Post = Callable[[str, dict[str, Any]], Delivery]
Record = Callable[[Message], None]


@dataclass
class DrainReport:
    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    attempts: int = 0
    busy: bool = False

    def summary(self) -> str:
        if self.busy:
            return "outbox: another process is delivering"
        return (f"outbox: {len(self.sent)} sent, {len(self.failed)} failed, "
                f"{len(self.waiting)} waiting to retry ({self.attempts} attempts)")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    backoff_s: float = 2.0
    max_backoff_s: float = 300.0

    def delay(self, attempts: int) -> float:
        """Seconds before the next attempt after ``attempts`` failed ones."""
        return float(min(self.backoff_s * 2 ** max(attempts - 1, 0), self.max_backoff_s))


def _now() -> datetime:
    return datetime.now(UTC)


class Outbox:
    """Message files under ``root`` (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _path(self, folder: str, message_id: str) -> Path:
        return self.folder(folder) / f"{message_id}.json"

    def _write(self, folder: str, message: Message) -> None:
        final = self._path(folder, message.id)
        tmp = final.parent / f".{message.id}-{uuid.uuid4().hex[:8]}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(message.to_json())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                tmp.unlink()

    def _read(self, path: Path) -> Message | None:
        """The message in ``path``; None when it is gone, or not a message (then it is moved
        to malformed/ with a WARNING saying what is wrong)."""
        try:
            message = Message.from_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None  # moved by the drain in the meantime
        except (ValueError, UnicodeDecodeError) as error:
            self._set_aside(path, str(error))
            return None
        if message.id != path.stem:
            self._set_aside(path, f"its id {message.id!r} is not its file name")
            return None
        return message

    def _set_aside(self, path: Path, reason: str) -> None:
        target = self.folder(MALFORMED) / path.name
        while target.exists():
            target = target.with_name(f"{path.stem}-{uuid.uuid4().hex[:8]}{path.suffix}")
        try:
            os.replace(path, target)
        except FileNotFoundError:
            return  # another reader set it aside first
        log.warning("outbox: %s is not a message (%s): moved to %s; a message file is one "
                    "JSON object with %s, named <id>.json", path, reason, target,
                    ", ".join(_FIELDS))

    def where(self, message_id: str) -> str | None:
        """The folder holding ``message_id`` (pending first: a message moves out of it);
        ``malformed`` for an id whose file was set aside."""
        for folder in (*FOLDERS, MALFORMED):
            if self._path(folder, message_id).exists():
                return folder
        return None

    def enqueue(self, message: Message) -> bool:
        """Queue ``message`` unless its id is already queued, sent, failed or set aside; True
        if queued. Checks and writes under the drain's lock, waiting for it (a drain holds it
        for one pass over the due messages, not while it sleeps)."""
        with self._lock(wait=True):
            if self.where(message.id) is not None:
                log.debug("outbox: %s already queued or delivered", message.id)
                return False
            self._write("pending", message)
        return True

    def messages(self, folder: str) -> list[Message]:
        found = [self._read(path) for path in sorted(self.folder(folder).glob("*.json"))]
        return sorted((m for m in found if m is not None), key=lambda m: (m.created_at, m.id))

    def get(self, message_id: str) -> Message | None:
        folder = self.where(message_id)
        if folder is None or folder == MALFORMED:
            return None
        return self._read(self._path(folder, message_id))

    @contextmanager
    def _lock(self, *, wait: bool) -> Iterator[bool]:
        """The outbox's one lock (drains and enqueues); yields False, without waiting, when
        another holds it and ``wait`` is false."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK_NAME, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _remove_stale_temporaries(self, now: datetime) -> None:
        """Delete ``.<id>-<random>.tmp`` files older than STALE_TMP: left by a process killed
        while writing (the message they held was never queued, or is in its folder)."""
        oldest = (now - STALE_TMP).timestamp()
        for folder in FOLDERS:
            for path in self.folder(folder).glob(".*.tmp"):
                try:
                    if path.stat().st_mtime < oldest:
                        path.unlink()
                        log.info("outbox: removed %s, left by a process that died", path)
                except FileNotFoundError:
                    continue

    def recover(self, record: Record, now: datetime | None = None) -> None:
        """Finish what a crash interrupted: a pending file whose message is in sent/ (the
        crash fell between the two renames) is removed, sent or failed messages whose
        final notifications row was not written are recorded, and temporary files older than
        STALE_TMP at ``now`` are removed."""
        self._remove_stale_temporaries(now or _now())
        for message in self.messages("pending"):
            if self._path("sent", message.id).exists() or \
                    self._path("failed", message.id).exists():
                self._path("pending", message.id).unlink(missing_ok=True)
        for folder in ("sent", "failed"):
            for message in self.messages(folder):
                if not message.recorded:
                    self._record_final(folder, message, record)

    def _record_final(self, folder: str, message: Message, record: Record) -> None:
        try:
            record(message)
        except Exception:
            log.exception("outbox: could not record %s; will retry on the next drain",
                          message.id)
            return
        self._write(folder, replace(message, recorded=True))

    def _finish(self, folder: str, message: Message, record: Record) -> None:
        """Move ``message`` out of pending/: written into ``folder`` first, then the pending
        file removed (a crash between the two is undone by :meth:`recover`)."""
        self._write(folder, message)
        self._path("pending", message.id).unlink(missing_ok=True)
        self._record_final(folder, message, record)

    def drain(self, post: Post, record: Record, policy: RetryPolicy, max_wait_s: float, *,
              clock: Callable[[], datetime] = _now,
              sleep: Callable[[float], None] = time.sleep) -> DrainReport:
        """Deliver every pending message that is due; wait (sleeping) for retries due within
        ``max_wait_s``; leave later ones pending for the next drain."""
        report = DrainReport()
        with self._lock(wait=False) as locked:
            if not locked:
                report.busy = True
                return report
            self.recover(record, clock())
            deadline = clock() + timedelta(seconds=max_wait_s)
            blocked: dict[str, datetime] = {}
            wait = self._deliver_due(post, record, policy=policy, clock=clock, report=report,
                                     blocked=blocked, deadline=deadline)
        while wait is not None:
            sleep(wait)  # without the lock: enqueues go on meanwhile
            with self._lock(wait=False) as locked:
                if not locked:
                    break  # another drain took over; it delivers what is left
                wait = self._deliver_due(post, record, policy=policy, clock=clock,
                                         report=report, blocked=blocked, deadline=deadline)
        report.waiting = [m.id for m in self.messages("pending")]
        return report

    def _deliver_due(self, post: Post, record: Record, *, policy: RetryPolicy,
                     clock: Callable[[], datetime], report: DrainReport,
                     blocked: dict[str, datetime], deadline: datetime) -> float | None:
        """Attempt every pending message that is due (the lock held); the seconds until the
        next one falls due, or None when none does before ``deadline``."""
        pending = self.messages("pending")
        now = clock()
        due = [m for m in pending if (m.next_attempt_at or now) <= now
               and blocked.get(m.channel, now) <= now]
        for message in due:
            if blocked.get(message.channel, now) > clock():
                continue
            report.attempts += 1
            self._attempt(message, post, record, policy=policy, clock=clock,
                          report=report, blocked=blocked)
        pending = self.messages("pending")
        if not pending:
            return None
        now = clock()
        wake = min(max(m.next_attempt_at or now, blocked.get(m.channel, now)) for m in pending)
        if wake > deadline:
            return None
        return max((wake - now).total_seconds(), 0.0)

    def _attempt(self, message: Message, post: Post, record: Record, *, policy: RetryPolicy,
                 clock: Callable[[], datetime], report: DrainReport,
                 blocked: dict[str, datetime]) -> None:
        try:
            delivery = post(message.channel, message.payload)
        except Exception as error:  # a bug in post must not lose the message
            log.exception("outbox: posting %s raised", message.id)
            delivery = Delivery("retry", f"{type(error).__name__}: {error}")
        now = clock()
        attempts = message.attempts + 1
        throttled = message.throttled + (delivery.retry_after_s is not None)
        if delivery.outcome == "sent":
            done = replace(message, status="sent", attempts=attempts, sent_at=now,
                           last_error=None, next_attempt_at=None)
            self._finish("sent", done, record)
            report.sent.append(message.id)
            log.info("outbox: %s sent to %s (attempt %d)", message.id, message.channel,
                     attempts)
            return
        if delivery.outcome == "failed" or attempts - throttled >= policy.max_attempts:
            reason = delivery.error if delivery.outcome == "failed" else \
                f"gave up after {attempts - throttled} attempts: {delivery.error}"
            done = replace(message, status="failed", attempts=attempts, last_error=reason,
                           next_attempt_at=None)
            self._finish("failed", done, record)
            report.failed.append(message.id)
            log.warning("outbox: %s to %s failed: %s", message.id, message.channel, reason)
            return
        wait = delivery.retry_after_s if delivery.retry_after_s is not None \
            else policy.delay(attempts)
        retry_at = now + timedelta(seconds=wait)
        if delivery.retry_after_s is not None:
            blocked[message.channel] = max(blocked.get(message.channel, retry_at), retry_at)
        again = replace(message, attempts=attempts, throttled=throttled,
                        last_error=delivery.error, next_attempt_at=retry_at)
        self._write("pending", again)
        try:
            record(again)
        except Exception:
            log.exception("outbox: could not record attempt %d of %s", attempts, message.id)
        log.info("outbox: %s to %s: %s; retry in %.1fs", message.id, message.channel,
                 delivery.error, wait)

    def prune(self, before: datetime) -> int:
        """Delete sent and failed messages created before ``before``; returns how many.

        Keep them longer than anything may be queued again (the heal notices look back a
        day), or a pruned id could be queued a second time.
        """
        removed = 0
        for folder in ("sent", "failed"):
            for message in self.messages(folder):
                if message.created_at < before and message.recorded:
                    self._path(folder, message.id).unlink(missing_ok=True)
                    removed += 1
        return removed
