"""Dead-letter queues on the Event-flow page: each queue's depth in chart buckets, and the
newest reading of each."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from dashboard.buckets import MAX_POINTS, bucket_for
from dashboard.filters import Filters
from dashboard.sql import in_list, list_params, scope_params
from orgscope.store import Store


def dlq_series(
    store: Store, filters: Filters, since: datetime, until: datetime,
    max_points: int = MAX_POINTS,
) -> pd.DataFrame:
    """Depth of every dead-letter queue in scope, bucketed (max per bucket).

    Columns: account_id, account, region, queue, queue_arn, bucket, visible, oldest_age_s.
    """
    bucket = bucket_for(until - since, max_points)
    sql = f"""
    WITH scope AS (
        SELECT account_id, name FROM accounts
        WHERE {in_list("account_id")} AND {in_list("team")}
    )
    SELECT d.account_id, s.name AS account, d.region, d.queue, d.queue_arn,
           time_bucket(?::INTERVAL, timezone('UTC', d.ts)) AS bucket,
           max(d.visible) AS visible,
           max(d.oldest_age_s) AS oldest_age_s
    FROM dlq_depth d JOIN scope s USING (account_id)
    WHERE d.ts >= ? AND d.ts < ? AND {in_list("d.region")}
    GROUP BY ALL ORDER BY d.queue, bucket
    """
    params = [*scope_params(filters), bucket, since, until, *list_params(filters.regions)]
    frame = store.query(sql, params)
    frame["bucket"] = pd.to_datetime(frame["bucket"]).dt.tz_localize(UTC)
    return frame


def dlq_latest(store: Store, filters: Filters) -> pd.DataFrame:
    """The newest reading of every dead-letter queue in scope, deepest first.

    Columns: account_id, account, region, queue, queue_arn, ts, visible, in_flight,
    oldest_age_s.
    """
    sql = f"""
    WITH scope AS (
        SELECT account_id, name FROM accounts
        WHERE {in_list("account_id")} AND {in_list("team")}
    )
    SELECT d.account_id, s.name AS account, d.region, d.queue, d.queue_arn, d.ts, d.visible,
           d.in_flight, d.oldest_age_s
    FROM dlq_depth d JOIN scope s USING (account_id)
    WHERE {in_list("d.region")}
    QUALIFY d.ts = max(d.ts) OVER (PARTITION BY d.account_id, d.region, d.queue_arn)
    ORDER BY d.visible DESC, s.name, d.queue
    """
    params = [*scope_params(filters), *list_params(filters.regions)]
    return store.query(sql, params)
