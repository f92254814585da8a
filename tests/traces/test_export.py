"""OTLP export against a local OTLP/HTTP receiver started in the test.

The receiver accepts POST /v1/traces, decodes the protobuf ExportTraceServiceRequest the real
OTLPSpanExporter sends, and keeps it: trace ids, parent links and attributes are checked as
they arrive on the wire.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pandas as pd
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from collectors.xray import segment_rows
from orgscope import wiring
from orgscope.config import Config, ExportConfig
from orgscope.datasets import SPANS
from orgscope.runner import runs_frame
from orgscope.store import Store
from orgscope.traces.export import (
    collection_spans,
    cycle_trace_id,
    export_collection,
    export_traces,
    resolve_endpoint,
    settled_traces,
    shown,
)
from orgscope.traces.stitch import stitch
from orgscope.traces.update import update_traces
from sim.tracing import SERVICES, FlowSegments, TraceFaults, minute_segments

MINUTE = datetime(2026, 11, 26, 18, 30, tzinfo=UTC)
ACCOUNTS = {"customer-web": "111111111111", "central-bus": "121212121212",
            "order-processing": "777777777777", "payment-service": "999999999999",
            "inventory-mgmt": "666666666666"}


class Receiver:
    """An OTLP/HTTP receiver on a free loopback port; ``status`` scripts the answer."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.paths.append(self.path)
                if receiver.status == 200 and self.path == "/v1/traces":
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    receiver.requests.append(request)
                    answer = ExportTraceServiceResponse().SerializeToString()
                    self.send_response(200)
                else:
                    answer = b""
                    self.send_response(receiver.status if self.path == "/v1/traces" else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, span) of every span received."""
        out: list[tuple[dict[str, Any], Any]] = []
        for request in self.requests:
            for resource_spans in request.resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                for scope in resource_spans.scope_spans:
                    out.extend((resource, span) for span in scope.spans)
        return out


def value(any_value: AnyValue) -> Any:
    return getattr(any_value, str(any_value.WhichOneof("value")))


def attributes(items: Any) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in items if isinstance(kv, KeyValue)}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    running.thread.start()
    yield running
    running.server.shutdown()
    running.server.server_close()


def exporting(config: Config, url: str, **changes: Any) -> Config:
    export = config.export.model_copy(update={"otlp_endpoint": url, "timeout_s": 2.0,
                                              **changes})
    return config.model_copy(update={"export": export})


def flow_spans(minutes: int = 3) -> pd.DataFrame:
    """The simulator's order flows (one in four broken at the bus) as ``spans`` rows."""
    out = FlowSegments()
    for m in range(minutes):
        minute_segments(MINUTE + timedelta(minutes=m), 7, accounts=ACCOUNTS,
                        faults=TraceFaults(), delivered=True, out=out)
    rows = [row for account, docs in out.documents.items() for doc in docs
            for row in segment_rows(doc, account_id=account, region="us-east-1")]
    return pd.DataFrame(rows, columns=SPANS.columns)


def test_endpoint_resolution() -> None:
    assert resolve_endpoint(ExportConfig(), {}) == (False, None)
    assert resolve_endpoint(ExportConfig(otlp_endpoint="http://c:4318"), {}) == \
        (True, "http://c:4318/v1/traces")
    assert resolve_endpoint(ExportConfig(), {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://e"}) == \
        (True, None)
    assert shown(None, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://u:p@h:1/x"}) == \
        "https://h:1"


def test_stitched_traces_arrive_with_ids_parents_and_attributes(
        config: Config, receiver: Receiver) -> None:
    stitched = stitch(flow_spans())
    now = MINUTE + timedelta(minutes=10)
    store = wiring.open_store(config)
    summary = export_traces(exporting(config, receiver.url), store, stitched,
                            since=MINUTE, now=now)
    assert summary is not None and summary.startswith("export: ")
    assert "sent to http://127.0.0.1:" in summary
    received = receiver.spans()
    assert len(received) == len(stitched)
    by_id = {span.span_id.hex(): (resource, span) for resource, span in received}
    for row in stitched.to_dict("records"):
        resource, span = by_id[row["span_id"]]
        assert span.trace_id.hex() == row["trace_id"]
        parent = None if pd.isna(row["parent_id"]) else row["parent_id"]
        assert (span.parent_span_id.hex() or None) == parent
        assert span.start_time_unix_nano == pd.Timestamp(row["start"]).value
        assert span.end_time_unix_nano == pd.Timestamp(row["end"]).value
        assert resource["cloud.account.id"] == row["account_id"]
        assert resource["service.name"] == row["service"]
        attrs = attributes(span.attributes)
        assert attrs["orgscope.account_id"] == row["account_id"]
        assert attrs["orgscope.region"] == "us-east-1"
        assert attrs["orgscope.service"] == row["service"]
        assert attrs["orgscope.status"] == "ok"
    relinked = stitched[stitched["linked_from"].notna()].iloc[0]
    _, consumer = by_id[relinked["span_id"]]
    assert consumer.parent_span_id.hex() == relinked["linked_from"]
    assert attributes(consumer.attributes)["orgscope.original_trace_id"] == \
        relinked["original_trace_id"]
    assert {r["cloud.account.id"] for r, _ in received} == set(ACCOUNTS.values())
    # sent once: the next run finds nothing new
    again = export_traces(exporting(config, receiver.url), store, stitched, since=MINUTE,
                          now=now)
    assert again == "export: no settled traces to send"
    assert len(receiver.spans()) == len(stitched)


def test_unsettled_traces_wait_and_failed_exports_are_retried(
        config: Config, receiver: Receiver) -> None:
    stitched = stitch(flow_spans(minutes=1))
    end = pd.to_datetime(stitched["end"], utc=True).max().to_pydatetime()
    assert settled_traces(stitched, MINUTE, end, timedelta(minutes=2)) == []
    store = wiring.open_store(config)
    receiver.status = 400  # not retryable: the exporter gives up at once
    failed = export_traces(exporting(config, receiver.url), store, stitched, since=MINUTE,
                           now=end + timedelta(minutes=3))
    assert failed is not None and "failed" in failed
    receiver.status = 200
    sent = export_traces(exporting(config, receiver.url), store, stitched, since=MINUTE,
                         now=end + timedelta(minutes=3))
    assert sent is not None and f"{stitched['trace_id'].nunique()} traces" in sent


def test_export_is_off_without_an_endpoint(config: Config,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    store = wiring.open_store(config)
    assert export_traces(config, store, stitch(flow_spans(1)), since=MINUTE,
                         now=MINUTE + timedelta(hours=1)) is None
    assert export_collection(config, store, MINUTE).startswith("export: off")


def _runs(store: Store, now: datetime) -> pd.DataFrame:
    from orgscope.accounts import Account
    from orgscope.runner import CallCounter, RunResult
    calls = CallCounter()
    calls.record("xray", "GetTraceSummaries", {})
    results = [RunResult("xray", Account(a, s, "t"), "us-east-1", now, 1.5,
                         "ok" if s != "payment-service" else "error",
                         None if s != "payment-service" else "ThrottlingException", calls)
               for s, a in ACCOUNTS.items()]
    frame = runs_frame("20261126T183000Z-abc", results)
    store.write("runs", frame, "20261126T183000Z-abc")
    return frame


def test_collection_spans_one_trace_per_cycle_one_span_per_run(
        config: Config, receiver: Receiver) -> None:
    store = wiring.open_store(config)
    now = datetime.now(UTC).replace(microsecond=0)
    runs = _runs(store, now - timedelta(minutes=1))
    summary = export_collection(exporting(config, receiver.url), store, now)
    assert summary.startswith("export: 1 collection cycles (6 spans) sent")
    received = receiver.spans()
    assert len(received) == len(runs) + 1
    trace = cycle_trace_id("20261126T183000Z-abc")
    assert {span.trace_id.hex() for _, span in received} == {trace}
    roots = [span for _, span in received if not span.parent_span_id]
    assert len(roots) == 1 and roots[0].name == "orgscope collect xray"
    children = [span for _, span in received if span.parent_span_id]
    assert {c.parent_span_id for c in children} == {roots[0].span_id}
    by_account = {attributes(c.attributes)["cloud.account.id"]: c for c in children}
    assert set(by_account) == set(ACCOUNTS.values())
    failed = attributes(by_account["999999999999"].attributes)
    assert failed["orgscope.status"] == "error"
    assert failed["orgscope.error"] == "ThrottlingException"
    assert by_account["999999999999"].status.code == 2  # STATUS_CODE_ERROR
    assert failed["orgscope.api_calls"] == 1
    assert by_account["111111111111"].end_time_unix_nano - \
        by_account["111111111111"].start_time_unix_nano == 1_500_000_000
    assert {r["service.name"] for r, _ in received} == {"orgscope"}
    assert export_collection(exporting(config, receiver.url), store, now) == \
        "export: no new collection cycles"
    assert len(collection_spans(runs)) == len(runs) + 1


def test_the_traces_step_sends_what_it_stitched(config: Config, receiver: Receiver) -> None:
    store = wiring.open_store(config)
    spans = flow_spans(minutes=2)
    store.write("spans", spans, "c1")
    now = MINUTE + timedelta(minutes=8)
    update = update_traces(config, store, now=now)
    sent = export_traces(exporting(config, receiver.url), store, update.stitched,
                         since=update.since, now=update.at)
    assert sent is not None and f"{update.traces} traces" in sent
    assert {span.trace_id.hex() for _, span in receiver.spans()} == \
        set(update.written[update.written["merged_into"].isna()]["trace_id"])
    assert len(SERVICES) == 5


class FlakySender:
    """An exporter whose request number ``fail_at`` (1-based) fails; keeps what succeeded."""

    def __init__(self, fail_at: int | None) -> None:
        self.fail_at = fail_at
        self.calls = 0
        self.sent: list[Any] = []

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult
        self.calls += 1
        if self.calls == self.fail_at:
            return SpanExportResult.FAILURE
        self.sent.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def test_a_failed_batch_leaves_earlier_batches_recorded_so_no_trace_is_sent_twice(
        config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    import orgscope.traces.export as export

    stitched = stitch(flow_spans(minutes=2))
    per_trace = stitched.groupby("trace_id").size()
    # about two traces a request, so several requests; the second one fails
    monkeypatch.setattr(export, "BATCH", int(per_trace.max()) * 2)
    end = pd.to_datetime(stitched["end"], utc=True).max().to_pydatetime()
    now = end + timedelta(minutes=3)
    store = wiring.open_store(config)
    first = FlakySender(fail_at=2)
    summary = export_traces(exporting(config, "http://127.0.0.1:9"), store, stitched,
                            since=MINUTE, now=now, sender=lambda *_: first)
    assert summary is not None and "failed" in summary
    assert first.sent, "the first request went through"
    second = FlakySender(fail_at=None)
    export_traces(exporting(config, "http://127.0.0.1:9"), store, stitched, since=MINUTE,
                  now=now, sender=lambda *_: second)
    sent = [(s.context.trace_id, s.context.span_id) for s in first.sent + second.sent]
    assert len(sent) == len(set(sent)) == len(stitched)  # every span once, none twice
    # whole traces per request: no trace is split between the two runs
    first_traces = {s.context.trace_id for s in first.sent}
    assert not first_traces & {s.context.trace_id for s in second.sent}
