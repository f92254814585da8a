"""Spans and stitched traces of the simulated order flow, for the Traces page's tests.

Shared by the dashboard and browser tests and bench/dashboard_render.py. The segments are the
simulator's own (:func:`sim.tracing.minute_segments`: customer-web -> central-bus ->
order-processing -> payment-service, inventory-mgmt; one flow in four breaks its X-Ray trace
id at the bus), parsed by the xray collector's :func:`collectors.xray.segment_rows` and
written through :meth:`Store.write`; the ``traces`` dataset is
:func:`orgscope.traces.views.trace_summaries` of their stitching, as the traces step writes
it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from collectors.xray import segment_rows
from dashboard.trace_criteria import Window
from orgscope.datasets import SPANS, TRACES
from orgscope.store import Store
from orgscope.traces.stitch import stitch
from orgscope.traces.views import trace_summaries
from sim.tracing import TraceFault, TraceFaults, minute_segments

REGION = "us-east-1"
#: service -> account id, as in the reference organization.
FLOW_ACCOUNTS: dict[str, str] = {
    "customer-web": "111111111111", "central-bus": "121212121212",
    "order-processing": "777777777777", "payment-service": "999999999999",
    "inventory-mgmt": "666666666666",
}
TEAMS: dict[str, str] = {
    "111111111111": "customer-web", "121212121212": "platform", "777777777777": "orders",
    "999999999999": "payments", "666666666666": "inventory",
}
SLOW_SERVICE = "payment-service"
SPIKE_MS = 700.0
SPIKE_MINUTES = 10
SEED = 7


def sample_spans(now: datetime, minutes: int = 60, *, spike: bool = True) -> pd.DataFrame:
    """``spans`` rows of every traced flow in the ``minutes`` before ``now``; with ``spike``,
    payment-service is :data:`SPIKE_MS` slower over the last :data:`SPIKE_MINUTES`."""
    end = now.replace(second=0, microsecond=0)
    faults = TraceFaults((TraceFault("latency_spike", SLOW_SERVICE, SPIKE_MS,
                                     end - timedelta(minutes=SPIKE_MINUTES),
                                     end + timedelta(minutes=1)),) if spike else ())
    rows = []
    for step in range(minutes, 0, -1):
        flows = minute_segments(end - timedelta(minutes=step), SEED, accounts=FLOW_ACCOUNTS,
                                faults=faults, delivered=True)
        for account_id, documents in flows.documents.items():
            for document in documents:
                rows.extend(segment_rows(document, account_id=account_id, region=REGION))
    return pd.DataFrame(rows)[SPANS.columns]


def fill_traces(store: Store, now: datetime, minutes: int = 60, *,
                spike: bool = True) -> pd.DataFrame:
    """Write the sample's spans and stitched traces; return the traces rows written."""
    spans = sample_spans(now, minutes, spike=spike)
    store.write("spans", spans, "sample-spans")
    summaries = trace_summaries(stitch(spans), TEAMS).assign(merged_into=None,
                                                             stitched_at=now)
    store.write("traces", summaries[TRACES.columns], "sample-traces-1")
    return summaries


def sample_window(now: datetime) -> Window:
    """A window holding every sample trace (the sample covers the hour before ``now``)."""
    return Window(now - timedelta(minutes=90), now + timedelta(minutes=1))
