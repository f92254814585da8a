"""OpenTelemetry spans of one account and region from CloudWatch Logs, as rows of ``spans``.

AWS API wrapped: ``logs:FilterLogEvents`` on the log group ``[collectors.otel] log_group``
(``aws/spans``: where X-Ray Transaction Search keeps the OTLP spans an account sends, one JSON
span per log event), over the window since the watermark by event time, following
``nextToken`` (orgscope/collect.py ``pages``).

Dataset ``spans`` (orgscope/datasets/traces.py), rows with ``source`` = 'otel'; the fields are
mapped by orgscope/traces/otlp.py (ids to W3C form, resource attributes ``cloud.region``,
``service.name``; docs/traces.md). Every span is stored under the account whose role read the
log group: a span naming another account in ``cloud.account.id`` keeps that claim in the
annotation ``orgscope.claimed_account_id``, counted in one warning per account and run. An
event that is not a readable span (JSON nested too deep included) is logged and skipped. An
account without the log group (Transaction Search off) has no spans: the run is ok with none.

How much is read: like the xray collector, the first run reads ``backfill`` before now and
later runs start ``overlap`` before the watermark (spans reach the log group late; the
dataset's unique key keeps one copy). At most ``max_spans_per_run`` spans a run: the rest of
the window is skipped for good, with a warning. The watermark is the window's end.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError
from pydantic import Field

from orgscope.collect import (
    CollectContext,
    Collected,
    Collector,
    Window,
    incremental_window,
    pages,
)
from orgscope.config import CollectorConfig, Duration, Interval
from orgscope.datasets import SPANS
from orgscope.traces.otlp import log_event_row, warn_claims

log = logging.getLogger(__name__)

#: FilterLogEvents returns at most 10,000 events a page.
PAGE_LIMIT = 10_000


class OtelCollectorConfig(CollectorConfig):
    """OpenTelemetry spans in CloudWatch Logs (X-Ray Transaction Search keeps them in the log
    group ``aws/spans``; docs/traces.md): back-fill, re-read overlap and a per-run cap."""

    interval: Interval = timedelta(minutes=1)
    log_group: str = Field(default="aws/spans", pattern=r"^[.\-_/#A-Za-z0-9]{1,512}$")
    backfill: Duration = timedelta(hours=1)
    overlap: Duration = timedelta(minutes=2)
    max_spans_per_run: int = Field(default=20_000, ge=1, le=1_000_000)



def read_window(collected_at: datetime, watermark: datetime | None,
                settings: OtelCollectorConfig) -> Window | None:
    """[watermark - overlap, now), never before now - backfill; None when empty."""
    return incremental_window(collected_at, watermark, settings.backfill, settings.overlap)


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def filter_params(log_group: str, window: Window) -> dict[str, Any]:
    """FilterLogEvents parameters for [start, end) (the API's endTime is inclusive)."""
    return {"logGroupName": log_group, "startTime": epoch_ms(window.start),
            "endTime": epoch_ms(window.end) - 1, "limit": PAGE_LIMIT}


def spans_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows -> a ``spans`` frame with the dataset's nullable dtypes."""
    if not rows:
        return SPANS.empty_frame()
    frame = pd.DataFrame(rows, columns=SPANS.columns)
    frame["http_status"] = frame["http_status"].astype("Int64")
    frame["duration_ms"] = frame["duration_ms"].astype("float64")
    return frame


def collect_otel(ctx: CollectContext) -> Collected:
    """OTel spans in the account's ``aws/spans`` log group since the watermark."""
    settings = ctx.settings if isinstance(ctx.settings, OtelCollectorConfig) \
        else OtelCollectorConfig()
    where = f"{ctx.account.id} {ctx.region}"
    window = read_window(ctx.collected_at, ctx.watermark, settings)
    if window is None:
        return Collected({SPANS.name: SPANS.empty_frame()}, ctx.watermark)
    logs = ctx.client("logs")
    rows: list[dict[str, Any]] = []
    events = skipped = 0
    capped = False
    try:
        for page in pages(logs.filter_log_events, filter_params(settings.log_group, window),
                          token="nextToken"):  # noqa: S106 (the page-token field's name)
            for event in page.get("events", []):
                if len(rows) >= settings.max_spans_per_run:
                    capped = True
                    break
                events += 1
                try:
                    rows.append(log_event_row(str(event.get("message", "")),
                                              account_id=ctx.account.id, region=ctx.region))
                except (ValueError, KeyError, TypeError, AttributeError) as error:
                    skipped += 1
                    log.warning("otel %s: event %s of %s skipped: %s", where,
                                event.get("eventId"), settings.log_group, error)
            if capped:
                break
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        log.info("otel %s: no log group %s (Transaction Search not enabled): no spans", where,
                 settings.log_group)
        return Collected({SPANS.name: SPANS.empty_frame()}, window.end)
    if capped:
        log.warning("otel %s: more than %d spans in %s..%s; the rest skipped "
                    "(max_spans_per_run)", where, settings.max_spans_per_run,
                    window.start.isoformat(), window.end.isoformat())
    warn_claims(where, ctx.account.id, rows)
    log.info("otel %s: %s..%s, %d events, %d spans, %d skipped", where,
             window.start.isoformat(), window.end.isoformat(), events, len(rows), skipped)
    return Collected({SPANS.name: spans_frame(rows)}, window.end)


OTEL = Collector(
    name="otel",
    settings=OtelCollectorConfig,
    feeds=("traces",),
    fn=collect_otel,
    datasets=(SPANS,),
    scope="regional",
    description="OpenTelemetry spans from CloudWatch Logs (aws/spans), incremental.",
    iam_actions=("logs:FilterLogEvents",),
    probes=(("logs:FilterLogEvents", lambda ctx: ctx.client("logs").filter_log_events(
        logGroupName=getattr(ctx.settings, "log_group", "aws/spans"), limit=1,
        startTime=int((ctx.collected_at - timedelta(minutes=1)).timestamp() * 1000))),),
)
