"""Which files of a folder the ``otlp_files`` collector has read: each file's identity (its
path in the folder, size and modification time), kept in a JSON state file between runs.

A file is read when its identity is not among those done: a file moved in with an old
modification time (``mv``, ``cp -p``, ``rsync -t``, an unpacked archive) is new, one dated in the
future hides nothing, and a file that changes is read again. Only files still in the folder are
remembered, so the state grows with the folder, not with time.

The runner stores a collector's frames before its watermark (orgscope/runner.py), so the
watermark says what is stored: a run's files are written to the state as *pending*, under the
run's time, which the run returns as its watermark; the next run counts them done only when the
watermark it is handed has reached that time. A run whose spans were not stored (a crash, a
failed write) leaves its files to be read again, and the ``spans`` unique key keeps one copy.

The state is written to a temporary file beside it and renamed over it, so a crash leaves the
old state or the new one. A state file that cannot be read is logged and replaced: the folder
is then read again (duplicates, never losses).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: The state file's format; another version is not read (the folder is read again).
VERSION = 1

#: A file's identity besides its path: (size in bytes, modification time in nanoseconds).
Identity = tuple[int, int]


@dataclass(frozen=True)
class SeenFiles:
    """Files done (relative path -> identity), and those a run read whose spans the runner
    has not yet confirmed stored (``pending``, read at ``pending_run``)."""

    done: Mapping[str, Identity] = field(default_factory=dict)
    pending: Mapping[str, Identity] = field(default_factory=dict)
    pending_run: datetime | None = None

    def is_done(self, name: str, identity: Identity) -> bool:
        return self.done.get(name) == identity

    def committed(self, watermark: datetime | None) -> SeenFiles:
        """Pending files counted done when ``watermark`` (the last stored run's) has reached
        the run that read them; otherwise dropped, to be read again."""
        if not self.pending:
            return SeenFiles(self.done)
        if self.pending_run is not None and watermark is not None and \
                watermark >= self.pending_run:
            return SeenFiles({**self.done, **self.pending})
        log.info("otlp_files: %d files read at %s were not stored; they are read again",
                 len(self.pending), self.pending_run.isoformat() if self.pending_run else "?")
        return SeenFiles(self.done)

    def present(self, names: Iterable[str]) -> SeenFiles:
        """Only the files among ``names`` (the folder now): the state stays bounded."""
        keep = set(names)
        return replace(self, done={n: i for n, i in self.done.items() if n in keep},
                       pending={n: i for n, i in self.pending.items() if n in keep})

    def with_run(self, files: Mapping[str, Identity], run: datetime) -> SeenFiles:
        """This state with ``files``, read by the run at ``run``, pending."""
        return SeenFiles(self.done, dict(files), run)


def to_json(state: SeenFiles) -> dict[str, Any]:
    """The state file's content."""
    return {"version": VERSION,
            "done": {name: list(identity) for name, identity in sorted(state.done.items())},
            "pending": {"run": state.pending_run.isoformat() if state.pending_run else None,
                        "files": {n: list(i) for n, i in sorted(state.pending.items())}}}


def _identities(value: Any, what: str) -> dict[str, Identity]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not an object")
    out: dict[str, Identity] = {}
    for name, identity in value.items():
        if not (isinstance(identity, list) and len(identity) == 2
                and all(isinstance(n, int) and not isinstance(n, bool) for n in identity)):
            raise ValueError(f"{what} {name!r}: {identity!r} is not [size, mtime_ns]")
        out[str(name)] = (identity[0], identity[1])
    return out


def from_json(data: Any) -> SeenFiles:
    """The state file's content -> a state; ValueError naming what is wrong."""
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise ValueError(f"not a version {VERSION} state (an object with \"version\": "
                         f"{VERSION})")
    pending = data.get("pending") or {}
    if not isinstance(pending, dict):
        raise ValueError("pending is not an object")
    run = pending.get("run")
    when = datetime.fromisoformat(run) if isinstance(run, str) else None
    if when is not None and when.tzinfo is None:
        raise ValueError(f"pending run {run!r} has no time zone")
    return SeenFiles(_identities(data.get("done", {}), "done"),
                     _identities(pending.get("files", {}), "pending"), when)


def load(path: Path) -> SeenFiles:
    """The state in ``path``; an empty one when there is none, or (logged) when it cannot be
    read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return SeenFiles()
    try:
        return from_json(json.loads(text))
    except (ValueError, RecursionError) as error:
        log.warning("otlp_files: state file %s unreadable (%s): starting again; every file "
                    "in the folder is read again", path, error)
        return SeenFiles()


def save(path: Path, state: SeenFiles) -> None:
    """Write ``state`` to ``path`` atomically (a temporary file beside it, flushed, renamed);
    OSError when the place cannot be written."""
    temporary = temporary_path(path)
    with temporary.open("w", encoding="utf-8") as out:
        json.dump(to_json(state), out, separators=(",", ":"))
        out.flush()
        os.fsync(out.fileno())
    temporary.replace(path)


def temporary_path(path: Path) -> Path:
    """Where :func:`save` writes before renaming."""
    return path.with_name(path.name + ".tmp")
