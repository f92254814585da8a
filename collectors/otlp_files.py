"""OTLP/JSON trace files dropped in a folder, as rows of ``spans``.

No AWS API: the collector reads ``[collectors.otlp_files] folder`` on the machine orgscope runs
on, once per cycle (scope "local": the files hold spans of any account; each span names its
account in the resource attribute ``cloud.account.id`` and its region in ``cloud.region``).

A file is one OTLP/JSON ``ExportTraceServiceRequest`` or JSON Lines of them (what the
OpenTelemetry Collector's file exporter writes); orgscope/traces/otlp.py maps the fields.
Files matching ``pattern`` whose modification time is after the watermark are read, oldest
first, at most ``max_files_per_run`` a run (more when files share the last one's time); the
watermark is the modification time of the newest file read, so a file is read again only when
it changes (the ``spans`` unique key keeps one copy of a span read twice). A file that is not
OTLP/JSON, or a span without an account or region, is logged and skipped; the run still
succeeds.

Dataset ``spans`` (orgscope/datasets/traces.py), rows with ``source`` = 'otel'.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import Field

from collectors.otel import spans_frame
from orgscope.collect import CollectContext, Collected, Collector
from orgscope.config import CollectorConfig, Interval
from orgscope.datasets import SPANS
from orgscope.traces.otlp import parse_requests, request_rows

log = logging.getLogger(__name__)


class OtlpFilesCollectorConfig(CollectorConfig):
    """OTLP/JSON trace files dropped in a folder (docs/traces.md); "" reads none."""

    interval: Interval = timedelta(minutes=1)
    folder: str = ""
    pattern: str = Field(default="*.json", min_length=1)
    max_files_per_run: int = Field(default=200, ge=1, le=100_000)



def modified(path: Path) -> datetime:
    """A file's modification time, UTC, at microsecond precision (what watermarks keep)."""
    return datetime.fromtimestamp(path.stat().st_mtime_ns // 1000 / 1_000_000, tz=UTC)


def new_files(folder: Path, pattern: str, after: datetime | None, limit: int
              ) -> list[tuple[Path, datetime]]:
    """Files in ``folder`` matching ``pattern`` modified after ``after``, oldest first,
    at most ``limit`` (more when files share the modification time of the last one)."""
    found = []
    for path in folder.glob(pattern):
        if not path.is_file():
            continue
        try:
            when = modified(path)
        except OSError:  # removed since the listing
            continue
        if after is None or when > after:
            found.append((path, when))
    found.sort(key=lambda item: (item[1], item[0].name))
    if len(found) > limit:
        # the watermark becomes the last file's time: files sharing it are read in the same
        # run (a copied or unpacked folder gives many files one time), or never
        last = found[limit - 1][1]
        found = [item for item in found if item[1] <= last]
    return found


def file_rows(path: Path) -> list[dict[str, Any]]:
    """Every readable span in one file; ValueError/OSError when the file cannot be read."""
    text = path.read_text(encoding="utf-8")
    rows: list[dict[str, Any]] = []
    for request in parse_requests(text):
        rows.extend(request_rows(request, where=path.name))
    return rows


def collect_otlp_files(ctx: CollectContext) -> Collected:
    """Spans of the OTLP/JSON files that appeared or changed since the watermark."""
    settings = ctx.settings if isinstance(ctx.settings, OtlpFilesCollectorConfig) \
        else OtlpFilesCollectorConfig()
    if not settings.folder:
        return Collected({SPANS.name: SPANS.empty_frame()}, ctx.watermark)
    folder = Path(settings.folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"collectors.otlp_files.folder {settings.folder!r} is not a "
                                "folder")
    files = new_files(folder, settings.pattern, ctx.watermark, settings.max_files_per_run)
    rows: list[dict[str, Any]] = []
    bad = 0
    for path, _ in files:
        try:
            rows.extend(file_rows(path))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            bad += 1
            log.warning("otlp_files: %s skipped: %s", path, error)
    watermark = files[-1][1] if files else ctx.watermark
    log.info("otlp_files %s: %d files read (%d unreadable), %d spans", folder, len(files),
             bad, len(rows))
    return Collected({SPANS.name: spans_frame(rows)}, watermark)


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
