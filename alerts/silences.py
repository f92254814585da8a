"""Silences: label matchers and a time span during which matching alerts send no message.

A silenced alert still moves through its lifecycle and stays visible (``alerts.silenced_by``
names the silences); only its Slack messages are held back. Silences come from two places:
config.toml (``[[alerts.silences]]``, synced into the store at every evaluation so the Alerts
page lists them) and the dashboard (:func:`create_silence`, :func:`expire_silence`).

Matchers are a JSON object ``{label: pattern}``: every label must match. A pattern is the exact
value or a shell-style glob (``payments-*``, ``?``, ``[abc]``), compared case-sensitively. The
labels are those of :data:`orgscope.datasets.LABELS` plus ``key`` (one alert).
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

import pandas as pd

from orgscope.datasets import LABELS, SILENCE_SOURCES, SILENCES
from orgscope.store import Store, ordered_id

log = logging.getLogger(__name__)

MATCHER_LABELS: tuple[str, ...] = ("key", *LABELS)
CONFIG_CREATOR = "config.toml"


class SilenceError(ValueError):
    """A silence that cannot be created or expired; the message says what was wrong."""


@dataclass(frozen=True)
class Silence:
    """One silence as stored (the ``silences`` view's columns)."""

    id: str
    matchers: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    created_at: datetime
    expired_at: datetime | None
    source: str

    def active(self, now: datetime) -> bool:
        """In force at ``now``: started, not ended, not expired."""
        if self.expired_at is not None and self.expired_at <= now:
            return False
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, Any]) -> bool:
        return matches(self.matchers, labels)


def _utc(value: datetime | pd.Timestamp) -> datetime:
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    result: datetime = stamp.to_pydatetime()
    return result


def validate_matchers(matchers: Mapping[str, Any]) -> dict[str, str]:
    """Check ``matchers`` ({label: pattern}) and return them as plain strings, sorted by label.

    Raises :class:`SilenceError` naming the problem: no matchers, an unknown label, an empty or
    non-text pattern, or only match-everything patterns (a silence must say what it silences).
    """
    if not isinstance(matchers, Mapping) or not matchers:
        raise SilenceError("matchers: give at least one label and pattern, e.g. "
                           "{'account_id': '111111111111'}")
    clean: dict[str, str] = {}
    for label, pattern in matchers.items():
        if label not in MATCHER_LABELS:
            raise SilenceError(f"matchers: unknown label {label!r} (allowed: "
                               f"{', '.join(MATCHER_LABELS)})")
        if not isinstance(pattern, str) or not pattern.strip():
            raise SilenceError(f"matchers: {label} needs a non-empty text pattern, "
                               f"not {pattern!r}")
        clean[label] = pattern.strip()
    if all(set(p) <= {"*"} for p in clean.values()):
        raise SilenceError("matchers: every pattern is '*', which would silence everything; "
                           "name at least one value")
    return dict(sorted(clean.items()))


def matches(matchers: Mapping[str, str], labels: Mapping[str, Any]) -> bool:
    """True when every matcher's pattern matches the label's value (a missing or null label is
    the empty text, which only '*' matches)."""
    for label, pattern in matchers.items():
        value = labels.get(label)
        text = "" if value is None or (isinstance(value, float) and pd.isna(value)) \
            else str(value)
        if not fnmatchcase(text, pattern):
            return False
    return True


def silenced_by(silences: Iterable[Silence], labels: Mapping[str, Any],
                now: datetime) -> list[str]:
    """Ids of the silences active at ``now`` that match ``labels``, sorted."""
    return sorted(s.id for s in silences if s.active(now) and s.matches(labels))


# --- the store -------------------------------------------------------------------------------


def _row(silence: Silence) -> dict[str, Any]:
    return {"id": silence.id, "matchers": json.dumps(dict(silence.matchers), sort_keys=True),
            "starts_at": silence.starts_at, "ends_at": silence.ends_at,
            "created_by": silence.created_by, "comment": silence.comment,
            "created_at": silence.created_at, "expired_at": silence.expired_at,
            "source": silence.source}


def _write(store: Store, silences: Sequence[Silence], now: datetime) -> None:
    if silences:
        frame = pd.DataFrame([_row(s) for s in silences], columns=SILENCES.columns)
        store.write(SILENCES.name, frame, ordered_id("silences", now))


def _optional(value: Any) -> datetime | None:
    return None if value is None or pd.isna(value) else _utc(value)


def read_silences(store: Store) -> list[Silence]:
    """Every silence in the store (newest row per id), oldest first."""
    frame = store.query(f"SELECT {', '.join(SILENCES.columns)} FROM silences "
                        "ORDER BY created_at, id")
    found = []
    for row in frame.to_dict("records"):
        found.append(Silence(
            id=str(row["id"]), matchers=json.loads(row["matchers"]),
            starts_at=_utc(row["starts_at"]), ends_at=_utc(row["ends_at"]),
            created_by=str(row["created_by"]), comment=str(row["comment"]),
            created_at=_utc(row["created_at"]), expired_at=_optional(row["expired_at"]),
            source=str(row["source"])))
    return found


def create_silence(store: Store, matchers: Mapping[str, Any], ends_at: datetime,
                   created_by: str, comment: str, *, starts_at: datetime | None = None,
                   now: datetime | None = None, source: str = "dashboard") -> str:
    """Store a new silence and return its id.

    ``matchers``: {label: pattern} (see the module docstring); ``ends_at``: when it stops (after
    now and after ``starts_at``, which defaults to now); ``created_by``: who (the signed-in
    user, or a name for the audit log); ``comment``: why. Raises :class:`SilenceError` for a
    bad argument.
    """
    moment = _utc(now or datetime.now(UTC))
    clean = validate_matchers(matchers)
    start = _utc(starts_at) if starts_at is not None else moment
    end = _utc(ends_at)
    if end <= moment or end <= start:
        raise SilenceError(f"ends_at {end.isoformat()} must be later than now and than the "
                           f"start ({start.isoformat()})")
    if not created_by.strip():
        raise SilenceError("created_by: say who creates the silence")
    if not comment.strip():
        raise SilenceError("comment: say why (it is shown next to every silenced alert)")
    if source not in SILENCE_SOURCES:
        raise SilenceError(f"source {source!r}: must be one of {', '.join(SILENCE_SOURCES)}")
    silence = Silence(id=f"sil-{uuid.uuid4().hex[:12]}", matchers=clean, starts_at=start,
                      ends_at=end, created_by=created_by.strip(), comment=comment.strip(),
                      created_at=moment, expired_at=None, source=source)
    _write(store, [silence], moment)
    log.info("silence %s created by %s until %s: %s", silence.id, silence.created_by,
             end.isoformat(), json.dumps(clean))
    return silence.id


def expire_silence(store: Store, silence_id: str, by: str, *,
                   now: datetime | None = None) -> None:
    """End silence ``silence_id`` now; who ended it is appended to its comment.

    Raises :class:`SilenceError` when there is no such silence, it has already ended or been
    expired, or it comes from config.toml (remove it from the file instead).
    """
    moment = _utc(now or datetime.now(UTC))
    if not by.strip():
        raise SilenceError("by: say who expires the silence")
    found = {s.id: s for s in read_silences(store)}
    silence = found.get(silence_id)
    if silence is None:
        raise SilenceError(f"no silence {silence_id!r}")
    if silence.source == "config":
        raise SilenceError(f"silence {silence_id} comes from config.toml: remove it there")
    if silence.expired_at is not None or silence.ends_at <= moment:
        raise SilenceError(f"silence {silence_id} has already ended")
    expired = Silence(**{**silence.__dict__, "expired_at": moment,
                         "comment": f"{silence.comment} (expired by {by.strip()})"})
    _write(store, [expired], moment)
    log.info("silence %s expired by %s", silence_id, by)


# --- silences from config.toml ---------------------------------------------------------------


@dataclass(frozen=True)
class SilenceSpec:
    """A silence written in config.toml."""

    matchers: Mapping[str, str]
    ends_at: datetime
    comment: str
    starts_at: datetime | None = None
    created_by: str = CONFIG_CREATOR


def config_silence_id(spec: SilenceSpec) -> str:
    """A stable id for a config silence: the same entry keeps its id across restarts, and an
    edited entry is a new silence."""
    text = json.dumps({"matchers": dict(sorted(spec.matchers.items())),
                       "starts_at": _utc(spec.starts_at).isoformat() if spec.starts_at else None,
                       "ends_at": _utc(spec.ends_at).isoformat(), "comment": spec.comment},
                      sort_keys=True)
    return "cfg-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def config_changes(specs: Sequence[SilenceSpec], stored: Sequence[Silence],
                   now: datetime) -> list[Silence]:
    """The rows that bring the store in line with config.toml: new entries, entries put back
    after their removal (in force again), and stored config silences no longer in the file
    (expired now). Pure; :func:`sync_config_silences` writes."""
    moment = _utc(now)
    by_id = {s.id: s for s in stored}
    wanted: dict[str, SilenceSpec] = {config_silence_id(spec): spec for spec in specs}
    rows: list[Silence] = []
    for silence_id, spec in wanted.items():
        if silence_id in by_id:
            known = by_id[silence_id]
            if known.source == "config" and known.expired_at is not None:
                # removed from the file earlier (only that expires a config silence), back now
                rows.append(Silence(**{**known.__dict__, "expired_at": None,
                                       "comment": spec.comment}))
            continue
        start = _utc(spec.starts_at) if spec.starts_at is not None else moment
        rows.append(Silence(id=silence_id, matchers=validate_matchers(spec.matchers),
                            starts_at=start, ends_at=_utc(spec.ends_at),
                            created_by=spec.created_by, comment=spec.comment,
                            created_at=moment, expired_at=None, source="config"))
    for silence in stored:
        if silence.source == "config" and silence.id not in wanted and \
                silence.expired_at is None and silence.ends_at > moment:
            rows.append(Silence(**{**silence.__dict__, "expired_at": moment,
                                   "comment": f"{silence.comment} (removed from config.toml)"}))
    return rows


def sync_config_silences(store: Store, specs: Sequence[SilenceSpec],
                         now: datetime) -> list[Silence]:
    """Store config.toml's silences (see :func:`config_changes`); return every silence."""
    stored = read_silences(store)
    changes = config_changes(specs, stored, now)
    if not changes:
        return stored
    _write(store, changes, _utc(now))
    log.info("silences: %d config change(s) stored", len(changes))
    return read_silences(store)
