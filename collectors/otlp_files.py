"""OTLP/JSON trace files dropped in a folder, as rows of ``spans``.

No AWS API: the collector reads ``[collectors.otlp_files] folder`` on the machine orgscope runs
on, once per cycle (scope "local"). A file's spans belong to the account the config maps the
file to (``accounts``: a glob or sub-folder of its path in the folder -> account id, first
match; else ``default_account``), never to the ``cloud.account.id`` the spans name: a
different claim is kept in the annotation ``orgscope.claimed_account_id`` and counted in one
warning per account and run. A file that maps to no account is left unread, with a warning.

A file is one OTLP/JSON ``ExportTraceServiceRequest`` or JSON Lines of them (what the
OpenTelemetry Collector's file exporter writes), streamed a line at a time
(orgscope/traces/otlp.py maps the fields). Files matching ``pattern`` are read once per
identity (path, size, modification time; collectors/seen_files.py keeps them), oldest first,
at most ``max_files_per_run`` a run; a file modified less than ``settle_s`` ago may still be
being written and waits for a later run. A file larger than ``max_file_bytes``, or one that
does not read (not OTLP/JSON, JSON nested too deep, not UTF-8), is logged and skipped, and not
tried again until it changes; a span that cannot be read is logged and skipped. One bad file
never stops the others.

Dataset ``spans`` (orgscope/datasets/traces.py), rows with ``source`` = 'otel'. The watermark
is the run's time: it tells the next run that this run's spans were stored.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import Field, field_validator

from collectors import seen_files
from collectors.otel import spans_frame
from collectors.seen_files import Identity, SeenFiles
from orgscope.collect import CollectContext, Collected, Collector
from orgscope.config import AccountId, CollectorConfig, Interval
from orgscope.datasets import SPANS
from orgscope.traces.otlp import read_requests, request_rows, warn_claims

log = logging.getLogger(__name__)

#: The state file's name in the folder when ``state_file`` is not set (no ``.json`` suffix,
#: and never listed as a trace file).
STATE_NAME = ".orgscope-otlp_files-state"
MIB = 1024 * 1024
#: Names of files logged in one warning, at most.
NAMES_SHOWN = 3


class OtlpFilesCollectorConfig(CollectorConfig):
    """OTLP/JSON trace files dropped in a folder (docs/traces.md); "" reads none."""

    interval: Interval = timedelta(minutes=1)
    folder: str = ""
    pattern: str = Field(default="*.json", min_length=1)
    max_files_per_run: int = Field(default=200, ge=1, le=100_000)
    #: A file's path in the folder (a glob, or a sub-folder) -> the account its spans are of.
    accounts: dict[str, AccountId] = Field(default_factory=dict)
    #: The account of files no ``accounts`` entry matches; none: such files are not read.
    default_account: AccountId | None = None
    max_file_bytes: int = Field(default=64 * MIB, ge=1, le=16 * 1024 * MIB)
    settle_s: int = Field(default=10, ge=0, le=3600)
    #: Where the files read are remembered; "" is a hidden file in the folder.
    state_file: str = ""

    @field_validator("accounts")
    @classmethod
    def _relative_globs(cls, accounts: dict[str, str]) -> dict[str, str]:
        for glob in accounts:
            if not glob.strip("/") or glob.startswith("/") or ".." in PurePosixPath(glob).parts:
                raise ValueError(f"{glob!r}: a key is a file name glob or sub-folder inside "
                                 "the folder, such as 'payments/' or 'team-a-*.json' (not "
                                 "empty, absolute or with '..')")
        return accounts


@dataclass(frozen=True)
class TraceFile:
    """A file in the folder: where it is, its name there (POSIX, relative) and identity."""

    path: Path
    name: str
    size: int
    mtime_ns: int

    @property
    def identity(self) -> Identity:
        return (self.size, self.mtime_ns)


@dataclass(frozen=True)
class Plan:
    """What one run reads (files with their account, oldest first) and what it leaves."""

    read: list[tuple[TraceFile, str]]
    unmapped: list[TraceFile]
    settling: int
    waiting: int


def account_for(name: str, accounts: Mapping[str, str], default: str | None) -> str | None:
    """The account of the file ``name`` (its path in the folder): the first ``accounts`` key
    that matches it as a glob (``*`` also matches ``/``) or names a folder it is under; else
    ``default``."""
    for glob, account in accounts.items():
        if fnmatchcase(name, glob) or fnmatchcase(name, glob.rstrip("/") + "/*"):
            return account
    return default


def plan(files: Sequence[TraceFile], seen: SeenFiles, settings: OtlpFilesCollectorConfig,
         now: datetime) -> Plan:
    """The files to read now: not done, mapped to an account, not modified within
    ``settle_s`` of ``now`` (either side: a file dated far in the future is read), oldest
    first, at most ``max_files_per_run``."""
    settle_ns = settings.settle_s * 1_000_000_000
    now_ns = int(now.timestamp() * 1_000_000_000)
    candidates: list[tuple[TraceFile, str]] = []
    unmapped: list[TraceFile] = []
    settling = 0
    for file in files:
        if seen.is_done(file.name, file.identity):
            continue
        account = account_for(file.name, settings.accounts, settings.default_account)
        if account is None:
            unmapped.append(file)
        elif abs(now_ns - file.mtime_ns) < settle_ns:
            settling += 1
        else:
            candidates.append((file, account))
    candidates.sort(key=lambda item: (item[0].mtime_ns, item[0].name))
    limit = settings.max_files_per_run
    return Plan(candidates[:limit], unmapped, settling, max(0, len(candidates) - limit))


def list_files(folder: Path, pattern: str, skip: set[Path]) -> list[TraceFile]:
    """Files in ``folder`` matching ``pattern`` (which may name sub-folders: ``*/*.json``,
    ``**/*.json``), but not those in ``skip``."""
    found = []
    for path in folder.glob(pattern):
        if path in skip:
            continue
        try:
            if not path.is_file():
                continue
            stat = path.stat()
        except OSError:  # removed since the listing
            continue
        found.append(TraceFile(path, path.relative_to(folder).as_posix(), stat.st_size,
                               stat.st_mtime_ns))
    return found


def file_rows(path: Path, account_id: str) -> list[dict[str, Any]]:
    """Every readable span in one file, as rows of ``account_id``, read a line at a time;
    ValueError when the file is not OTLP/JSON, OSError when it cannot be read."""
    rows: list[dict[str, Any]] = []
    # bytes that are not UTF-8 become U+FFFD: the span keeps its other fields
    with path.open(encoding="utf-8", errors="replace") as stream:
        for request in read_requests(stream, where=path.name):
            rows.extend(request_rows(request, account_id=account_id, where=path.name))
    return rows


def _names(files: Sequence[TraceFile]) -> str:
    shown = ", ".join(repr(f.name) for f in files[:NAMES_SHOWN])
    return shown + (", ..." if len(files) > NAMES_SHOWN else "")


def _read(chosen: Sequence[tuple[TraceFile, str]], settings: OtlpFilesCollectorConfig,
          where: str) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Identity], int]:
    """Rows per account of the ``chosen`` files, the files done with (read, too large or
    unreadable) and how many were skipped."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    handled: dict[str, Identity] = {}
    skipped = 0
    for file, account in chosen:
        if file.size > settings.max_file_bytes:
            skipped += 1
            handled[file.name] = file.identity
            log.warning("%s: %s skipped: %d bytes, more than max_file_bytes (%d)", where,
                        file.name, file.size, settings.max_file_bytes)
            continue
        try:
            rows[account].extend(file_rows(file.path, account))
        except FileNotFoundError:  # removed since the listing
            continue
        except (ValueError, RecursionError, MemoryError) as error:  # not OTLP/JSON, too deep
            skipped += 1
            log.warning("%s: %s skipped: %s", where, file.name, error)
        except OSError as error:  # not readable now (permissions, I/O): tried again
            log.warning("%s: %s not read, tried again next run: %s", where, file.name, error)
            continue
        handled[file.name] = file.identity
    return rows, handled, skipped


def state_path(settings: OtlpFilesCollectorConfig, folder: Path) -> Path:
    """Where the files read are remembered: ``state_file``, else a hidden file in the
    folder."""
    return Path(settings.state_file).expanduser() if settings.state_file \
        else folder / STATE_NAME


def collect_otlp_files(ctx: CollectContext) -> Collected:
    """Spans of the OTLP/JSON files that appeared or changed since they were last read."""
    settings = ctx.settings if isinstance(ctx.settings, OtlpFilesCollectorConfig) \
        else OtlpFilesCollectorConfig()
    if not settings.folder:
        return Collected({SPANS.name: SPANS.empty_frame()}, ctx.watermark)
    folder = Path(settings.folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"collectors.otlp_files.folder {settings.folder!r} is not a "
                                "folder")
    where = f"otlp_files {folder}"
    state_file = state_path(settings, folder)
    files = list_files(folder, settings.pattern,
                       {state_file, seen_files.temporary_path(state_file)})
    seen = seen_files.load(state_file).committed(ctx.watermark).present(f.name for f in files)
    try:  # before reading: a state that cannot be saved would read the same files forever
        seen_files.save(state_file, seen)
    except OSError as error:
        raise OSError(f"cannot write the otlp_files state file {state_file} ({error}); set "
                      "[collectors.otlp_files] state_file to a writable path") from error
    chosen = plan(files, seen, settings, ctx.collected_at)
    if chosen.unmapped:
        log.warning("%s: %d files map to no account and are not read (%s): map them in "
                    "[collectors.otlp_files] accounts, or set default_account", where,
                    len(chosen.unmapped), _names(chosen.unmapped))
    rows, handled, skipped = _read(chosen.read, settings, where)
    for account, account_rows in rows.items():
        warn_claims(where, account, account_rows)
    seen_files.save(state_file, seen.with_run(handled, ctx.collected_at))
    every_row = [row for account_rows in rows.values() for row in account_rows]
    log.info("%s: %d files read (%d skipped), %d spans; %d settling, %d for later runs",
             where, len(handled), skipped, len(every_row), chosen.settling, chosen.waiting)
    return Collected({SPANS.name: spans_frame(every_row)}, ctx.collected_at)


OTLP_FILES = Collector(
    name="otlp_files",
    settings=OtlpFilesCollectorConfig,
    feeds=("traces",),
    fn=collect_otlp_files,
    datasets=(SPANS,),
    scope="local",
    description="OpenTelemetry spans from OTLP/JSON files dropped in a folder.",
    iam_actions=(),
)
