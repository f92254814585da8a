"""The otel collector (aws/spans through FilterLogEvents) and the otlp_files collector."""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from pydantic import ValidationError

from collectors.otel import OTEL, OtelCollectorConfig, collect_otel, filter_params, read_window
from collectors.otlp_files import (
    OTLP_FILES,
    STATE_NAME,
    OtlpFilesCollectorConfig,
    account_for,
    collect_otlp_files,
)
from orgscope.accounts import Account
from orgscope.collect import CollectContext, Window
from orgscope.datasets import SPANS
from orgscope.traces.otlp import claimed_account
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


def test_spans_belong_to_the_account_read_whatever_they_claim(
        caplog: pytest.LogCaptureFixture) -> None:
    """A span written into inventory-mgmt's aws/spans naming payment's account is
    inventory-mgmt's: it raises no alert and joins no trace as payment's."""
    spoofed = {"resource": {"attributes": {"service.name": "pay",
                                           "cloud.account.id": "222222222222"}}}
    logs = FakeLogs([[event("1111111111111111", 1, **spoofed),
                      event("2222222222222222", 2, **spoofed),
                      event("3333333333333333", 3)]])
    caplog.set_level(logging.WARNING)
    frame = collect_otel(context(logs, OtelCollectorConfig())).frames[SPANS.name]
    assert set(frame["account_id"]) == {ACCOUNT.id}
    assert [claimed_account(row) for row in frame.to_dict("records")] == \
        ["222222222222", "222222222222", None]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"2 spans read for account {ACCOUNT.id} named another account" in warnings[0]
    assert "'222222222222' x2" in warnings[0]


def test_an_event_nested_too_deep_is_skipped_and_the_rest_read(
        caplog: pytest.LogCaptureFixture) -> None:
    deep = {"eventId": "deep", "timestamp": 1, "message": "[" * 50_000 + "]" * 50_000}
    logs = FakeLogs([[deep, event("1111111111111111", 1)]])
    frame = collect_otel(context(logs, OtelCollectorConfig())).frames[SPANS.name]
    assert list(frame["span_id"]) == ["1111111111111111"]
    assert "event deep of aws/spans skipped: JSON nested 50000 deep" in caplog.text


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

MAPPED = "888888888888"


def write(path: Path, content: str, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    os.utime(path, (mtime, mtime))
    return path


def span_file(path: Path, span_id: str, mtime: float, account: str = "666666666666") -> Path:
    return write(path, json.dumps(request(otlp_span(span_id), account=account)), mtime)


def files_settings(folder: Path, **options: Any) -> OtlpFilesCollectorConfig:
    return OtlpFilesCollectorConfig(folder=str(folder), **{"default_account": MAPPED,
                                                           **options})


class Runs:
    """Runs of the otlp_files collector, each handed the watermark the runner stored from the
    one before (as it does when the spans were written)."""

    def __init__(self, settings: OtlpFilesCollectorConfig) -> None:
        self.settings = settings
        self.watermark: datetime | None = None

    def run(self, at: datetime = NOW, stored: bool = True) -> list[str]:
        """Span ids read by a run at ``at``; ``stored=False``: the runner lost its spans."""
        ctx = CollectContext(account=ACCOUNT, region="us-east-1",
                             window=Window(at - timedelta(minutes=1), at), collected_at=at,
                             client_factory=lambda service: None, settings=self.settings,
                             watermark=self.watermark)
        collected = collect_otlp_files(ctx)
        frame = collected.frames[SPANS.name]
        SPANS.to_table(frame)
        if stored:
            self.watermark = collected.watermark
        return list(frame["span_id"])


def test_files_are_read_once_oldest_first_and_bad_ones_skipped(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    base = NOW.timestamp() - 60
    span_file(tmp_path / "b.json", "2222222222222222", base + 2)
    span_file(tmp_path / "a.json", "1111111111111111", base + 1)
    write(tmp_path / "broken.json", "{half a file", base + 3)
    write(tmp_path / "notes.txt", "ignored", base + 4)
    runs = Runs(files_settings(tmp_path))
    assert runs.run() == ["1111111111111111", "2222222222222222"]
    assert "broken.json skipped: not OTLP/JSON" in caplog.text
    caplog.clear()
    assert runs.run(NOW + timedelta(minutes=1)) == []
    assert "broken.json" not in caplog.text  # done with: not warned about every run
    span_file(tmp_path / "b.json", "3333333333333333", base + 5)
    assert runs.run(NOW + timedelta(minutes=2)) == ["3333333333333333"]


def test_spans_of_a_file_belong_to_the_account_the_config_maps_it_to(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Spoofing: a file's spans name any cloud.account.id they like; the config says whose
    they are."""
    base = NOW.timestamp() - 60
    span_file(tmp_path / "payments" / "1.json", "1111111111111111", base, "999999999999")
    span_file(tmp_path / "team-a-1.json", "2222222222222222", base + 1, "999999999999")
    span_file(tmp_path / "team-a-2.json", "3333333333333333", base + 2, "333333333333")
    span_file(tmp_path / "stray.json", "4444444444444444", base + 3)
    settings = OtlpFilesCollectorConfig(
        folder=str(tmp_path), pattern="**/*.json",
        accounts={"payments/": "222222222222", "team-a-*.json": "333333333333"})
    caplog.set_level(logging.WARNING)
    runs = Runs(settings)
    ctx = CollectContext(account=ACCOUNT, region="us-east-1", window=Window(NOW, NOW),
                         collected_at=NOW, client_factory=lambda s: None, settings=settings)
    frame = collect_otlp_files(ctx).frames[SPANS.name]
    rows = {row["span_id"]: row for row in frame.to_dict("records")}
    assert {k: (r["account_id"], claimed_account(r)) for k, r in rows.items()} == {
        "1111111111111111": ("222222222222", "999999999999"),
        "2222222222222222": ("333333333333", "999999999999"),
        "3333333333333333": ("333333333333", None)}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("named another account" in w for w in warnings) == 2  # one per account
    assert any("1 files map to no account and are not read ('stray.json')" in w
               for w in warnings)
    # a file left unread for want of an account is read once the config maps it
    runs.settings = settings.model_copy(update={"default_account": "444444444444"})
    assert "4444444444444444" in runs.run(NOW + timedelta(minutes=1))


def test_account_for_matches_globs_and_sub_folders_in_order() -> None:
    accounts = {"a/": "111111111111", "a/*/deep.json": "222222222222",
                "*.jsonl": "333333333333"}
    assert account_for("a/x.json", accounts, None) == "111111111111"
    assert account_for("a/b/deep.json", accounts, None) == "111111111111"  # first match
    assert account_for("x.jsonl", accounts, None) == "333333333333"
    assert account_for("ab/x.json", accounts, None) is None
    assert account_for("ab/x.json", accounts, "444444444444") == "444444444444"


@pytest.mark.parametrize(("options", "message"), [
    ({"accounts": {"payments/": "12345"}}, "must be a 12-digit AWS account id"),
    ({"default_account": "payments"}, "must be a 12-digit AWS account id"),
    ({"accounts": {"../elsewhere/": "111111111111"}}, "a key is a file name glob"),
    ({"accounts": {"/": "111111111111"}}, "a key is a file name glob"),
    ({"max_file_bytes": 0}, "greater than or equal to 1"),
])
def test_bad_account_maps_are_refused_at_start_up(options: dict[str, Any],
                                                   message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OtlpFilesCollectorConfig(folder="x", **options)


def test_a_file_nested_too_deep_is_skipped_and_later_files_still_read(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    base = NOW.timestamp() - 60
    write(tmp_path / "deep.json", "[" * 200_000 + "]" * 200_000, base)
    span_file(tmp_path / "later.json", "1111111111111111", base + 1)
    runs = Runs(files_settings(tmp_path))
    assert runs.run() == ["1111111111111111"]
    assert "deep.json skipped: not OTLP/JSON" in caplog.text
    assert "JSON nested 200000 deep; at most 64" in caplog.text
    span_file(tmp_path / "newer.json", "2222222222222222", base + 2)
    caplog.clear()
    assert runs.run(NOW + timedelta(minutes=1)) == ["2222222222222222"]
    assert "deep.json" not in caplog.text  # recorded as done: not tried forever


def test_a_file_over_the_size_cap_is_skipped_naming_it_and_the_cap(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    base = NOW.timestamp() - 60
    big = write(tmp_path / "big.json", json.dumps(request(otlp_span("1111111111111111"),
                                                          otlp_span("3333333333333333"))), base)
    small = span_file(tmp_path / "small.json", "2222222222222222", base + 1)
    cap = small.stat().st_size
    runs = Runs(files_settings(tmp_path, max_file_bytes=cap))
    assert runs.run() == ["2222222222222222"]
    assert f"big.json skipped: {big.stat().st_size} bytes, more than max_file_bytes ({cap})" \
        in caplog.text


def test_a_file_moved_in_with_an_older_time_is_read(tmp_path: Path) -> None:
    """mv, cp -p, rsync -t and unpacked archives keep a file's old modification time."""
    base = NOW.timestamp() - 3600
    span_file(tmp_path / "new.json", "1111111111111111", base + 60)
    runs = Runs(files_settings(tmp_path))
    assert runs.run() == ["1111111111111111"]
    span_file(tmp_path / "moved-in.json", "2222222222222222", base)  # older than new.json
    assert runs.run(NOW + timedelta(minutes=1)) == ["2222222222222222"]


def test_a_file_dated_in_the_future_hides_nothing(tmp_path: Path) -> None:
    future = NOW.timestamp() + 86_400 * 365
    span_file(tmp_path / "future.json", "1111111111111111", future)
    runs = Runs(files_settings(tmp_path))
    assert runs.run() == ["1111111111111111"]
    span_file(tmp_path / "today.json", "2222222222222222", NOW.timestamp() - 60)
    assert runs.run(NOW + timedelta(minutes=1)) == ["2222222222222222"]


def test_a_file_still_being_written_waits_for_the_settle_time(tmp_path: Path) -> None:
    span_file(tmp_path / "writing.json", "1111111111111111", NOW.timestamp() - 2)
    runs = Runs(files_settings(tmp_path, settle_s=10))
    assert runs.run() == []
    assert runs.run(NOW + timedelta(seconds=30)) == ["1111111111111111"]


def test_spans_the_runner_did_not_store_are_read_again(tmp_path: Path) -> None:
    span_file(tmp_path / "a.json", "1111111111111111", NOW.timestamp() - 60)
    runs = Runs(files_settings(tmp_path))
    assert runs.run(stored=False) == ["1111111111111111"]  # crashed before the write
    assert runs.run(NOW + timedelta(minutes=1)) == ["1111111111111111"]
    assert runs.run(NOW + timedelta(minutes=2)) == []


def test_at_most_max_files_per_run_oldest_first(tmp_path: Path) -> None:
    base = NOW.timestamp() - 60
    for i in range(5):
        span_file(tmp_path / f"{4 - i}.json", f"{i + 1:016x}", base + i)
    runs = Runs(files_settings(tmp_path, max_files_per_run=2))
    assert runs.run() == [f"{1:016x}", f"{2:016x}"]
    assert runs.run(NOW + timedelta(minutes=1)) == [f"{3:016x}", f"{4:016x}"]
    assert runs.run(NOW + timedelta(minutes=2)) == [f"{5:016x}"]


def test_the_state_remembers_only_files_still_there(tmp_path: Path) -> None:
    base = NOW.timestamp() - 60
    span_file(tmp_path / "a.json", "1111111111111111", base)
    span_file(tmp_path / "b.json", "2222222222222222", base)
    state_file = tmp_path / "state" / "seen.json"
    state_file.parent.mkdir()
    runs = Runs(files_settings(tmp_path, state_file=str(state_file)))
    runs.run()
    (tmp_path / "a.json").unlink()
    runs.run(NOW + timedelta(minutes=1))
    runs.run(NOW + timedelta(minutes=2))
    assert set(json.loads(state_file.read_text())["done"]) == {"b.json"}
    assert not (tmp_path / STATE_NAME).exists()


def test_an_unreadable_state_file_reads_the_folder_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    span_file(tmp_path / "a.json", "1111111111111111", NOW.timestamp() - 60)
    runs = Runs(files_settings(tmp_path))
    runs.run()
    (tmp_path / STATE_NAME).write_text("[" * 10_000)
    assert runs.run(NOW + timedelta(minutes=1)) == ["1111111111111111"]
    assert "state file" in caplog.text and "unreadable" in caplog.text


def test_a_state_file_that_cannot_be_written_fails_the_run_saying_what_to_set(
        tmp_path: Path) -> None:
    span_file(tmp_path / "a.json", "1111111111111111", NOW.timestamp() - 60)
    runs = Runs(files_settings(tmp_path, state_file=str(tmp_path / "no" / "such" / "dir")))
    with pytest.raises(OSError, match=re.escape("set [collectors.otlp_files] state_file")):
        runs.run()


def test_no_folder_reads_nothing_and_a_missing_folder_fails_the_run(tmp_path: Path) -> None:
    nothing = collect_otlp_files(context(None, OtlpFilesCollectorConfig()))
    assert nothing.frames[SPANS.name].empty
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        collect_otlp_files(context(None, OtlpFilesCollectorConfig(
            folder=str(tmp_path / "nope"))))
