"""The otel collector (aws/spans through FilterLogEvents) and the otlp_files collector."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from collectors.otel import OTEL, OtelCollectorConfig, collect_otel, filter_params, read_window
from collectors.otlp_files import (
    OTLP_FILES,
    OtlpFilesCollectorConfig,
    collect_otlp_files,
    new_files,
)
from orgscope.accounts import Account
from orgscope.collect import CollectContext, Window
from orgscope.datasets import SPANS
from tests.traces.test_otlp import NS, W3C, otlp_span, request

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ACCOUNT = Account("666666666666", "inventory-mgmt", "inventory")


def event(span_id: str, n: int, **extra: Any) -> dict[str, Any]:
    span = {"resource": {"attributes": {"service.name": "inventory-mgmt"}},
            "traceId": W3C, "spanId": span_id, "name": "POST /reservations",
            "startTimeUnixNano": NS + n, "endTimeUnixNano": NS + n + 1_000_000,
            "attributes": {}, "status": {"code": "UNSET"}, **extra}
    return {"eventId": f"e{n}", "timestamp": NS // 1_000_000, "message": json.dumps(span)}


class FakeLogs:
    """FilterLogEvents over a list of pages (each a list of events)."""

    def __init__(self, pages: list[list[dict[str, Any]]], missing: bool = False) -> None:
        self.pages = pages
        self.missing = missing
        self.calls: list[dict[str, Any]] = []

    def filter_log_events(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        if self.missing:
            raise ClientError({"Error": {"Code": "ResourceNotFoundException",
                                         "Message": "The specified log group does not exist"}},
                              "FilterLogEvents")
        index = int(params.get("nextToken", "0"))
        page: dict[str, Any] = {"events": self.pages[index]}
        if index + 1 < len(self.pages):
            page["nextToken"] = str(index + 1)
        return page


def context(client: Any, settings: Any, watermark: datetime | None = None,
            account: Account = ACCOUNT) -> CollectContext:
    return CollectContext(account=account, region="us-east-1",
                          window=Window(NOW - timedelta(minutes=1), NOW), collected_at=NOW,
                          client_factory=lambda service: client, settings=settings,
                          watermark=watermark)


def test_window_and_parameters() -> None:
    settings = OtelCollectorConfig()
    mark = NOW - timedelta(minutes=1)
    window = read_window(NOW, mark, settings)
    assert window == Window(mark - timedelta(minutes=2), NOW)
    assert read_window(NOW, None, settings) == Window(NOW - timedelta(hours=1), NOW)
    params = filter_params("aws/spans", Window(NOW - timedelta(minutes=1), NOW))
    assert params["endTime"] - params["startTime"] == 59_999  # [start, end)
    assert params["logGroupName"] == "aws/spans"


def test_reads_every_page_skips_bad_events_and_sets_the_watermark(
        caplog: pytest.LogCaptureFixture) -> None:
    bad = {"eventId": "bad", "timestamp": 1, "message": "{not json"}
    logs = FakeLogs([[event("1111111111111111", 1), bad], [event("2222222222222222", 2)]])
    collected = collect_otel(context(logs, OtelCollectorConfig()))
    frame = collected.frames[SPANS.name]
    SPANS.to_table(frame)
    assert list(frame["span_id"]) == ["1111111111111111", "2222222222222222"]
    assert set(frame["account_id"]) == {"666666666666"} and set(frame["source"]) == {"otel"}
    assert collected.watermark == NOW
    assert len(logs.calls) == 2 and logs.calls[1]["nextToken"] == "1"
    assert "event bad of aws/spans skipped" in caplog.text


def test_caps_spans_per_run(caplog: pytest.LogCaptureFixture) -> None:
    logs = FakeLogs([[event(f"{i + 1:016x}", i) for i in range(5)],
                     [event("aaaaaaaaaaaaaaaa", 9)]])
    collected = collect_otel(context(logs, OtelCollectorConfig(max_spans_per_run=3)))
    assert len(collected.frames[SPANS.name]) == 3
    assert len(logs.calls) == 1  # stopped paging
    assert "the rest skipped (max_spans_per_run)" in caplog.text


def test_an_account_without_the_log_group_has_no_spans() -> None:
    collected = collect_otel(context(FakeLogs([], missing=True), OtelCollectorConfig()))
    assert collected.frames[SPANS.name].empty and collected.watermark == NOW


def test_other_errors_fail_the_run() -> None:
    class Denied(FakeLogs):
        def filter_log_events(self, **params: Any) -> dict[str, Any]:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}},
                              "FilterLogEvents")

    with pytest.raises(ClientError):
        collect_otel(context(Denied([]), OtelCollectorConfig()))


def test_collectors_declare_what_they_need() -> None:
    assert OTEL.iam_actions == ("logs:FilterLogEvents",) and OTEL.scope == "regional"
    assert OTLP_FILES.iam_actions == () and OTLP_FILES.scope == "local"


# --- otlp_files ------------------------------------------------------------------------------


def write(path: Path, content: str, mtime: float) -> Path:
    path.write_text(content)
    os.utime(path, (mtime, mtime))
    return path


def test_files_are_read_once_oldest_first_and_bad_ones_skipped(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    base = NOW.timestamp()
    write(tmp_path / "b.json", json.dumps(request(otlp_span("2222222222222222"))), base + 2)
    write(tmp_path / "a.json", json.dumps(request(otlp_span("1111111111111111"),
                                                  account="777777777777")), base + 1)
    write(tmp_path / "broken.json", "{half a file", base + 3)
    write(tmp_path / "notes.txt", "ignored", base + 4)
    settings = OtlpFilesCollectorConfig(folder=str(tmp_path))
    first = collect_otlp_files(context(None, settings))
    frame = first.frames[SPANS.name]
    SPANS.to_table(frame)
    assert list(frame["span_id"]) == ["1111111111111111", "2222222222222222"]
    assert list(frame["account_id"]) == ["777777777777", "666666666666"]
    assert "broken.json skipped: not OTLP/JSON" in caplog.text
    assert first.watermark == datetime.fromtimestamp(base + 3, tz=UTC)
    again = collect_otlp_files(context(None, settings, watermark=first.watermark))
    assert again.frames[SPANS.name].empty and again.watermark == first.watermark
    write(tmp_path / "b.json", json.dumps(request(otlp_span("3333333333333333"))), base + 5)
    changed = collect_otlp_files(context(None, settings, watermark=first.watermark))
    assert list(changed.frames[SPANS.name]["span_id"]) == ["3333333333333333"]


def test_at_most_max_files_per_run(tmp_path: Path) -> None:
    base = NOW.timestamp()
    for i in range(5):
        write(tmp_path / f"{i}.json", "{}", base + i)
    chosen = new_files(tmp_path, "*.json", None, 2)
    assert [p.name for p, _ in chosen] == ["0.json", "1.json"]
    after = new_files(tmp_path, "*.json", chosen[-1][1], 10)
    assert [p.name for p, _ in after] == ["2.json", "3.json", "4.json"]


def test_no_folder_reads_nothing_and_a_missing_folder_fails_the_run(tmp_path: Path) -> None:
    nothing = collect_otlp_files(context(None, OtlpFilesCollectorConfig()))
    assert nothing.frames[SPANS.name].empty
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        collect_otlp_files(context(None, OtlpFilesCollectorConfig(
            folder=str(tmp_path / "nope"))))


def test_files_sharing_the_last_time_are_read_together_past_the_cap(tmp_path: Path) -> None:
    """The watermark is the last file's time: a cap between files of one time (an unpacked
    or copied folder) would skip the rest of them for good."""
    base = NOW.timestamp()
    for i in range(4):
        write(tmp_path / f"{i}.json", "{}", base)
    write(tmp_path / "later.json", "{}", base + 1)
    chosen = new_files(tmp_path, "*.json", None, 2)
    assert [p.name for p, _ in chosen] == ["0.json", "1.json", "2.json", "3.json"]
    after = new_files(tmp_path, "*.json", chosen[-1][1], 2)
    assert [p.name for p, _ in after] == ["later.json"]
